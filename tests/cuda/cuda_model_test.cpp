// The whole model forward on CUDA against the CPU reference: prompt logits close, greedy tokens
// identical. Decode steps go through the captured CUDA graph (replayed at each new position),
// or, when profiling, through eager launches; both are checked.
//
// Tolerance: the CUDA KV cache is F16 while the CPU keeps float32, so attention sees keys and
// values rounded to 11 bits; over a tiny random model that moves logits by well under 1e-2.
#include <doctest/doctest.h>

#include <algorithm>

#include "engine/cpu/cpu_backend.h"
#include "engine/model.h"
#include "tests/cuda/cuda_test_util.h"

using namespace nibble;
using test::rel_error;

namespace {

constexpr double kLogitTolerance = 1e-2;

struct Run {
  std::vector<float> prompt_logits;  // one row per prompt token
  std::vector<std::vector<float>> step_logits;
  std::vector<int> tokens;  // greedy continuation
};

// Prefills `prompt` (in chunks of max_batch) and then decodes `steps` greedy tokens.
Run generate(Backend& backend, const ModelConfig& c, WeightSource& weights,
             const std::vector<int>& prompt, int steps, int max_batch = 8) {
  Model model(backend, c, weights, {.context = 64, .max_batch = max_batch, .all_logits = true});
  Run run;
  for (size_t i = 0; i < prompt.size(); i += size_t(max_batch)) {
    const size_t n = std::min(prompt.size() - i, size_t(max_batch));
    model.forward(std::span(prompt).subspan(i, n), int(i), true);
    const std::vector<float> l = model.logits();
    run.prompt_logits.insert(run.prompt_logits.end(), l.begin(), l.end());
  }
  int pos = int(prompt.size());
  for (int s = 0; s < steps; ++s) {
    const int next = model.pick();
    run.tokens.push_back(next);
    model.forward(std::span(&next, 1), pos++);
    run.step_logits.push_back(model.logits());
  }
  return run;
}

std::vector<int> prompt_ids(int n, int vocab) {
  std::vector<int> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 37 + 11) % vocab);
  return ids;
}

void compare(const Run& gpu, const Run& cpu) {
  CHECK(rel_error(gpu.prompt_logits, cpu.prompt_logits) < kLogitTolerance);
  CHECK(gpu.tokens == cpu.tokens);
  REQUIRE(gpu.step_logits.size() == cpu.step_logits.size());
  for (size_t i = 0; i < gpu.step_logits.size(); ++i) {
    CAPTURE(i);
    CHECK(rel_error(gpu.step_logits[i], cpu.step_logits[i]) < kLogitTolerance);
  }
}

}  // namespace

TEST_CASE("cuda: the model gives the CPU's logits and greedy tokens (16/32-bit weights)") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  struct Variant {
    int kv_heads, window;
    DType dtype;
  };
  for (Variant v : {Variant{2, 0, DType::F32}, Variant{4, 0, DType::BF16},
                    Variant{1, 0, DType::F16}, Variant{2, 6, DType::F32}}) {
    CAPTURE(v.kv_heads);
    CAPTURE(v.window);
    CAPTURE(dtype_name(v.dtype));
    ModelConfig c = test::tiny_config(2, 64, 4, v.kv_heads);
    c.sliding_window = v.window;
    const auto prompt = prompt_ids(11, c.vocab_size);
    test::RandomWeights gw(11, v.dtype), cw(11, v.dtype);
    CpuBackend cpu(2);
    compare(generate(*gpu, c, gw, prompt, 12), generate(cpu, c, cw, prompt, 12));
  }
}

TEST_CASE("cuda: the model with NF4/FP4 weights gives the CPU's logits and greedy tokens") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  for (test::Quant4 q : {test::Quant4{QuantType::NF4, 64, true, ComputeDType::BF16},
                         test::Quant4{QuantType::FP4, 64, false, ComputeDType::F16},
                         test::Quant4{QuantType::NF4, 128, true, ComputeDType::F32}}) {
    CAPTURE(compute_dtype_name(q.compute));
    const ModelConfig c = test::tiny_config(2, 128, 4, 2, 160, 101);
    const auto prompt = prompt_ids(9, c.vocab_size);
    test::Random4bitWeights gw(5, q), cw(5, q);
    CpuBackend cpu(2);
    compare(generate(*gpu, c, gw, prompt, 10, 4), generate(cpu, c, cw, prompt, 10, 4));
  }
}

TEST_CASE("cuda: profiled decode (no graph) times every layer and gives the same tokens") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  const ModelConfig c = test::tiny_config(3);
  const auto prompt = prompt_ids(5, c.vocab_size);
  test::RandomWeights w1(21), w2(21);
  const Run graphed = generate(*gpu, c, w1, prompt, 6);
  gpu->set_profiling(true);
  const Run profiled = generate(*gpu, c, w2, prompt, 6);
  CHECK(profiled.tokens == graphed.tokens);
  CHECK(rel_error(profiled.step_logits.back(), graphed.step_logits.back()) == 0);  // same kernels
  const std::vector<LayerTime> times = gpu->step_times();
  REQUIRE(times.size() == size_t(2 * c.num_hidden_layers));
  for (const LayerTime& t : times) CHECK(t.ms >= 0);
  CHECK(times.back().layer == c.num_hidden_layers - 1);
  CHECK(times.back().phase == Phase::Mlp);
}

// Greedy decoding as Generator runs it: each step queued on the device's pick of the step before
// (Model::forward_picked; the picks live in mapped host memory), whose pick the host reads
// (pick(1)) while the new step runs. The tokens must be the CPU's greedy ones.
TEST_CASE("cuda: steps queued on the device's pick decode the CPU's greedy tokens") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  const ModelConfig c = test::tiny_config(2, 64, 4, 2);
  const auto prompt = prompt_ids(7, c.vocab_size);
  test::RandomWeights gw(17, DType::BF16), cw(17, DType::BF16);
  CpuBackend cpu(2);
  const std::vector<int> want = generate(cpu, c, cw, prompt, 20).tokens;
  Model model(*gpu, c, gw, {.context = 64, .max_batch = 8});
  model.forward(prompt, 0);
  std::vector<int> got{model.pick()};
  for (int s = 1; s < 20; ++s) {
    model.forward_picked(int(prompt.size()) + s - 1);
    if (s > 1) got.push_back(model.pick(1));  // the step before's, while this one runs
  }
  got.push_back(model.pick());
  CHECK(got == want);
}
