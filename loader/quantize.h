// The bitsandbytes 4-bit encoder (quantize_4bit / quantize_blockwise), byte-for-byte identical
// to what bitsandbytes produces for the same input.
#pragma once
#include <cstdint>
#include <vector>

#include "engine/quant.h"
#include "engine/weights.h"

namespace nibble {

struct QuantizedWeight {
  std::vector<uint8_t> packed;  // (numel + 1) / 2 bytes, even element in the high nibble
  QuantState state;
};

// Quantizes a 16/32-bit weight. Errors name the tensor for inf/NaN values.
QuantizedWeight quantize_4bit(const HostWeight& w, QuantType type, int blocksize,
                              bool double_quant);

}  // namespace nibble
