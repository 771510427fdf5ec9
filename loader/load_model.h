// Everything needed to chat with a model folder: weights on a backend, tokenizer, chat template and
// the defaults of generation_config.json. Shared by the CLI and the desktop app.
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/chat_template.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"
#include "loader/model_folder.h"
#include "loader/quant_config.h"

namespace nibble {

// The bundled model, used when no -m is given (relative to the working directory or the binary).
std::filesystem::path default_model_dir();

struct GenerationDefaults {
  std::vector<int> eos_ids;  // config.json, generation_config.json and the tokenizer, merged
  SamplerConfig sampling;    // do_sample/temperature/top_k/top_p/repetition_penalty if given
  int max_new_tokens = 0;    // 0: not given
};

struct LoadedModel {
  std::unique_ptr<ModelFolder> folder;
  std::unique_ptr<Model> model;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<ChatTemplate> chat_template;
  GenerationDefaults defaults;
  std::string placement;  // which layers went where
  double load_seconds = 0;
};

// What loading will allocate on the backend, computed before anything is allocated.
struct MemoryPlan {
  uint64_t weights = 0, kv_cache = 0, activations = 0;
  uint64_t total() const { return weights + kv_cache + activations; }
  std::string describe() const;  // "1.23 GiB (weights ..., KV cache ..., activations ...)"
};
MemoryPlan plan_memory(const ModelFolder& folder, const QuantConfig& quant,
                       const ModelOptions& options, DType kv_dtype);
// Fails, naming both sizes, when the plan exceeds what the backend's device has free.
void check_fits(const MemoryPlan& plan, const Backend& backend, const std::string& what);

// Opens, checks the memory plan against the backend's budget, uploads (quantizing as `quant`
// says) and reads the tokenizer. Progress: (done, total, tensor name).
LoadedModel load_model(const std::filesystem::path& dir, Backend& backend, const QuantConfig& quant,
                       const ModelOptions& options);
// The same over several backends (GPUs first, the CPU last): layers placed by place_layers.
LoadedModel load_model(const std::filesystem::path& dir, const std::vector<Backend*>& backends,
                       const QuantConfig& quant, const ModelOptions& options, int gpu_layers = -1);

}  // namespace nibble
