// A weight as the loader hands it to a backend: 16/32-bit values or packed 4-bit codes on the host.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "engine/dtype.h"
#include "engine/quant.h"

namespace nibble {

// A 4-bit format to quantize a 16/32-bit weight to (the QuantConfig settings of one tensor).
struct QuantSpec {
  QuantType type = QuantType::NF4;
  int blocksize = 64;
  bool double_quant = true;
};

struct HostWeight {
  std::string name;            // Hugging Face tensor name, for error messages and stats
  DType dtype = DType::F32;    // F32, F16, BF16, or NF4/FP4 (packed, two codes per byte)
  int64_t rows = 0, cols = 0;  // [out, in]; a vector is [1, n]
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::shared_ptr<const void> owner;         // keeps `data` alive when it is not the mmap
  std::shared_ptr<const QuantState> quant;   // set for NF4/FP4
  ComputeDType compute = ComputeDType::F32;  // operand rounding of the 4-bit matmul
  // Set when the source leaves quantizing to the backend (Backend::upload_quantized): these
  // 16/32-bit values are to be stored in this 4-bit format.
  std::optional<QuantSpec> quantize_to;

  bool quantized() const { return dtype == DType::NF4 || dtype == DType::FP4; }
  // Element i of a 16/32-bit weight as float32.
  float at(int64_t i) const;
};

// Bytes a weight occupies once stored: the values, plus absmax and code tables when 4-bit (or
// when it is to be quantized, `quantize_to`).
uint64_t stored_bytes(const HostWeight& w);

// Where the model gets its weights from (a model folder, a test's random tensors...). `get` checks
// the shape and returns the tensor, quantized if `quantizable` and the source's settings say so.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  virtual bool has(const std::string& name) const = 0;
  virtual HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) = 0;
};

}  // namespace nibble
