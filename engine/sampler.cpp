#include "engine/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>

#include "engine/error.h"

namespace nibble {

namespace {

// exp(x) for x <= 0, to within 2.4e-7 relative (below e^-87, e^-87): x = n ln 2 + r with
// |r| <= ln(2) / 2, exp(r) by its Taylor polynomial, 2^n added to the exponent. Written so that
// the compiler vectorizes the loop calling it (CMakeLists.txt compiles this file with
// -fno-trapping-math for the clamp): std::exp took 7.5 ns a value, 0.24 ms for a 32 000-token
// vocabulary, against a decode step of 1-3 ms (docs/PERF.md, "Decode", session 10).
inline float exp_nonpositive(float x) {
  x = x > -87.0f ? x : -87.0f;
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504f + shifter;
  const float n = t - shifter;
  const float r = x - n * 0.693145752f - n * 1.42860677e-6f;  // ln 2 in two parts
  float e = 1.0f / 720;
  for (float c : {1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f}) e = e * r + c;
  return std::bit_cast<float>(std::bit_cast<int32_t>(e) +
                              int32_t(uint32_t(std::bit_cast<int32_t>(t) - 0x4b400000) << 23));
}

// The largest of `weights` whose sum with the weights above it reaches `target`, as a sort would
// find it, by partitioning around pivots instead (expected linear time; a full sort of a 32 000-
// token vocabulary took 2-5 ms): [0, lo) is above the cut, their sum `above`, and the cut lies
// in [lo, hi), which is sorted once small. 0 (keep all) where rounding leaves the sum short.
float top_p_cut(std::span<float> weights, double target) {
  const auto first = weights.begin();
  size_t lo = 0, hi = weights.size();
  double above = 0;
  while (hi - lo > 64) {
    const float pivot = weights[lo + (hi - lo) / 2];
    const auto heavier =
        std::partition(first + long(lo), first + long(hi), [&](float w) { return w > pivot; });
    const auto equal =
        std::partition(heavier, first + long(hi), [&](float w) { return w == pivot; });
    double mass = 0;
    for (auto w = first + long(lo); w != heavier; ++w) mass += *w;
    if (above + mass >= target) {  // within the heavier ones
      hi = size_t(heavier - first);
      continue;
    }
    above += mass + double(pivot) * double(equal - heavier);
    if (above >= target) return pivot;  // within the equal ones
    lo = size_t(equal - first);
  }
  std::sort(first + long(lo), first + long(hi), std::greater<float>());
  for (size_t i = lo; i < hi; ++i)
    if ((above += weights[i]) >= target) return weights[i];
  return 0.0f;
}

}  // namespace

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

int draw_token(std::span<const float> logits, const SamplerConfig& config, float u,
               std::vector<float>& scratch) {
  const size_t n = logits.size();
  const float max_logit = *std::max_element(logits.begin(), logits.end());
  const float inverse_temperature = 1.0f / config.temperature;
  scratch.resize(2 * n);  // the weights, then the candidates for a cut
  float* w = scratch.data();
  for (size_t i = 0; i < n; ++i)
    w[i] = exp_nonpositive((logits[i] - max_logit) * inverse_temperature);
  auto kept_sum = [&](float cut) {
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += w[i] >= cut ? w[i] : 0.0f;
    return sum;
  };
  float* candidates = w + n;  // the survivors' weights, reordered to find a cut
  float cut = 0;              // the kept weights are those >= cut
  if (config.top_k > 0 && size_t(config.top_k) < n) {
    std::copy(w, w + n, candidates);
    std::nth_element(candidates, candidates + (config.top_k - 1), candidates + n,
                     std::greater<float>());
    cut = candidates[config.top_k - 1];
  }
  if (config.top_p < 1.0f) {
    size_t survivors = 0;
    for (size_t i = 0; i < n; ++i)
      if (w[i] >= cut) candidates[survivors++] = w[i];
    cut = std::max(cut, top_p_cut({candidates, survivors}, double(config.top_p) * kept_sum(cut)));
  }
  cut = std::max(cut, config.min_p);
  double r = double(u) * kept_sum(cut);
  size_t last = 0;
  for (size_t i = 0; i < n; ++i) {
    if (w[i] < cut) continue;
    last = i;
    if ((r -= w[i]) < 0) return int(i);
  }
  return int(last);  // u * sum rounded up to the sum
}

int Sampler::sample(std::span<float> logits, std::span<const int> history) {
  apply_repetition_penalty(logits, history, config_.repetition_penalty, seen_);
  if (config_.greedy()) return int(std::max_element(logits.begin(), logits.end()) - logits.begin());
  return draw_token(logits, config_, draw(), scratch_);
}

float Sampler::draw() {
  return float(rng_() >> 40) * 0x1p-24f;
}

}  // namespace nibble
