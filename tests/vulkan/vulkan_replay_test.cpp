// Steps recorded once and replayed (engine/vulkan/vulkan_backend.cpp end_step): steps use two
// slots in turn, and a step whose command list equals the one its slot recorded last is submitted
// again unchanged, only the step data (the position) being new. Greedy decoding with replay must
// give logits bit-identical to recording every step (NIBBLE_VK_NO_REPLAY=1) and match the CPU
// reference (tolerance as in vulkan_model_test.cpp: 2e-3 for 16-bit weights); a step whose
// attention needs one more 128-position tile is recorded again. Each test counts the replays
// through Backend::step_stats.
#include <cstdlib>

#include "engine/model.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

// A Vulkan backend that records every step.
std::unique_ptr<Backend> vulkan_without_replay() {
  struct Variable {
    Variable() { setenv("NIBBLE_VK_NO_REPLAY", "1", 1); }
    ~Variable() { unsetenv("NIBBLE_VK_NO_REPLAY"); }
  } no_replay;
  return make_vulkan_backend(-1);
}

bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}

}  // namespace

TEST_CASE("vulkan: replayed decode steps give the recorded steps' logits, across a new tile") {
  auto replaying = vulkan_or_skip();
  if (!replaying) return;
  auto recording = vulkan_without_replay();
  CpuBackend cpu(2);
  ModelConfig c = tiny_config();
  c.max_position_embeddings = 256;
  RandomWeights weights(11, DType::BF16);
  const ModelOptions options{.context = 160, .max_batch = 8};
  Model want(cpu, c, weights, options), got(*replaying, c, weights, options),
      plain(*recording, c, weights, options);
  std::vector<int> prompt;
  for (int i = 0; i < 120; ++i) prompt.push_back((i * 37 + 5) % c.vocab_size);
  for (Model* m : {&want, &got, &plain}) m->forward(prompt, 0);

  // Positions 120..139: the attention covers one 128-position tile up to position 127, two from
  // position 128 on.
  const StepStats replaying_before = replaying->step_stats(),
                  recording_before = recording->step_stats();
  int token = want.pick();
  for (int pos = 120; pos < 140; ++pos) {
    CAPTURE(pos);
    CHECK(got.pick() == token);
    CHECK(plain.pick() == token);
    const std::vector<int> next{token};  // the CPU's pick for all three, so they stay comparable
    for (Model* m : {&want, &got, &plain}) m->forward(next, pos);
    const std::vector<float> reference = want.logits(), replayed = got.logits(),
                             recorded = plain.logits();
    REQUIRE(all_finite(recorded));
    CHECK(replayed == recorded);
    CHECK(checked_error(replayed, reference) < 2e-3);
    token = want.pick();
  }

  const StepStats r = replaying->step_stats() - replaying_before;
  const StepStats p = recording->step_stats() - recording_before;
  CHECK(r.steps == 20);
  // Recorded in each slot: the first decode step (after the prompt) and the first from position
  // 128 on.
  CHECK(r.replayed == 16);
  CHECK(p.steps == 20);
  CHECK(p.replayed == 0);
  // The same commands either way: per layer at least the attention's and the matmuls'.
  CHECK(r.dispatches == p.dispatches);
  CHECK(r.barriers == p.barriers);
  CHECK(r.dispatches >= 20 * 4 * uint64_t(c.num_hidden_layers));
  CHECK(r.barriers >= 20 * 4 * uint64_t(c.num_hidden_layers));
}

// Op level, against the CPU: each step writes new q, k, v (bytes copied inside the step, so a
// replay must see the new ones) and poisons the output, stores k and v at its position and
// attends over the cache. Around 128 positions the split grows from one tile to two; past 16
// tiles (2048 positions) each split covers two tiles.
TEST_CASE("vulkan: replayed decode attention at tile boundaries and past 16 splits") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(29);
  const AttentionShape shape{4, 2, 16, 0};
  const int64_t q_cols = 4 * 16, kv_cols = 2 * 16, context = 2060;
  const auto k_all = f16_rounded(random_floats(rng, size_t(context * kv_cols)));
  const auto v_all = f16_rounded(random_floats(rng, size_t(context * kv_cols)));
  const std::vector<float> nan(size_t(q_cols), std::numeric_limits<float>::quiet_NaN());
  struct Tensors {
    Tensor kc, vc, q, k, v, out;
  } t[2];
  for (int i = 0; i < 2; ++i) {
    Backend& b = *p.both[i];
    t[i] = {b.alloc_kv(context, kv_cols),
            b.alloc_kv(context, kv_cols),
            b.alloc(DType::F32, 1, q_cols, Usage::Activations),
            b.alloc(DType::F32, 1, kv_cols, Usage::Activations),
            b.alloc(DType::F32, 1, kv_cols, Usage::Activations),
            b.alloc(DType::F32, 1, q_cols, Usage::Activations)};
    const Tensor k = b.alloc(DType::F32, context, kv_cols, Usage::Activations);
    const Tensor v = b.alloc(DType::F32, context, kv_cols, Usage::Activations);
    b.write(k, k_all.data());
    b.write(v, v_all.data());
    b.begin_step({0, int(context)});
    b.kv_store(t[i].kc, t[i].vc, k, v);
    b.end_step();
  }
  // One split attention first: it allocates the splits' scratch and zeroes the counts (a model
  // reserves them up front, an op test does not), so every step after it records alike.
  p.gpu->begin_step({300, 1});
  p.gpu->attention(t[1].out, t[1].q, t[1].kc, t[1].vc, shape);
  p.gpu->end_step();
  const StepStats before = p.gpu->step_stats();
  for (int pos : {126, 127, 128, 129, 130, 2046, 2047, 2048, 2049, 2050}) {
    CAPTURE(pos);
    const auto q = random_floats(rng, size_t(q_cols));
    const auto k = f16_rounded(random_floats(rng, size_t(kv_cols)));
    const auto v = f16_rounded(random_floats(rng, size_t(kv_cols)));
    Io io;
    for (int i = 0; i < 2; ++i) {
      Backend& b = *p.both[i];
      b.begin_step({pos, 1});
      b.write(t[i].q, q.data());
      b.write(t[i].k, k.data());
      b.write(t[i].v, v.data());
      b.write(t[i].out, nan.data());
      b.kv_store(t[i].kc, t[i].vc, t[i].k, t[i].v);
      b.attention(t[i].out, t[i].q, t[i].kc, t[i].vc, shape);
      b.end_step();
      io.out[i] = read_f32(b, t[i].out);
    }
    CHECK(checked_error(io.out[1], io.out[0]) < 1e-5);
  }
  // Recorded in each of the two slots: 126 and 127 (first), 128 and 129 (two tiles), 2046 and
  // 2047 (16 tiles), 2048 and 2049 (17: 9 splits of two).
  const StepStats s = p.gpu->step_stats() - before;
  CHECK(s.steps == 10);
  CHECK(s.replayed == 2);
}

// Each slot times its steps in a query pool of its own, so steps queued on the device's pick
// (forward_picked, two in flight) report their times as well.
TEST_CASE("vulkan: replayed steps still report per-layer times") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  const ModelConfig c = tiny_config(3);
  RandomWeights w(6, DType::BF16);
  gpu->set_profiling(true);
  Model model(*gpu, c, w, {.context = 32, .max_batch = 4});
  model.forward(std::vector<int>{1, 2, 3}, 0);
  const StepStats before = gpu->step_stats();
  for (int pos = 3; pos < 9; ++pos) {
    CAPTURE(pos);
    if (pos < 7) {
      model.forward(std::vector<int>{model.pick()}, pos);
    } else {
      model.forward_picked(pos);
      model.pick(1);
    }
    const std::vector<LayerTime> times = gpu->step_times();
    if (!vk::list_devices().front().timestamps) continue;
    REQUIRE(times.size() == size_t(2 * c.num_hidden_layers));
    for (size_t i = 0; i < times.size(); ++i) {
      CHECK(times[i].layer == int(i / 2));
      CHECK(times[i].phase == (i % 2 ? Phase::Mlp : Phase::Attention));
      CHECK(times[i].ms >= 0.0);
    }
  }
  // Recorded: the first step in each slot, and the first picked one in each.
  CHECK((gpu->step_stats() - before).replayed == 2);
}

// Greedy decoding as Generator runs it: each step queued on the device's pick of the step before
// (Model::forward_picked), whose pick the host reads (pick(1)) while the new step runs. The
// tokens must be the CPU's greedy ones, and the steps replay in both slots.
TEST_CASE("vulkan: steps queued on the device's pick decode the CPU's greedy tokens") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  CpuBackend cpu(2);
  const ModelConfig c = tiny_config();
  RandomWeights weights(13, DType::BF16);
  const ModelOptions options{.context = 64, .max_batch = 8};
  Model want(cpu, c, weights, options), got(*gpu, c, weights, options);
  std::vector<int> prompt;
  for (int i = 0; i < 12; ++i) prompt.push_back((i * 29 + 3) % c.vocab_size);
  want.forward(prompt, 0);
  std::vector<int> expected;
  for (int pos = 12; pos < 40; ++pos) {
    expected.push_back(want.pick());
    want.forward(std::span<const int>(&expected.back(), 1), pos);
  }
  expected.push_back(want.pick());

  got.forward(prompt, 0);
  const StepStats before = gpu->step_stats();
  std::vector<int> tokens{got.pick()};
  for (int pos = 12; pos < 40; ++pos) {
    got.forward_picked(pos);
    if (pos > 12) tokens.push_back(got.pick(1));  // the step before's, while this one runs
  }
  tokens.push_back(got.pick());
  CHECK(tokens == expected);
  int changes = 0;  // a step that read a stale pick would change the tokens
  for (size_t i = 1; i < expected.size(); ++i) changes += expected[i] != expected[i - 1];
  CHECK(changes >= 10);
  const StepStats s = gpu->step_stats() - before;
  CHECK(s.steps == 28);
  CHECK(s.replayed == 26);  // the first step in each slot recorded
}

// A Usage::Output tensor (the logits) is read from a host copy that each step writing it makes:
// after a write from the host, after one step, and after the later of two steps in flight.
TEST_CASE("vulkan: an output tensor reads back what the last step or the host wrote") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  std::mt19937 rng(5);
  const int64_t n = 1000;
  const std::vector<float> a = random_floats(rng, n), y = random_floats(rng, n);
  const Tensor out = gpu->alloc(DType::F32, 1, n, Usage::Output);
  const Tensor in = gpu->alloc(DType::F32, 1, n, Usage::Activations);
  gpu->write(in, y.data());
  gpu->write(out, a.data());
  CHECK(read_f32(*gpu, out) == a);
  std::vector<float> want = a;
  for (int steps : {1, 2}) {
    CAPTURE(steps);
    for (int s = 0; s < steps; ++s) {
      gpu->begin_step({0, 1});
      gpu->add(out, in);
      gpu->end_step();
      for (int64_t i = 0; i < n; ++i) want[size_t(i)] += y[size_t(i)];
    }
    CHECK(checked_error(read_f32(*gpu, out), want) < 1e-6);
  }
}
