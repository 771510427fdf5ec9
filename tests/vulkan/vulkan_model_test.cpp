// The whole model forward on Vulkan against the CPU reference: tiny random Llama models with
// NF4/FP4 (plain and double-quantized) weights in every compute dtype, and with 16-bit weights.
// The GPU keeps its KV cache in float16 while the CPU's is float32: logits differ by about 2e-4
// relative (measured on lavapipe), tolerance 2e-3. With bf16 compute those small differences
// flip the bf16 rounding of some matmul inputs, which grows them to about 3e-3: tolerance 1e-2.
// Greedy tokens must be identical in every case.
#include <map>

#include "engine/model.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

// RandomWeights for the 16-bit tensors, random 4-bit weights (per `spec`) for the quantizable
// ones. Each tensor is made once, so two models built from one source hold the same weights.
class QuantizedRandomWeights final : public WeightSource {
 public:
  QuantizedRandomWeights(uint64_t seed, DType dense, WeightSpec spec)
      : dense_(seed, dense), seed_(seed), spec_(spec) {}
  bool has(const std::string& name) const override { return dense_.has(name); }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override {
    const bool packed = spec_.dtype == DType::NF4 || spec_.dtype == DType::FP4;
    if (!quantizable || !packed) return dense_.get(name, rows, cols, quantizable);
    auto it = made_.find(name);
    if (it == made_.end()) {
      std::mt19937 rng(uint32_t(seed_ ^ std::hash<std::string>{}(name)));
      it = made_.emplace(name, random_weight(rng, name, rows, cols, spec_, 0.03f)).first;
    }
    return it->second;
  }

 private:
  RandomWeights dense_;
  uint64_t seed_;
  WeightSpec spec_;
  std::map<std::string, HostWeight> made_;
};

std::vector<int> prompt(int n, int vocab) {
  std::vector<int> ids;
  for (int i = 0; i < n; ++i) ids.push_back((i * 29 + 3) % vocab);
  return ids;
}

// Prefill logits of every prompt position, then greedy decoding, on both backends.
void compare(WeightSource& weights, double tolerance, ModelConfig c = tiny_config()) {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  CpuBackend cpu(2);
  ModelOptions options;
  options.context = 48;
  options.max_batch = 8;
  options.all_logits = true;
  Model want(cpu, c, weights, options), got(*gpu, c, weights, options);
  const std::vector<int> ids = prompt(11, c.vocab_size);  // two prefill chunks
  want.forward(ids, 0, true);
  got.forward(ids, 0, true);
  CHECK(checked_error(got.logits(), want.logits()) < tolerance);
  int pos = int(ids.size());
  int token_cpu = want.pick(), token_gpu = got.pick();
  for (int step = 0; step < 6; ++step, ++pos) {
    CAPTURE(step);
    REQUIRE(token_gpu == token_cpu);
    const std::vector<int> next{token_cpu};
    want.forward(next, pos);
    got.forward(next, pos);
    CHECK(checked_error(got.logits(), want.logits()) < tolerance);
    token_cpu = want.pick();
    token_gpu = got.pick();
  }
  CHECK(token_gpu == token_cpu);
}

void quantized_models(DType type, bool double_quant) {
  for (ComputeDType cd : {ComputeDType::F32, ComputeDType::F16, ComputeDType::BF16}) {
    CAPTURE(compute_dtype_name(cd));
    // 16-bit dense weights (embeddings, norms, lm_head) in both flavours along the way.
    QuantizedRandomWeights w(uint64_t(type) * 2 + double_quant,
                             double_quant ? DType::F16 : DType::BF16,
                             {.dtype = type, .double_quant = double_quant, .compute = cd});
    compare(w, cd == ComputeDType::BF16 ? 1e-2 : 2e-3);
  }
}

}  // namespace

TEST_CASE("vulkan model: NF4 weights, every compute dtype") {
  quantized_models(DType::NF4, false);
}

TEST_CASE("vulkan model: NF4 weights with double quantization, every compute dtype") {
  quantized_models(DType::NF4, true);
}

TEST_CASE("vulkan model: FP4 weights, every compute dtype") {
  quantized_models(DType::FP4, false);
}

TEST_CASE("vulkan model: FP4 weights with double quantization, every compute dtype") {
  quantized_models(DType::FP4, true);
}

TEST_CASE("vulkan model: 16- and 32-bit weights, GQA and a sliding window") {
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    CAPTURE(dtype_name(t));
    RandomWeights w(5, t);
    ModelConfig c = tiny_config(2, 64, 4, 1);
    c.sliding_window = 6;
    compare(w, 2e-3, c);
  }
}

TEST_CASE("vulkan model: per-layer timing and the memory tally") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  const ModelConfig c = tiny_config(3);
  RandomWeights w(6, DType::BF16);
  gpu->set_profiling(true);
  ModelOptions options;
  options.context = 32;
  options.max_batch = 4;
  Model model(*gpu, c, w, options);
  const std::vector<int> ids{1, 2, 3};
  model.forward(ids, 0);
  const std::vector<LayerTime> times = gpu->step_times();
  const vk::DeviceInfo devices_first = vk::list_devices().front();
  if (devices_first.timestamps) {
    REQUIRE(times.size() == size_t(2 * c.num_hidden_layers));
    for (size_t i = 0; i < times.size(); ++i) {
      CHECK(times[i].layer == int(i / 2));
      CHECK(times[i].phase == (i % 2 ? Phase::Mlp : Phase::Attention));
      CHECK(times[i].ms >= 0.0);
    }
  }
  const MemoryInfo m = gpu->memory();
  // Two float16 caches per layer, context x kv_dim each.
  CHECK(m.kv_cache == uint64_t(2 * c.num_hidden_layers * 32 * c.kv_dim() * 2));
  CHECK(m.weights >= uint64_t(c.vocab_size) * c.hidden_size * 2);
  CHECK(m.activations > 0);
  CHECK(m.device_used > 0);
  CHECK(m.device_budget >= m.device_used);
}
