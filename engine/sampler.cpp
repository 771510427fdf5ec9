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
  auto by_weight = [](const auto& a, const auto& b) { return a.first > b.first; };
  const auto first = candidates_.begin();
  size_t survivors = candidates_.size();
  if (config_.top_k > 0 && size_t(config_.top_k) < survivors) {
    survivors = size_t(config_.top_k);
    std::nth_element(first, first + long(survivors - 1), candidates_.end(), by_weight);
  }
  // Softmax over the survivors: each logit becomes its weight exp(logit - max), which orders the
  // candidates alike; probabilities are weight / total.
  const float max_logit = std::max_element(first, first + long(survivors), [](auto& a, auto& b) {
                            return a.first < b.first;
                          })->first;
  double total = 0;
  for (size_t i = 0; i < survivors; ++i)
    total += (candidates_[i].first = std::exp(candidates_[i].first - max_logit));
  auto prob = [&](size_t i) { return candidates_[i].first / total; };
  // Top-p and min-p keep a most likely prefix, and only that prefix is sorted (a full sort of a
  // 32 000-token vocabulary took 2-5 ms per token). Top-p: the first `sorted` candidates, widened
  // until the cut lies within them, straight to all of them where the prefix holds less than half
  // of top_p (flat logits). Min-p alone: those whose weight is at least min_p (the maximum's is 1).
  // Without either, every survivor stays, in any order.
  size_t kept = survivors;
  const float min_p = config_.min_p;
  if (config_.top_p < 1.0f) {
    for (size_t sorted = std::min<size_t>(survivors, 64);;) {
      if (sorted < survivors)
        std::nth_element(first, first + long(sorted), first + long(survivors), by_weight);
      std::sort(first, first + long(sorted), by_weight);
      kept = sorted;
      double cumulative = 0;
      bool decided = false;
      for (size_t i = 0; i < sorted && !decided; ++i)
        if ((cumulative += prob(i)) >= config_.top_p) {
          kept = i + 1;
          decided = true;
        }
      if (decided || sorted == survivors) break;
      sorted = cumulative < config_.top_p / 2 ? survivors : std::min(survivors, 4 * sorted);
    }
  } else if (min_p > 0.0f) {
    kept = size_t(std::partition(first, first + long(survivors),
                                 [&](const auto& c) { return c.first >= min_p; }) -
                  first);
    std::sort(first, first + long(kept), by_weight);
  }
  if (min_p > 0.0f) {
    size_t n = 1;
    while (n < kept && candidates_[n].first >= min_p * candidates_[0].first) ++n;
    kept = n;
  }
  double mass = 0;
  for (size_t i = 0; i < kept; ++i) mass += candidates_[i].first;
  double r = std::uniform_real_distribution<double>(0.0, mass)(rng_);
  for (size_t i = 0; i < kept; ++i) {
    r -= candidates_[i].first;
    if (r <= 0) return candidates_[i].second;
  }
  return candidates_[kept - 1].second;
}

}  // namespace nibble
