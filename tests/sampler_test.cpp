#include <doctest/doctest.h>

#include <cmath>
#include <map>

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
