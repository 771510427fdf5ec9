// The memory a model folder will need once loaded, shown before loading it: weights under the
// chosen quantization (loader/memory_estimate.h), the KV cache for the context, activations.
#pragma once
#include <cstdint>
#include <filesystem>

#include "engine/model_config.h"
#include "loader/quant_config.h"

namespace nibble::chat {

struct LoadEstimate {
  ModelConfig config;
  int context = 0;
  uint64_t weights = 0, kv_cache = 0, activations = 0;
  uint64_t total() const { return weights + kv_cache + activations; }
};

// Reads DIR/config.json only. Throws nibble::Error when DIR is not a model folder.
// `kv_element_bytes`: 4 for the CPU backend (float32 cache), 2 for the GPU backends.
LoadEstimate estimate_load(const std::filesystem::path& dir, const QuantConfig& quant, int context,
                           int kv_element_bytes);

}  // namespace nibble::chat
