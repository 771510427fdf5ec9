// Sampling on a device (Backend::sample) against engine/sampler.h draw_token, the host's
// definition, over vocabularies of 1 to 32 001 tokens (not multiples of a block), flat and peaked
// logits, and each cut alone and together. Float sums in another order may move a boundary by a
// rounding: every device pick must be a valid draw by an independent check in double precision
// (kept, and u inside its interval of the kept mass, to 1e-4), and nearly all must be the host's
// pick. Shared by the Vulkan and CUDA tests.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "engine/backend.h"
#include "engine/sampler.h"
#include "tests/random_model.h"

namespace nibble::test {

// Whether `token` is a draw of u from `logits` under c, as transformers' warpers define the kept
// set (by a full sort) and draw_token's walk in vocabulary order, up to `slack` of the kept mass.
inline bool valid_draw(const std::vector<float>& logits, const SamplerConfig& c, float u, int token,
                       double slack) {
  const size_t n = logits.size();
  if (token < 0 || size_t(token) >= n) return false;
  const double top = *std::max_element(logits.begin(), logits.end());
  std::vector<double> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = std::exp((double(logits[i]) - top) / c.temperature);
  std::vector<double> sorted = w;
  std::sort(sorted.begin(), sorted.end(), std::greater<double>());
  double cut = 0;
  if (c.top_k > 0 && size_t(c.top_k) < n) cut = sorted[size_t(c.top_k - 1)];
  if (c.top_p < 1.0f) {
    double total = 0, above = 0;
    for (double v : sorted) total += v >= cut ? v : 0;
    for (double v : sorted)
      if ((above += v) >= c.top_p * total) {
        cut = std::max(cut, v);
        break;
      }
  }
  cut = std::max(cut, double(c.min_p));
  auto kept = [&](size_t i) { return w[i] >= cut * (1 - 1e-5); };
  if (!kept(size_t(token))) return false;
  double mass = 0, before = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!kept(i)) continue;
    if (i < size_t(token)) before += w[i];
    mass += w[i];
  }
  const double lo = before / mass, hi = (before + w[size_t(token)]) / mass;
  return u >= lo - slack && u <= hi + slack;
}

inline void check_device_sampling(Backend& gpu) {
  REQUIRE(gpu.can_sample());
  std::mt19937 rng(31);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  const SamplerConfig configs[] = {
      {.temperature = 1.0f},
      {.temperature = 0.6f, .top_p = 0.9f},
      {.temperature = 0.7f, .top_k = 50},
      {.temperature = 1.0f, .top_k = 1},
      {.temperature = 1.3f, .min_p = 0.05f},
      {.temperature = 0.6f, .top_k = 40, .top_p = 0.95f, .min_p = 0.02f},
  };
  std::vector<float> scratch;
  int draws = 0, same = 0;
  for (int64_t vocab : {1, 7, 255, 1000, 32001}) {
    const Tensor logits = gpu.alloc(DType::F32, 1, vocab, Usage::Activations);
    const Tensor id = gpu.alloc(DType::I32, 1, 1, Usage::Activations);
    for (float spread : {0.05f, 4.0f}) {  // flat: top-p keeps thousands; peaked: a few
      const std::vector<float> l = random_floats(rng, size_t(vocab), spread);
      gpu.write(logits, l.data());
      for (const SamplerConfig& c : configs)
        for (int d = 0; d < 4; ++d) {
          CAPTURE(vocab);
          CAPTURE(spread);
          CAPTURE(c.temperature);
          const float u = uniform(rng);
          const int poison = -7;
          gpu.write(id, &poison);
          gpu.begin_step({0, 1, u});
          gpu.sample(id, logits, c);
          gpu.end_step();
          int got = 0;
          gpu.read(id, &got);
          const int want = draw_token(l, c, u, scratch);
          CHECK(valid_draw(l, c, u, got, 1e-4));
          CHECK(valid_draw(l, c, u, want, 1e-4));
          ++draws;
          same += got == want;
        }
    }
  }
  CHECK(same * 100 >= draws * 97);
}

}  // namespace nibble::test
