// nibble bench: prompt processing and generation speed, beside the memory-bandwidth roofline.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "app/nibble/bench_kernels.h"
#include "app/nibble/command.h"
#include "app/nibble/progress.h"
#include "app/nibble/quant_flags.h"
#include "engine/error.h"
#include "engine/make_backend.h"
#include "loader/load_model.h"

namespace nibble::cli {
namespace {

using Clock = std::chrono::steady_clock;

struct Spread {
  double median = 0, min = 0, max = 0;
};
Spread spread(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return {};
  return {v[v.size() / 2], v.front(), v.back()};
}

struct BenchSettings {
  std::string dir;
  BackendOptions backend;
  int prompt = 512, generate = 128, repeats = 5;
  int depth = 0;  // cache positions filled before each timed run (llama-bench's -d)
};

nlohmann::json bench_one(const BenchSettings& b, const QuantConfig& quant, double bandwidth_gbs) {
  std::unique_ptr<Backend> backend = make_backend(b.backend);
  ModelOptions mo;
  mo.context = b.depth + b.prompt + b.generate + 1;
  // chunks as in real use
  mo.max_batch = std::clamp(std::max(b.prompt, b.depth), 1, ModelOptions{}.max_batch);
  mo.on_progress = progress_callback("loading");
  LoadedModel m = load_model(b.dir, *backend, quant, mo);
  Model& model = *m.model;
  std::mt19937 rng(1);
  auto random_tokens = [&](int n) {
    std::vector<int> tokens(static_cast<size_t>(n));
    for (int& t : tokens) t = int(rng() % uint32_t(model.config().vocab_size));
    return tokens;
  };
  const std::vector<int> prompt = random_tokens(std::max(1, b.prompt));
  // With a depth, positions [0, depth) hold a context once, untimed: every timed run starts at
  // `depth` and writes only the positions after it, so the context stays the same for all.
  if (b.depth > 0) {
    model.forward(random_tokens(b.depth), 0);
    model.pick();
  }

  auto run_prompt = [&] {
    const auto t0 = Clock::now();
    model.forward(prompt, b.depth);
    model.pick();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  StepStats tg_steps;  // what the last generation run's steps held
  auto run_generation = [&] {
    const int first = 1;
    const StepStats before = backend->step_stats();
    const auto t0 = Clock::now();
    // Greedy decoding as `nibble generate` runs it: each step queued on the device's pick of the
    // one before, whose pick the host reads meanwhile (it needs every token to stream it).
    model.forward(std::span<const int>(&first, 1), b.depth);
    for (int i = 1; i < b.generate; ++i) {
      model.forward_picked(b.depth + i);
      model.pick(1);
    }
    model.pick();
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    tg_steps = backend->step_stats() - before;
    return seconds;
  };
  // Warm-up: pipelines, caches, clocks.
  if (b.prompt > 0) run_prompt();
  if (b.generate > 0) run_generation();
  std::vector<double> pp, tg;
  for (int r = 0; r < b.repeats; ++r) {
    if (b.prompt > 0) pp.push_back(b.prompt / run_prompt());
    if (b.generate > 0) tg.push_back(b.generate / run_generation());
    draw_progress("bench", r + 1, b.repeats);
  }

  const Spread p = spread(pp), g = spread(tg);
  const double bytes = double(model.weight_bytes_per_token());
  const MemoryInfo mem = backend->memory();
  nlohmann::json j = {
      {"model", b.dir},
      {"backend", backend->name()},
      {"device", backend->device_name()},
      {"quant", quant.describe()},
      {"load_seconds", m.load_seconds},
      {"depth", b.depth},
      {"pp_tokens", b.prompt},
      {"pp_tps", {{"median", p.median}, {"min", p.min}, {"max", p.max}}},
      {"tg_tokens", b.generate},
      {"tg_tps", {{"median", g.median}, {"min", g.min}, {"max", g.max}}},
      {"weight_bytes_per_token", bytes},
      // Each generated token reads the keys and values of every position before it.
      {"kv_bytes_per_token",
       double(mem.kv_cache) / model.context() * (b.depth + (b.generate + 1) / 2.0)},
      {"memory_bytes",
       {{"weights", mem.weights},
        {"kv_cache", mem.kv_cache},
        {"activations", mem.activations},
        {"device_used", mem.device_used}}},
  };
  if (tg_steps.steps > 0) {  // counted by the backend (Vulkan)
    const double per_token = 1.0 / double(tg_steps.steps);
    j["tg_steps"] = {{"steps", tg_steps.steps},
                     {"replayed", tg_steps.replayed},
                     {"dispatches_per_token", double(tg_steps.dispatches) * per_token},
                     {"barriers_per_token", double(tg_steps.barriers) * per_token}};
  }
  if (bandwidth_gbs > 0) {
    const double achieved = g.median * bytes / 1e9;
    j["bandwidth_gbs"] = bandwidth_gbs;
    j["roofline_tps"] = bandwidth_gbs * 1e9 / bytes;
    j["tg_bandwidth_gbs"] = achieved;
    j["tg_roofline_fraction"] = achieved / bandwidth_gbs;
  }
  return j;
}

void print_human(const nlohmann::json& j) {
  auto f = [&](const char* k, const char* sub) { return j[k][sub].get<double>(); };
  std::printf("%s on %s (%s), %s\n", j["model"].get<std::string>().c_str(),
              j["device"].get<std::string>().c_str(), j["backend"].get<std::string>().c_str(),
              j["quant"].get<std::string>().c_str());
  std::printf("  load + quantize   %8.2f s\n", j["load_seconds"].get<double>());
  std::printf("  pp%-4d            %8.1f tok/s (min %.1f, max %.1f)\n", j["pp_tokens"].get<int>(),
              f("pp_tps", "median"), f("pp_tps", "min"), f("pp_tps", "max"));
  std::printf("  tg%-4d            %8.1f tok/s (min %.1f, max %.1f)\n", j["tg_tokens"].get<int>(),
              f("tg_tps", "median"), f("tg_tps", "min"), f("tg_tps", "max"));
  std::printf("  weights per token %8.1f MiB\n",
              j["weight_bytes_per_token"].get<double>() / (1 << 20));
  if (j["depth"].get<int>() > 0)
    std::printf("  depth             %8d tokens in the cache first; KV read per token %.1f MiB\n",
                j["depth"].get<int>(), j["kv_bytes_per_token"].get<double>() / (1 << 20));
  if (j.contains("bandwidth_gbs"))
    std::printf(
        "  roofline          %8.1f tok/s at %.0f GB/s measured; tg reaches %.1f GB/s = %.1f%%\n",
        j["roofline_tps"].get<double>(), j["bandwidth_gbs"].get<double>(),
        j["tg_bandwidth_gbs"].get<double>(), 100 * j["tg_roofline_fraction"].get<double>());
  if (j.contains("tg_steps")) {
    const auto& s = j["tg_steps"];
    std::printf("  tg per token      %8.1f dispatches, %.1f barriers; %d of %d steps replayed\n",
                s["dispatches_per_token"].get<double>(), s["barriers_per_token"].get<double>(),
                s["replayed"].get<int>(), s["steps"].get<int>());
  }
  const auto& mem = j["memory_bytes"];
  std::printf("  memory            %8.1f MiB (weights %.1f, KV %.1f, activations %.1f)\n",
              (mem["weights"].get<double>() + mem["kv_cache"].get<double>() +
               mem["activations"].get<double>()) /
                  (1 << 20),
              mem["weights"].get<double>() / (1 << 20), mem["kv_cache"].get<double>() / (1 << 20),
              mem["activations"].get<double>() / (1 << 20));
}

int run_bench(Args& args) {
  BenchSettings b;
  b.dir = args.get_or({"-m", "--model"}, default_model_dir().string());
  b.prompt = args.get_int({"-p", "--n-prompt"}, 512);
  b.generate = args.get_int({"-n", "--n-gen"}, 128);
  b.repeats = args.get_int({"-r", "--repetitions"}, 5);
  b.depth = args.get_int({"-d", "--depth"}, 0);
  b.backend.name = args.get_or({"--backend"}, "auto");
  b.backend.device = args.get_int({"--device"}, -1);
  b.backend.threads = args.get_int({"-t", "--threads"}, 0);
  const bool json = args.flag({"--json"});
  const bool bandwidth_only = args.flag({"--bandwidth"});
  const bool matrix = args.flag({"--matrix"});
  const bool kernels = args.flag({"--kernels"});
  const std::string shape = args.get_or({"--shape"}, "llama-2-7b");
  const int calls = args.get_int({"--calls"}, 100);
  const int tokens = args.get_int({"--tokens"}, 1);
  const QuantConfig quant = quant_from_flags(args);
  args.finish();
  if (b.prompt < 0 || b.generate < 0 || b.depth < 0 || b.repeats < 1)
    fail("-p, -n and -d must be >= 0, -r >= 1");
  if (calls < 1 || tokens < 1) fail("--calls and --tokens must be >= 1");
  if (kernels) {
    const nlohmann::json j = bench_kernels(b.backend, quant, shape, calls, tokens);
    if (json)
      std::printf("%s\n", j.dump(2).c_str());
    else
      print_kernels(j);
    return 0;
  }

  const double bandwidth = make_backend(b.backend)->measure_bandwidth();
  if (bandwidth_only) {
    if (json)
      std::printf("%s\n", nlohmann::json{{"bandwidth_gbs", bandwidth}}.dump().c_str());
    else
      std::printf("copy bandwidth: %.0f GB/s (read + write)\n", bandwidth);
    return 0;
  }
  std::vector<QuantConfig> configs{quant};
  if (matrix) {
    configs.clear();
    for (QuantType type : {QuantType::NF4, QuantType::FP4})
      for (bool dq : {true, false})
        for (ComputeDType compute : {ComputeDType::BF16, ComputeDType::F16}) {
          QuantConfig q = quant;
          q.enabled = true;
          q.type = type;
          q.double_quant = dq;
          q.compute = compute;
          configs.push_back(q);
        }
  }
  nlohmann::json all = nlohmann::json::array();
  for (const QuantConfig& q : configs) {
    nlohmann::json j = bench_one(b, q, bandwidth);
    if (!json) print_human(j);
    all.push_back(j);
  }
  if (json) std::printf("%s\n", (matrix ? all : all[0]).dump(2).c_str());
  return 0;
}

const RegisterCommand reg(
    {"bench", "prompt and generation speed beside the bandwidth roofline",
     std::string(
         "usage: nibble bench [-m DIR] [options]\n\n"
         "  -p, --n-prompt N       prompt tokens (default 512), in prefill chunks of 512 as in "
         "use\n"
         "  -n, --n-gen N          generated tokens (default 128)\n"
         "  -r, --repetitions N    repeats after a warm-up; median, min, max (default 5)\n"
         "  -d, --depth N          N tokens in the cache before each timed prompt and\n"
         "                         generation (default 0), as after a long conversation\n"
         "  --backend NAME         auto, vulkan, cuda, cpu\n"
         "  --device N             GPU index\n"
         "  -t, --threads N        CPU threads\n"
         "  --bandwidth            only measure the device's copy bandwidth\n"
         "  --matrix               nf4/fp4 x double quant on/off x bf16/fp16 compute\n"
         "  --kernels              time the decode kernels alone (random weights of --shape,\n"
         "                         default llama-2-7b; --calls N per kernel, default 100;\n"
         "                         --tokens N: the prompt kernels for N tokens instead)\n"
         "  --json                 machine-readable output\n") +
         kQuantFlagsHelp,
     run_bench});

}  // namespace
}  // namespace nibble::cli
