// The model forward on the CPU reference backend: internal consistency (prefill vs decode, chunked
// prefill, GQA, sliding window). Agreement with HF transformers is in model_fixture_test.cpp.
#include <doctest/doctest.h>

#include <set>

#include "engine/cpu/cpu_backend.h"
#include "engine/model.h"
#include "engine/sampler.h"
#include "tests/random_model.h"

using namespace nibble;
using nibble::test::rel_error;

namespace {

std::vector<int> prompt_ids(int n, int vocab) {
  std::vector<int> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
  return ids;
}

// Logits of every position, computed with one prefill.
std::vector<float> prefill_logits(const ModelConfig& c, const std::vector<int>& ids, int max_batch,
                                  DType dtype = DType::F32) {
  CpuBackend backend(2);
  test::RandomWeights weights(7, dtype);
  Model model(backend, c, weights, {.context = 64, .max_batch = max_batch, .all_logits = true});
  std::vector<float> all;
  for (size_t i = 0; i < ids.size(); i += size_t(max_batch)) {
    const size_t n = std::min(ids.size() - i, size_t(max_batch));
    model.forward(std::span(ids).subspan(i, n), int(i), true);
    const std::vector<float> l = model.logits();
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

// Logits of every position, computed one token at a time (the decode path).
std::vector<float> decode_logits(const ModelConfig& c, const std::vector<int>& ids,
                                 DType dtype = DType::F32) {
  CpuBackend backend(2);
  test::RandomWeights weights(7, dtype);
  Model model(backend, c, weights, {.context = 64, .max_batch = 4});
  std::vector<float> all;
  for (size_t i = 0; i < ids.size(); ++i) {
    model.forward(std::span(ids).subspan(i, 1), int(i));
    const std::vector<float> l = model.logits();
    all.insert(all.end(), l.begin(), l.end());
  }
  return all;
}

}  // namespace

TEST_CASE("model: prefill and token-by-token decode give the same logits") {
  for (int kv_heads : {4, 2, 1}) {  // MHA, GQA, MQA
    CAPTURE(kv_heads);
    const ModelConfig c = test::tiny_config(2, 64, 4, kv_heads);
    const auto ids = prompt_ids(13, c.vocab_size);
    const auto prefill = prefill_logits(c, ids, 16);
    const auto decode = decode_logits(c, ids);
    CHECK(rel_error(decode, prefill) < 1e-5);
  }
}

TEST_CASE("model: a prefill split into chunks equals one prefill") {
  const ModelConfig c = test::tiny_config();
  const auto ids = prompt_ids(19, c.vocab_size);
  CHECK(rel_error(prefill_logits(c, ids, 5), prefill_logits(c, ids, 32)) < 1e-5);
}

TEST_CASE("model: the sliding window limits attention to the last positions") {
  ModelConfig c = test::tiny_config();
  const auto ids = prompt_ids(12, c.vocab_size);
  const auto full = decode_logits(c, ids);
  c.sliding_window = 4;
  const auto windowed = decode_logits(c, ids);
  const size_t v = size_t(c.vocab_size);
  // Positions inside the window see every earlier token: identical. Later ones differ.
  const std::vector<float> early_full(full.begin(), full.begin() + 4 * v);
  const std::vector<float> early_win(windowed.begin(), windowed.begin() + 4 * v);
  CHECK(rel_error(early_win, early_full) < 1e-6);
  CHECK(rel_error(windowed, full) > 1e-4);
  CHECK(rel_error(prefill_logits(c, ids, 16), windowed) < 1e-5);
}

TEST_CASE("model: 16-bit weights load and agree with their float32 values") {
  const ModelConfig c = test::tiny_config();
  const auto ids = prompt_ids(6, c.vocab_size);
  for (DType t : {DType::F16, DType::BF16}) {
    const auto l = prefill_logits(c, ids, 8, t);
    for (float v : l) REQUIRE(std::isfinite(v));
    // Same random normals rounded to 16 bits: close to the float32 model, not equal.
    const double e = rel_error(l, prefill_logits(c, ids, 8, DType::F32));
    CHECK(e < (t == DType::F16 ? 2e-3 : 2e-2));
    CHECK(e > 0);
  }
}

TEST_CASE("model: positions past the context and bad token ids are errors") {
  CpuBackend backend(1);
  test::RandomWeights weights(1);
  const ModelConfig c = test::tiny_config();
  Model model(backend, c, weights, {.context = 8, .max_batch = 4});
  const std::vector<int> ok{1, 2, 3};
  CHECK_THROWS_AS(model.forward(ok, 6), Error);
  const std::vector<int> bad{1, c.vocab_size};
  CHECK_THROWS_AS(model.forward(bad, 0), Error);
}

TEST_CASE("model: the logits of every token take ModelOptions::all_logits") {
  CpuBackend backend(1);
  test::RandomWeights weights(1);
  const ModelConfig c = test::tiny_config();
  const ModelOptions last_only{.context = 8, .max_batch = 4};
  ModelOptions every = last_only;
  every.all_logits = true;
  // One row of logits unless every row may be asked for.
  const uint64_t f32 = 4, vocab = uint64_t(c.vocab_size);
  CHECK(Model::runtime_memory(c, every, DType::F32, 1).activations -
            Model::runtime_memory(c, last_only, DType::F32, 1).activations ==
        3 * vocab * f32);
  Model model(backend, c, weights, last_only);
  const std::vector<int> ids{1, 2, 3};
  CHECK_THROWS_AS(model.forward(ids, 0, true), Error);
  model.forward(ids, 0);
  CHECK(model.logits().size() == vocab);
}

TEST_CASE("model: argmax on the backend equals the argmax of the logits") {
  CpuBackend backend(1);
  test::RandomWeights weights(3);
  Model model(backend, test::tiny_config(), weights, {.context = 16});
  const std::vector<int> ids{5, 9, 2};
  model.forward(ids, 0);
  const auto l = model.logits();
  CHECK(model.pick() == int(std::max_element(l.begin(), l.end()) - l.begin()));
}

TEST_CASE("model: a step on the device's own pick equals one the host feeds that pick") {
  const ModelConfig c = test::tiny_config();
  test::RandomWeights weights(3);
  CpuBackend fed_backend(1), picked_backend(1);
  Model fed(fed_backend, c, weights, {.context = 32}),
      picked(picked_backend, c, weights, {.context = 32});
  const std::vector<int> ids = prompt_ids(5, c.vocab_size);
  fed.forward(ids, 0);
  picked.forward(ids, 0);
  std::vector<int> tokens;
  for (int pos = 5; pos < 20; ++pos) {
    CAPTURE(pos);
    const int token = fed.pick();
    tokens.push_back(token);
    fed.forward(std::span<const int>(&token, 1), pos);
    picked.forward_picked(pos);
    CHECK(picked.pick(1) == token);  // the pick it ran, still readable
    CHECK(picked.pick() == fed.pick());
    CHECK(picked.logits() == fed.logits());
  }
  // The picks change from step to step: reading the wrong one would change the logits.
  int changes = 0;
  for (size_t i = 1; i < tokens.size(); ++i) changes += tokens[i] != tokens[i - 1];
  CHECK(changes >= 5);
  CHECK_THROWS_AS(picked.pick(2), Error);
  CHECK_THROWS_AS(picked.forward_picked(32), Error);
}

// The host samples from the logits (Sampler::sample) where the device cannot (or for the
// repetition penalty); a device samples with the same draws (Sampler::draw): one seed, one text.
TEST_CASE("model: sampling on the device and on the host give a seed's same tokens") {
  const ModelConfig c = test::tiny_config();
  test::RandomWeights weights(3);
  CpuBackend backend(1);
  Model model(backend, c, weights, {.context = 40});
  const SamplerConfig config{.temperature = 0.9f, .top_k = 20, .top_p = 0.9f, .seed = 11};
  auto run = [&](bool on_device) {
    Sampler sampler(config);
    std::vector<int> tokens = prompt_ids(4, c.vocab_size);
    std::vector<float> logits;
    for (int pos = 0; pos + 1 < 30; pos = int(tokens.size()) - 1) {
      const std::span<const int> in =
          pos == 0 ? std::span<const int>(tokens) : std::span<const int>(&tokens.back(), 1);
      if (on_device) {
        model.forward(in, pos, false, {&config, sampler.draw()});
        tokens.push_back(model.pick());
      } else {
        model.forward(in, pos);
        model.logits(logits);
        tokens.push_back(sampler.sample(logits, {}));
      }
    }
    return tokens;
  };
  const std::vector<int> host = run(false);
  CHECK(run(true) == host);
  CHECK(std::set<int>(host.begin() + 4, host.end()).size() >= 5);
}
