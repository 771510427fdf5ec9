// How many bytes a model's weights take once loaded, for each quantization setting: what the
// memory planner budgets and what `nibble inspect` prints. Computed from config.json alone.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model_config.h"
#include "loader/quant_config.h"

namespace nibble {

// One weight as Model loads it (engine/model.cpp): [rows, cols], and whether it is a decoder
// linear weight that QuantConfig may turn into 4-bit.
struct WeightShape {
  std::string name;
  int64_t rows = 0, cols = 0;
  bool quantizable = false;
};

// The weights Model loads, in its order; lm_head is left out when it is tied to the embeddings.
std::vector<WeightShape> model_weight_shapes(const ModelConfig& c);

// Bytes of one weight of `numel` elements in bitsandbytes 4-bit: the packed codes, (numel + 1) / 2,
// plus its QuantState: without double quant a float32 absmax per block and the 16-entry float32
// code; with it a uint8 absmax per block, a float32 nested absmax per 256 blocks, the 256-entry
// float32 nested code, the 16-entry code and the float32 offset.
uint64_t quantized_weight_bytes(int64_t numel, int blocksize, bool double_quant);

// Bytes of all the model's weights under `quant`: the quantizable ones not matched by
// quant.skip_modules in 4-bit, everything else at `unquantized_element_bytes` (16-bit by default).
uint64_t model_weight_bytes(const ModelConfig& c, const QuantConfig& quant,
                            size_t unquantized_element_bytes = 2);

}  // namespace nibble
