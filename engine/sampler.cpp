#include "engine/sampler.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

namespace nibble {

Sampler::Sampler(const SamplerConfig& config) : config_(config), rng_(config.seed) {
  if (config.temperature < 0) fail("--temp must be >= 0");
  if (config.top_k < 0) fail("--top-k must be >= 0");
  if (!(config.top_p > 0 && config.top_p <= 1)) fail("--top-p must be in (0, 1]");
  if (!(config.min_p >= 0 && config.min_p < 1)) fail("--min-p must be in [0, 1)");
  if (!(config.repetition_penalty > 0)) fail("--repeat-penalty must be > 0");
}

void apply_repetition_penalty(std::span<float> logits, std::span<const int> history, float penalty,
                              std::vector<uint8_t>& seen) {
  if (penalty == 1.0f) return;
  seen.assign(logits.size(), 0);
  for (int id : history) {
    if (id < 0 || size_t(id) >= logits.size() || seen[size_t(id)]) continue;
    seen[size_t(id)] = 1;
    float& l = logits[size_t(id)];
    l = l > 0 ? l / penalty : l * penalty;
  }
}

int Sampler::sample(std::span<float> logits, std::span<const int> history) {
  apply_repetition_penalty(logits, history, config_.repetition_penalty, seen_);
  if (config_.greedy()) return int(std::max_element(logits.begin(), logits.end()) - logits.begin());

  // Order as transformers' logits warpers: temperature, top-k, top-p, min-p.
  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i)
    candidates_.emplace_back(logits[i] / config_.temperature, int(i));
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first; };
  size_t keep = candidates_.size();
  if (config_.top_k > 0 && size_t(config_.top_k) < keep) {
    keep = size_t(config_.top_k);
    std::partial_sort(candidates_.begin(), candidates_.begin() + long(keep), candidates_.end(),
                      by_logit);
    candidates_.resize(keep);
  } else {
    std::sort(candidates_.begin(), candidates_.end(), by_logit);
  }
  // Softmax over the survivors (sorted, so the first is the maximum).
  const float max_logit = candidates_.front().first;
  double total = 0;
  for (auto& c : candidates_) total += (c.first = std::exp(c.first - max_logit));
  for (auto& c : candidates_) c.first = float(c.first / total);
  if (config_.top_p < 1.0f) {
    double cumulative = 0;
    size_t n = 0;
    while (n < candidates_.size()) {
      cumulative += candidates_[n++].first;
      if (cumulative >= config_.top_p) break;
    }
    candidates_.resize(n);
  }
  if (config_.min_p > 0.0f) {
    const float threshold = config_.min_p * candidates_.front().first;
    size_t n = 1;
    while (n < candidates_.size() && candidates_[n].first >= threshold) ++n;
    candidates_.resize(n);
  }
  double mass = 0;
  for (const auto& c : candidates_) mass += c.first;
  double r = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  for (const auto& c : candidates_) {
    r -= c.first;
    if (r <= 0) return c.second;
  }
  return candidates_.back().second;
}

}  // namespace nibble
