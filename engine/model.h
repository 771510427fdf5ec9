// A Llama-family decoder (Llama 2/3, Mistral, TinyLlama, SmolLM...) written once over `Backend`.
#pragma once
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model_config.h"

namespace nibble {

struct ModelOptions {
  int context = 0;      // KV cache positions; 0: min(max_position_embeddings, 4096)
  int max_batch = 256;  // tokens per prefill chunk (activation buffers are sized for this)
  // Called after each weight is on the device: (done, total, tensor name).
  std::function<void(int, int, const std::string&)> on_progress;
};

// What a model allocates besides its weights, known before anything is allocated.
struct RuntimeMemory {
  uint64_t kv_cache = 0, activations = 0;
};

class Model {
 public:
  // Fills in the defaults of `options` (context, max_batch) for `config`.
  static ModelOptions resolve(const ModelConfig& config, ModelOptions options);
  // The KV cache and activation bytes a Model with these (resolved) options will allocate.
  static RuntimeMemory runtime_memory(const ModelConfig& config, const ModelOptions& options,
                                      DType kv_dtype);

  Model(Backend& backend, const ModelConfig& config, WeightSource& weights,
        const ModelOptions& options = {});

  // Runs `tokens` at positions [pos, pos + n). Afterwards `logits()`/`argmax()` refer to the last
  // token, or, with all_logits, `logits()` holds one row per token of the last chunk.
  void forward(std::span<const int> tokens, int pos, bool all_logits = false);
  std::vector<float> logits();  // waits for the device
  int argmax();                 // greedy pick of the last token, computed on the device

  const ModelConfig& config() const { return config_; }
  // Bytes of weights one decode step reads: every matrix once, one row of the embedding table.
  uint64_t weight_bytes_per_token() const { return weight_bytes_per_token_; }
  int context() const { return context_; }
  Backend& backend() { return backend_; }

 private:
  struct Layer {
    Tensor attn_norm, wq, wk, wv, wo;
    Tensor mlp_norm, w_gate, w_up, w_down;
    Tensor k_cache, v_cache;
  };
  void forward_chunk(std::span<const int> tokens, int pos, bool all_logits);

  Backend& backend_;
  ModelConfig config_;
  int context_ = 0, max_batch_ = 0;
  Tensor embed_, final_norm_, lm_head_, inv_freq_;
  std::vector<Layer> layers_;
  // Activations, sized for max_batch rows.
  Tensor ids_, x_, xn_, q_, k_, v_, att_, proj_, gate_, up_, logits_, next_id_;
  int last_rows_ = 0;  // rows of logits_ holding the last forward's output
  uint64_t weight_bytes_per_token_ = 0;
};

}  // namespace nibble
