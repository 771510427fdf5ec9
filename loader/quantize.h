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

}  // namespace nibble
