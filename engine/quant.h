// The bitsandbytes 4-bit format: code tables, the per-weight quantization state, and the
// float32 dequantization every backend is tested against. The encoder lives in loader/quantize.h.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "engine/dtype.h"

namespace nibble {

enum class QuantType : uint8_t { NF4, FP4 };

const std::array<float, 16>& quant_code(QuantType t);
// bitsandbytes' create_dynamic_map(signed=True): the 8-bit code of double quantization.
const std::array<float, 256>& dynamic_map_signed();

// Everything needed to dequantize one packed weight, named as bitsandbytes names it.
struct QuantState {
  QuantType type = QuantType::NF4;
  int blocksize = 64;            // elements per absmax block
  std::array<float, 16> code{};  // quant_map
  DType dtype = DType::BF16;     // dtype of the original weight
  std::vector<int64_t> shape;    // original [out, in]
  // Without double quantization: one float32 absmax per block.
  std::vector<float> absmax;
  // With double quantization:
  // absmax[b] = nested_code[absmax_q[b]] * nested_absmax[b / nested_blocksize] + offset.
  bool nested = false;
  std::vector<uint8_t> absmax_q;
  std::vector<float> nested_absmax;
  std::array<float, 256> nested_code{};
  int nested_blocksize = 256;
  float offset = 0.0f;

  int64_t numel() const;
  int64_t num_blocks() const { return (numel() + blocksize - 1) / blocksize; }
  float block_absmax(int64_t block) const;
};

// Dequantize flattened elements [begin, begin + count) of a packed weight to float32, each value
// then rounded to `round` (what a backend computing in that dtype multiplies with).
void dequantize(const uint8_t* packed, const QuantState& s, int64_t begin, int64_t count,
                float* out, ComputeDType round = ComputeDType::F32);

}  // namespace nibble
