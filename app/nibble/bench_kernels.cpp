#include "app/nibble/bench_kernels.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>

#include "app/nibble/progress.h"
#include "engine/error.h"
#include "loader/model_shapes.h"
#include "loader/quantize.h"

namespace nibble::cli {
namespace {

// A bf16 weight, normal with std 0.02, quantized as the model loader would.
struct BenchWeight {
  std::vector<uint16_t> bf16;
  QuantizedWeight q;
  HostWeight host;
};

std::unique_ptr<BenchWeight> random_weight(const std::string& name, int64_t rows, int64_t cols,
                                           const QuantConfig& quant, bool quantize, uint64_t seed) {
  auto w = std::make_unique<BenchWeight>();
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  w->bf16.resize(size_t(rows * cols));
  for (uint16_t& v : w->bf16) v = f32_to_bf16(dist(rng));
  HostWeight& h = w->host;
  h.name = name;
  h.dtype = DType::BF16;
  h.rows = rows;
  h.cols = cols;
  h.data = reinterpret_cast<const uint8_t*>(w->bf16.data());
  h.nbytes = w->bf16.size() * 2;
  h.compute = quant.compute;
  if (quantize && quant.enabled) {
    w->q = quantize_4bit(h, quant.type, quant.blocksize, quant.double_quant);
    h.dtype = quant.type == QuantType::NF4 ? DType::NF4 : DType::FP4;
    h.data = w->q.packed.data();
    h.nbytes = w->q.packed.size();
    h.quant = std::shared_ptr<const QuantState>(std::shared_ptr<void>(), &w->q.state);
  }
  return w;
}

// Milliseconds per call of `op`, recorded `calls` times in one timed step: the median of 5 such
// steps, after warming up for half a second (pipelines, and a GPU's clocks, which drop while the
// host prepares the next kernel's weights).
double time_calls(Backend& be, int calls, int tokens, const std::function<void()>& op) {
  auto step = [&] {
    be.begin_step({0, tokens});
    be.phase_begin(0, Phase::Mlp);
    for (int i = 0; i < calls; ++i) op();
    be.phase_end(0, Phase::Mlp);
    be.end_step();
    const std::vector<LayerTime> t = be.step_times();
    if (t.empty()) fail("bench --kernels: the backend reports no step times");
    return t.front().ms / calls;
  };
  const auto start = std::chrono::steady_clock::now();
  do step();
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(500));
  std::vector<double> ms;
  for (int i = 0; i < 5; ++i) ms.push_back(step());
  std::sort(ms.begin(), ms.end());
  return ms[2];
}

}  // namespace

nlohmann::json bench_kernels(const BackendOptions& options, const QuantConfig& quant,
                             const std::string& shape, int calls, int tokens) {
  const ModelConfig c = shape_config(shape);
  BackendOptions bo = options;
  bo.profile = true;
  std::unique_ptr<Backend> be = make_backend(bo);
  be->set_profiling(true);

  struct Kernel {
    std::string name;
    int64_t rows, cols;
    bool quantized;
  };
  const int64_t d = c.hidden_size, f = c.intermediate_size;
  const std::vector<Kernel> kernels = {
      {"q_proj", c.q_dim(), d, true}, {"k_proj", c.kv_dim(), d, true},
      {"o_proj", d, c.q_dim(), true}, {"gate_proj", f, d, true},
      {"down_proj", d, f, true},      {"lm_head", c.vocab_size, d, false},
  };
  nlohmann::json out = {{"shape", shape},
                        {"backend", be->name()},
                        {"device", be->device_name()},
                        {"quant", quant.describe()},
                        {"calls", calls},
                        {"tokens", tokens},
                        {"kernels", nlohmann::json::array()}};
  // The floor under every kernel: a dependent dispatch that does (almost) nothing.
  {
    Tensor a = be->alloc(DType::F32, 1, 1, Usage::Activations);
    const float zero = 0;
    be->write(a, &zero);
    const double ms = time_calls(*be, calls, 1, [&] { be->add(a, a); });
    out["dispatch_floor_us"] = ms * 1e3;
  }
  int done = 0;
  for (const Kernel& k : kernels) {
    draw_progress("kernels", done++, int(kernels.size()));
    auto w = random_weight(k.name, k.rows, k.cols, quant, k.quantized, 7 + uint64_t(done));
    const uint64_t bytes = stored_bytes(w->host);
    // Enough copies that the calls stream from memory, not from the GPU's cache (50 MB on an H100),
    // as in a model, where every weight is read once per token.
    const int copies = int(std::clamp<uint64_t>((256ull << 20) / bytes + 1, 1, 16));
    std::vector<Tensor> wts;
    // `w` lives until the calls are timed: the CPU backend reads the host's copy in place.
    for (int i = 0; i < copies; ++i) wts.push_back(be->upload_weight(w->host));
    Tensor x = be->alloc(DType::F32, tokens, k.cols, Usage::Activations);
    Tensor y = be->alloc(DType::F32, tokens, k.rows, Usage::Activations);
    std::vector<float> xs(size_t(tokens * k.cols));
    std::mt19937 rng(3);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (float& v : xs) v = dist(rng);
    be->write(x, xs.data());
    int call = 0;
    const double ms =
        time_calls(*be, calls, tokens, [&] { be->matmul(y, x, wts[size_t(call++ % copies)]); });
    out["kernels"].push_back(
        {{"name", k.name},
         {"rows", k.rows},
         {"cols", k.cols},
         {"weight_bytes", bytes},
         {"us_per_call", ms * 1e3},
         {"gbs", double(bytes) / (ms * 1e-3) / 1e9},
         {"tflops", 2.0 * double(tokens * k.rows * k.cols) / (ms * 1e-3) / 1e12}});
  }
  draw_progress("kernels", done, int(kernels.size()));
  return out;
}

void print_kernels(const nlohmann::json& j) {
  const int tokens = j["tokens"].get<int>();
  const std::string what = tokens == 1 ? "decode" : std::to_string(tokens) + "-token prompt";
  std::printf("%s %s kernels on %s (%s), %s, %d dependent calls each\n",
              j["shape"].get<std::string>().c_str(), what.c_str(),
              j["device"].get<std::string>().c_str(), j["backend"].get<std::string>().c_str(),
              j["quant"].get<std::string>().c_str(), j["calls"].get<int>());
  std::printf("  dependent dispatch floor %.2f us\n", j["dispatch_floor_us"].get<double>());
  for (const auto& k : j["kernels"])
    std::printf("  %-10s %6lld x %-6lld %8.2f MiB %9.2f us %8.1f GB/s %7.2f TFLOP/s\n",
                k["name"].get<std::string>().c_str(), (long long)k["rows"].get<int64_t>(),
                (long long)k["cols"].get<int64_t>(), k["weight_bytes"].get<double>() / (1 << 20),
                k["us_per_call"].get<double>(), k["gbs"].get<double>(), k["tflops"].get<double>());
}

}  // namespace nibble::cli
