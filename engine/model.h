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

// How a forward picks its token on the device, for pick(): greedily (no sampling), or drawn as
// draw_token (engine/sampler.h) with `sampling` and the draw u (Sampler::draw), where
// Model::can_sample().
struct DevicePick {
  const SamplerConfig* sampling = nullptr;
  float u = 0;
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

  // Runs `tokens` at positions [pos, pos + n). Afterwards `logits()`/`pick()` refer to the last
  // token, or, with all_logits (ModelOptions::all_logits), `logits()` holds one row per token of
  // the last chunk.
  void forward(std::span<const int> tokens, int pos, bool all_logits = false, DevicePick how = {});
  // Runs one more token at position pos: the last forward's pick, which the device reads itself.
  // The host need not have waited for that pick, so decoding can queue each step behind the one
  // that computes its token and read that token (pick(1)) while it runs: the device goes from
  // step to step without waiting for the host.
  void forward_picked(int pos, DevicePick how = {});
  std::vector<float> logits();           // waits for the device
  void logits(std::vector<float>& out);  // the same into a reused vector (once per token)
  // The token the last forward picked for its last token on the device; with back = 1, that of
  // the forward before it (waiting only for that one).
  int pick(int back = 0);
  // Whether forwards can sample on the device (DevicePick::sampling).
  bool can_sample() { return backend().can_sample(); }

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
  void forward_chunk(std::span<const int> tokens, int pos, bool all_logits, DevicePick how);
  // Runs n tokens at positions [pos, pos + n): `tokens`, or with none the last pick (n = 1).
  void run(int n, int pos, bool all_logits, const int* tokens, DevicePick how);
  void run_layers(Backend& backend, StageState& s, int n);

  std::vector<Stage> stages_;
  ModelConfig config_;
  int context_ = 0, max_batch_ = 0;
  bool all_logits_ = false;
  std::vector<StageState> state_;
  // embed_ on the first stage, the rest on the last. Each forward's pick goes to the other of
  // picks_ than the last one (last_pick_), which the next forward may read.
  Tensor embed_, final_norm_, lm_head_, logits_, picks_[2];
  int last_pick_ = 0;
  std::vector<float> hidden_;  // the hidden state crossing between stages
  int last_rows_ = 0;          // rows of logits_ holding the last forward's output
  uint64_t weight_bytes_per_token_ = 0;
  ComputeDType compute_ = ComputeDType::F32;  // the q projection's (AttentionShape::compute)
};

}  // namespace nibble
