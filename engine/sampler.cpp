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
  // candidates alike; probabilities are weight / total, never normalized: the draw below is over
  // the kept mass.
  const float max_logit = std::max_element(first, first + long(survivors), [](auto& a, auto& b) {
                            return a.first < b.first;
                          })->first;
  double total = 0;
  for (size_t i = 0; i < survivors; ++i)
    total += (candidates_[i].first = std::exp(candidates_[i].first - max_logit));
  // Top-p keeps the smallest most likely set whose mass reaches top_p, as a sort would cut it,
  // found by partitioning around pivots instead (expected linear time; a full sort of a
  // 32 000-token vocabulary took 2-5 ms per token): [0, lo) is kept whole, its mass `above`, and
  // the cut lies in [lo, hi), which is sorted once small. Min-p then keeps those whose weight is at
  // least min_p (the maximum's is 1). The kept ones are drawn from in any order.
  size_t kept = survivors;
  if (config_.top_p < 1.0f) {
    const double target = config_.top_p * total;
    size_t lo = 0, hi = survivors;
    double above = 0;
    while (hi - lo > 64) {
      const float pivot = candidates_[lo + (hi - lo) / 2].first;
      const auto heavier = std::partition(first + long(lo), first + long(hi),
                                          [&](const auto& c) { return c.first > pivot; });
      const auto equal = std::partition(heavier, first + long(hi),
                                        [&](const auto& c) { return c.first == pivot; });
      double mass = 0;
      for (auto c = first + long(lo); c != heavier; ++c) mass += c->first;
      if (above + mass >= target) {  // within the heavier ones
        hi = size_t(heavier - first);
        continue;
      }
      above += mass;
      lo = size_t(heavier - first);
      if (above + double(pivot) * double(equal - heavier) >= target) {  // within the equal ones
        hi = size_t(equal - first);
        break;
      }
      above += double(pivot) * double(equal - heavier);
      lo = size_t(equal - first);
    }
    std::sort(first + long(lo), first + long(hi), by_weight);
    kept = hi;
    for (size_t i = lo; i < hi; ++i)
      if ((above += candidates_[i].first) >= target) {
        kept = i + 1;
        break;
      }
  }
  if (config_.min_p > 0.0f)
    kept = size_t(std::partition(first, first + long(kept),
                                 [&](const auto& c) { return c.first >= config_.min_p; }) -
                  first);
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
