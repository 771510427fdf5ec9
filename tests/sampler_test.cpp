#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>
#include <set>

#include "engine/error.h"
#include "engine/sampler.h"

using namespace nibble;

namespace {
std::vector<float> logits_of(std::initializer_list<float> v) {
  return std::vector<float>(v);
}
}  // namespace

TEST_CASE("sampler: greedy picks the first maximum") {
  Sampler s({});
  auto l = logits_of({0.1f, 2.0f, -1.0f, 2.0f});
  CHECK(s.sample(l, {}) == 1);
}

TEST_CASE("sampler: the same seed gives the same tokens, another seed others") {
  auto run = [](uint64_t seed) {
    Sampler s({.temperature = 1.0f, .seed = seed});
    std::vector<int> out;
    for (int i = 0; i < 64; ++i) {
      std::vector<float> l(50);
      for (int j = 0; j < 50; ++j) l[size_t(j)] = float(std::sin(j * 1.7));
      out.push_back(s.sample(l, {}));
    }
    return out;
  };
  CHECK(run(42) == run(42));
  CHECK(run(42) != run(43));
}

TEST_CASE("sampler: frequencies follow the softmax of logits / temperature") {
  const std::vector<float> base{1.0f, 0.0f, -1.0f, 0.5f};
  for (float temp : {0.5f, 1.0f, 2.0f}) {
    CAPTURE(temp);
    Sampler s({.temperature = temp, .seed = 1});
    std::vector<double> p(4);
    double z = 0;
    for (size_t i = 0; i < 4; ++i) z += (p[i] = std::exp(base[i] / temp));
    std::vector<int> counts(4);
    const int n = 20000;
    for (int i = 0; i < n; ++i) {
      auto l = base;
      ++counts[size_t(s.sample(l, {}))];
    }
    for (size_t i = 0; i < 4; ++i) CHECK(std::abs(counts[i] / double(n) - p[i] / z) < 0.015);
  }
}

TEST_CASE("sampler: top-k, top-p and min-p cut the candidates") {
  const std::vector<float> base{3.0f, 2.9f, 0.0f, -5.0f};
  auto seen = [&](SamplerConfig c) {
    Sampler s(c);
    std::map<int, int> counts;
    for (int i = 0; i < 2000; ++i) {
      auto l = base;
      ++counts[s.sample(l, {})];
    }
    return counts;
  };
  CHECK(seen({.temperature = 1.0f, .top_k = 1}).size() == 1);
  const auto k2 = seen({.temperature = 1.0f, .top_k = 2});
  CHECK(k2.size() == 2);
  CHECK(!k2.count(2));
  // p(0) ~ 0.51, p(1) ~ 0.46: top_p 0.6 keeps exactly two, 0.5 one.
  CHECK(seen({.temperature = 1.0f, .top_p = 0.6f}).size() == 2);
  CHECK(seen({.temperature = 1.0f, .top_p = 0.5f}).size() == 1);
  // p(2) / p(0) = e^-3 ~ 0.05: min_p 0.1 drops it.
  const auto mp = seen({.temperature = 1.0f, .min_p = 0.1f});
  CHECK(mp.size() == 2);
}

// Over a vocabulary of 3 000, where the sampler sorts only a most likely prefix and widens it
// until the cut lies inside: every sampled token is in the set a full sort keeps (computed here
// as transformers defines the warpers), and nearly all of that set is drawn, also where it is
// far larger than the first prefix (64).
TEST_CASE("sampler: top-k, top-p and min-p over a large vocabulary keep the full sort's set") {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> base(3000);
  for (float& l : base) l = normal(rng);
  for (int i = 0; i < 8; ++i) base[size_t(i * 311)] += 4.0f;  // a few likely tokens
  auto expected = [&](const SamplerConfig& c) {
    std::vector<int> order(base.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int a, int b) { return base[size_t(a)] > base[size_t(b)]; });
    if (c.top_k > 0) order.resize(size_t(c.top_k));
    double total = 0;
    std::vector<double> p;
    for (int id : order)
      p.push_back(std::exp(double(base[size_t(id)] - base[size_t(order[0])]) / c.temperature));
    for (double v : p) total += v;
    size_t kept = order.size();
    double cumulative = 0;
    for (size_t i = 0; i < order.size() && c.top_p < 1.0f; ++i)
      if ((cumulative += p[i] / total) >= c.top_p) {
        kept = i + 1;
        break;
      }
    size_t n = 1;
    while (n < kept && p[n] >= c.min_p * p[0]) ++n;
    return std::set<int>(order.begin(), order.begin() + long(n));
  };
  for (const SamplerConfig c :
       {SamplerConfig{.temperature = 0.7f, .top_p = 0.5f},
        SamplerConfig{.temperature = 2.0f, .top_p = 0.9f},
        SamplerConfig{.temperature = 1.0f, .top_k = 500, .top_p = 0.8f},
        SamplerConfig{.temperature = 1.0f, .min_p = 0.05f},
        SamplerConfig{.temperature = 1.0f, .top_p = 0.95f, .min_p = 0.2f}}) {
    CAPTURE(c.temperature);
    CAPTURE(c.top_p);
    const std::set<int> want = expected(c);
    Sampler s(c);
    std::set<int> seen;
    bool inside = true;
    for (int i = 0; i < 3000; ++i) {
      auto l = base;
      const int id = s.sample(l, {});
      inside &= want.count(id) > 0;
      seen.insert(id);
    }
    CHECK(inside);
    // Nearly all of them drawn (sets of 6 to 2 344 here: 3 000 draws see most of a large one).
    CHECK(seen.size() * 10 >= std::min<size_t>(want.size(), 300) * 9);
  }
  // The flat cases keep far more than the first prefix of 64.
  CHECK(expected({.temperature = 2.0f, .top_p = 0.9f}).size() > 256);
}

TEST_CASE("sampler: repetition penalty as transformers applies it") {
  std::vector<float> l{2.0f, -2.0f, 1.0f};
  const std::vector<int> history{0, 1, 1};
  std::vector<uint8_t> seen;
  apply_repetition_penalty(l, history, 2.0f, seen);
  CHECK(l[0] == doctest::Approx(1.0f));
  CHECK(l[1] == doctest::Approx(-4.0f));
  CHECK(l[2] == doctest::Approx(1.0f));
  // Greedy with a penalty moves away from the repeated token.
  Sampler s({.repetition_penalty = 3.0f});
  std::vector<float> l2{2.0f, 1.0f};
  const std::vector<int> h2{0};
  CHECK(s.sample(l2, h2) == 1);
}

TEST_CASE("sampler: invalid settings are errors") {
  CHECK_THROWS_AS(Sampler({.temperature = -1.0f}), Error);
  CHECK_THROWS_AS(Sampler({.top_p = 0.0f}), Error);
  CHECK_THROWS_AS(Sampler({.min_p = 1.0f}), Error);
  CHECK_THROWS_AS(Sampler({.repetition_penalty = 0.0f}), Error);
}
