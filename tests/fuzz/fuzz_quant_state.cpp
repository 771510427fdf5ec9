// Fuzzes the bitsandbytes quant_state JSON of a 4-bit checkpoint: the input is the JSON bytes of
// `W.quant_state.bitsandbytes__nf4`, beside companion tensors for a [4, 64] weight (with and
// without double quantization). A state that is accepted must describe exactly the tensors that
// exist: dequantizing every element stays inside them (ASan checks), or nibble::Error.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/quant.h"
#include "loader/bnb_checkpoint.h"

namespace {

nibble::TensorInfo tensor(const std::string& name, nibble::DType dtype, std::vector<int64_t> shape,
                          const void* data, size_t nbytes) {
  nibble::TensorInfo t;
  t.name = name;
  t.dtype = dtype;
  t.shape = std::move(shape);
  t.data = static_cast<const uint8_t*>(data);
  t.nbytes = nbytes;
  t.file = "fuzz.safetensors";
  return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<uint8_t> packed(128, 0x5a), absmax_q(4, 7);
  static const std::vector<float> absmax(4, 0.5f), code(16, 0.25f), nested_absmax(1, 1.0f),
      nested_code(256, 0.01f);
  const std::vector<uint8_t> json(data, data + size);
  for (bool nested : {false, true}) {
    std::vector<nibble::TensorInfo> tensors = {
        tensor("W", nibble::DType::U8, {128, 1}, packed.data(), packed.size()),
        tensor("W.quant_map", nibble::DType::F32, {16}, code.data(), 64),
        tensor("W.quant_state.bitsandbytes__nf4", nibble::DType::U8, {int64_t(size)}, json.data(),
               json.size())};
    if (nested) {
      tensors.push_back(tensor("W.absmax", nibble::DType::U8, {4}, absmax_q.data(), 4));
      tensors.push_back(
          tensor("W.nested_absmax", nibble::DType::F32, {1}, nested_absmax.data(), 4));
      tensors.push_back(
          tensor("W.nested_quant_map", nibble::DType::F32, {256}, nested_code.data(), 1024));
    } else {
      tensors.push_back(tensor("W.absmax", nibble::DType::F32, {4}, absmax.data(), 16));
    }
    const nibble::TensorLookup find = [&](const std::string& n) -> const nibble::TensorInfo* {
      for (const auto& t : tensors)
        if (t.name == n) return &t;
      return nullptr;
    };
    try {
      const nibble::QuantState s = nibble::read_bnb_quant_state(find, "W");
      if (s.numel() <= 0 || size_t((s.numel() + 1) / 2) > packed.size()) std::abort();
      std::vector<float> out(size_t(s.numel()));
      nibble::dequantize(packed.data(), s, 0, s.numel(), out.data());
    } catch (const nibble::Error&) {
    }
  }
  return 0;
}
