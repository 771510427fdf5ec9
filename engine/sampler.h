// Picks the next token from logits the way users know from transformers and llama.cpp.
#pragma once
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace nibble {

struct SamplerConfig {
  float temperature = 0.0f;         // 0: greedy
  int top_k = 0;                    // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off (HF/CTRL semantics over prompt and output)
  uint64_t seed = 0;

  bool greedy() const { return temperature <= 0.0f; }
};

// The token that the draw u in [0, 1) picks from `logits` under `config` (temperature > 0), the
// definition of sampling that every backend implements (here for the host and CpuBackend;
// shaders/sample.comp on Vulkan, engine/cuda/sample.cu on CUDA). In transformers' order of logits
// warpers: each logit becomes the weight w = exp((logit - max) / temperature) (the maximum's is 1);
// top-k keeps the weights of at least the k-th largest; top-p of those the largest w whose sum
// reaches top_p times the kept sum (the smallest most likely set, with all ties at its cut); min-p
// those of at least min_p. The draw walks the kept tokens in vocabulary order and picks the first
// at which their running sum exceeds u times their sum. `scratch` is working space, reused by
// callers.
int draw_token(std::span<const float> logits, const SamplerConfig& config, float u,
               std::vector<float>& scratch);

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& config);
  // `logits` is modified in place; `history` is every token so far (for the repetition penalty).
  // Greedy, or draw_token with the next draw().
  int sample(std::span<float> logits, std::span<const int> history);
  // The next uniform draw in [0, 1) of the generator seeded with config.seed (24 bits): what a
  // device that samples takes instead of sample(), one per token, so that a seed gives the same
  // tokens there and here.
  float draw();
  const SamplerConfig& config() const { return config_; }

 private:
  SamplerConfig config_;
  std::mt19937_64 rng_;
  std::vector<float> scratch_;  // reused between tokens
  std::vector<uint8_t> seen_;   // likewise
};

// Applies the repetition penalty as transformers does: positive logits divided, negative
// multiplied, once per distinct token of `history`. `seen` is scratch space, reused by callers.
void apply_repetition_penalty(std::span<float> logits, std::span<const int> history, float penalty,
                              std::vector<uint8_t>& seen);

}  // namespace nibble
