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

class Sampler {
 public:
  explicit Sampler(const SamplerConfig& config);
  // `logits` is modified in place; `history` is every token so far (for the repetition penalty).
  int sample(std::span<float> logits, std::span<const int> history);
  const SamplerConfig& config() const { return config_; }

 private:
  SamplerConfig config_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int>> candidates_;  // reused between tokens
  std::vector<uint8_t> seen_;                      // likewise
};

// Applies the repetition penalty as transformers does: positive logits divided, negative
// multiplied, once per distinct token of `history`. `seen` is scratch space, reused by callers.
void apply_repetition_penalty(std::span<float> logits, std::span<const int> history, float penalty,
                              std::vector<uint8_t>& seen);

}  // namespace nibble
