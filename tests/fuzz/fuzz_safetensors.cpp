// Fuzzes the safetensors header parser: any bytes either parse into tensors that lie inside the
// image and match their dtype and shape, or fail with nibble::Error. Anything else is a bug.
#include <cstdint>
#include <cstdlib>

#include "engine/error.h"
#include "loader/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto file = nibble::SafetensorsFile::parse(data, size, "fuzz.safetensors");
    for (const nibble::TensorInfo& t : file->tensors()) {
      if (t.data < data || t.data + t.nbytes > data + size) std::abort();
      if (uint64_t(t.numel()) * nibble::dtype_size(t.dtype) != t.nbytes) std::abort();
      if (t.nbytes) {
        // Touch the first and last byte: ASan reports any read outside the input.
        volatile uint8_t sink = t.data[0] ^ t.data[t.nbytes - 1];
        (void)sink;
      }
      if (file->find(t.name) == nullptr) std::abort();
    }
  } catch (const nibble::Error&) {
  }
  return 0;
}
