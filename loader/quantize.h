// The bitsandbytes 4-bit encoder (quantize_4bit / quantize_blockwise), byte-for-byte identical
// to what bitsandbytes produces for the same input.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "engine/quant.h"
#include "engine/weights.h"

namespace nibble {

struct QuantizedWeight {
  std::vector<uint8_t> packed;  // (numel + 1) / 2 bytes, even element in the high nibble
  QuantState state;
};

// Quantizes a 16/32-bit weight. Errors name the tensor for inf/NaN values. `threads` = 0 uses
// every hardware thread; the bytes are the same for any thread count.
QuantizedWeight quantize_4bit(const HostWeight& w, QuantType type, int blocksize, bool double_quant,
                              int threads = 0);
// Values per nested absmax in double quantization (quantize_blockwise's blocksize).
constexpr int kNestedBlocksize = 256;

// The dtype of a weight packed as `t`.
inline DType packed_dtype(QuantType t) {
  return t == QuantType::NF4 ? DType::NF4 : DType::FP4;
}
// quantize_4bit of `w` as a packed NF4/FP4 HostWeight that owns its bytes and state.
HostWeight quantize_on_host(const HostWeight& w, const QuantSpec& spec);

// The pieces of the encoder, exposed for tests:
// the 4-bit index bitsandbytes' kernel picks for a value already scaled by 1/absmax,
uint8_t quantize_4bit_index(QuantType type, float scaled);
// the 8-bit index of quantize_blockwise (binary search, then the nearer neighbour),
uint8_t quantize_8bit_index(const std::array<float, 256>& code, float scaled);
// 1/absmax as bitsandbytes' fast-math kernel computes it (rcp.approx.ftz.f32, exact for every
// absmax of a 16-bit weight; see docs/QUANTIZATION.md),
float bnb_reciprocal(float absmax);
// and torch.mean of a float32 vector summed in the order of torch's CUDA reduction kernel.
float torch_cuda_mean(const float* values, int64_t n);

// What the GPU quantizer (engine/vulkan/vk_quantizer.h) needs to reproduce the encoder:
// quantize_4bit_index's decision thresholds, ascending. A value's NF4 index is the number of `nf4`
// thresholds it exceeds; its FP4 index is fp4_index[the number of `fp4` thresholds |x| exceeds],
// plus 8 when x < 0.
struct FourBitThresholds {
  std::array<float, 15> nf4;
  std::array<float, 7> fp4;
  std::array<uint32_t, 8> fp4_index;
};
const FourBitThresholds& four_bit_thresholds();
// bnb_reciprocal's table: bit k (word k / 32) set where the GPU's reciprocal of the significand
// 1 + k / 1024 is the float32 neighbour of 1/x that correct rounding does not give;
const std::array<uint32_t, 32>& bnb_reciprocal_table();
// the shape of torch's reduction in torch_cuda_mean over n values: `blocks` thread blocks of
// `lanes` threads, each thread loading 4 consecutive values at a time when `vectorized`;
struct TorchReduce {
  bool vectorized = false;
  int64_t lanes = 1, blocks = 1;
};
TorchReduce torch_cuda_reduce(int64_t n);
// and its last step, the mean from the sum of n values (MeanOps: sum * (1 / n) in float32).
float torch_mean_of_sum(float sum, int64_t n);

}  // namespace nibble
