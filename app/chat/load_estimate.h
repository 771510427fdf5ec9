// The memory a model folder will need once loaded, shown before loading it: the loader's own
// memory plan (weights under the chosen quantization, KV cache for the context, activations).
#pragma once
#include <cstdint>
#include <filesystem>

#include "engine/dtype.h"
#include "engine/model_config.h"
#include "loader/load_model.h"

namespace nibble::chat {

struct LoadEstimate {
  ModelConfig config;
  int context = 0;  // resolved: the model's, at most 4096, unless one was asked for
  MemoryPlan plan;
};

// Opens DIR as load_model will (headers only; the weights stay on disk). Throws nibble::Error,
// naming the file, when DIR is not a model folder. `kv_dtype`: the backend's (CPU: F32, GPU: F16).
LoadEstimate estimate_load(const std::filesystem::path& dir, const QuantConfig& quant, int context,
                           DType kv_dtype);

// The machine's RAM: the budget of the CPU backend, which reports none of its own.
uint64_t host_memory_bytes();

}  // namespace nibble::chat
