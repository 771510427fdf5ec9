// A Llama-family decoder (Llama 2/3, Mistral, TinyLlama, SmolLM...) written once over `Backend`.
// Its layers may be split over several backends (GPU layers first, the rest on the CPU): only the
// hidden state crosses between them.
#pragma once
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model_config.h"

namespace nibble {

struct ModelOptions {
  int context = 0;  // KV cache positions; 0: min(max_position_embeddings, 4096)
  // Tokens per prefill chunk (activation buffers are sized for this: about 200 KB per token for
  // a 7B). Each chunk converts every 4-bit weight for the matrix units once and fills more of the
  // GPU the longer it is (H100, 7B: 512 tokens in one chunk 12 000 tok/s, in two of 256 about
  // 9 700; docs/PERF.md, "Prefill", session 8).
  int max_batch = 512;
  // Whether forward() may be asked for the logits of every token of a chunk (all_logits), which
  // takes max_batch rows of logits instead of one (a 7B: 64 MB more at 512).
  bool all_logits = false;
  // Called after each weight is on the device: (done, total, tensor name).
  std::function<void(int, int, const std::string&)> on_progress = {};
};

// What a model allocates besides its weights, known before anything is allocated.
struct RuntimeMemory {
  uint64_t kv_cache = 0, activations = 0;
};

// Consecutive decoder layers run by one backend. The first stage also runs the embedding, the
// last the output head.
struct Stage {
  Backend* backend = nullptr;
  int layers = 0;
};

class Model {
 public:
  // Fills in the defaults of `options` (context, max_batch) for `config`.
  static ModelOptions resolve(const ModelConfig& config, ModelOptions options);
  // The KV cache and activation bytes one stage of `layers` layers allocates (resolved options).
  static RuntimeMemory runtime_memory(const ModelConfig& config, const ModelOptions& options,
                                      DType kv_dtype, int layers);

  Model(Backend& backend, const ModelConfig& config, WeightSource& weights,
        const ModelOptions& options = {});
  // Stages' layers must add up to the model's.
  Model(std::vector<Stage> stages, const ModelConfig& config, WeightSource& weights,
        const ModelOptions& options = {});

  // Runs `tokens` at positions [pos, pos + n). Afterwards `logits()`/`argmax()` refer to the last
  // token, or, with all_logits (ModelOptions::all_logits), `logits()` holds one row per token of
  // the last chunk.
  void forward(std::span<const int> tokens, int pos, bool all_logits = false);
  std::vector<float> logits();           // waits for the device
  void logits(std::vector<float>& out);  // the same into a reused vector (once per token)
  int argmax();                          // greedy pick of the last token, computed on the device

  const ModelConfig& config() const { return config_; }
  int context() const { return context_; }
  const std::vector<Stage>& stages() const { return stages_; }
  Backend& backend() { return *stages_.back().backend; }  // the one holding the output head
  // Per-layer times of the last step over all stages (layers numbered model-wide).
  std::vector<LayerTime> step_times();
  // Bytes of weights one decode step reads: every matrix once, one row of the embedding table.
  uint64_t weight_bytes_per_token() const { return weight_bytes_per_token_; }

 private:
  struct Layer {
    Tensor attn_norm, wq, wk, wv, wo;
    Tensor mlp_norm, w_gate, w_up, w_down;
    Tensor k_cache, v_cache;
  };
  // A stage's tensors on its backend: its layers' weights and caches, and activation buffers.
  struct StageState {
    int first_layer = 0;
    std::vector<Layer> layers;
    Tensor inv_freq, ids, x, xn, q, k, v, att, proj, gate, up;
  };
  void forward_chunk(std::span<const int> tokens, int pos, bool all_logits);
  void run_layers(Backend& backend, StageState& s, int n);

  std::vector<Stage> stages_;
  ModelConfig config_;
  int context_ = 0, max_batch_ = 0;
  bool all_logits_ = false;
  std::vector<StageState> state_;
  Tensor embed_, final_norm_, lm_head_, logits_,
      next_id_;                // embed_ on the first stage, rest on the last
  std::vector<float> hidden_;  // the hidden state crossing between stages
  int last_rows_ = 0;          // rows of logits_ holding the last forward's output
  uint64_t weight_bytes_per_token_ = 0;
  ComputeDType compute_ = ComputeDType::F32;  // the q projection's (AttentionShape::compute)
};

}  // namespace nibble
