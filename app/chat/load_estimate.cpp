#include "app/chat/load_estimate.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "loader/memory_estimate.h"
#include "loader/model_folder.h"

namespace nibble::chat {

namespace fs = std::filesystem;

LoadEstimate estimate_load(const fs::path& dir, const QuantConfig& quant, int context,
                           int kv_element_bytes) {
  if (!fs::is_directory(dir)) fail(dir.string() + " is not a folder");
  const fs::path config_path = dir / "config.json";
  if (!fs::exists(config_path))
    fail(dir.string() + " is not a model folder: it has no config.json");
  if (!fs::exists(dir / "model.safetensors") && !fs::exists(dir / "model.safetensors.index.json"))
    fail(dir.string() + " has no model.safetensors (nor model.safetensors.index.json)");
  if (!fs::exists(dir / "tokenizer.json")) fail(dir.string() + " has no tokenizer.json");
  std::ifstream in(config_path);
  std::stringstream text;
  text << in.rdbuf();

  LoadEstimate e;
  e.config = parse_model_config(text.str(), config_path.string());
  const ModelConfig& c = e.config;
  // As Model does (engine/model.cpp): the model's context, at most 4096, unless one is given.
  e.context = context > 0 ? context : std::min(c.max_position_embeddings, 4096);
  e.weights = model_weight_bytes(c, quant);
  e.kv_cache = 2ull * uint64_t(c.num_hidden_layers) * uint64_t(e.context) * uint64_t(c.kv_dim()) *
               uint64_t(kv_element_bytes);
  // Model's float32 activation buffers for a prefill chunk of up to 256 rows (ModelOptions).
  const uint64_t rows = uint64_t(std::min(256, e.context));
  const uint64_t per_row = 3ull * uint64_t(c.hidden_size) + 2ull * uint64_t(c.q_dim()) +
                           2ull * uint64_t(c.kv_dim()) + 2ull * uint64_t(c.intermediate_size) +
                           uint64_t(c.vocab_size);
  e.activations = rows * per_row * 4;
  return e;
}

}  // namespace nibble::chat
