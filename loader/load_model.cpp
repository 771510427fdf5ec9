#include "loader/load_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/error.h"
#include "loader/folder_weights.h"
#include "loader/json_text.h"
#include "loader/memory_estimate.h"
#include "loader/placement.h"

namespace nibble {

namespace fs = std::filesystem;

fs::path default_model_dir() {
  const fs::path relative = "models/kjv-tiny";
  if (fs::exists(relative / "config.json")) return relative;
  // Also found next to the binary's build tree (build/nibble -> ../models/kjv-tiny).
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path dir = exe.parent_path(); !dir.empty() && dir != dir.root_path();
         dir = dir.parent_path())
      if (fs::exists(dir / relative / "config.json")) return dir / relative;
  return relative;
}

namespace {

void add_ids(const nlohmann::json& j, std::vector<int>& ids) {
  auto add = [&](int id) {
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  };
  if (j.is_number_integer()) add(j.get<int>());
  if (j.is_array())
    for (const auto& v : j)
      if (v.is_number_integer()) add(v.get<int>());
}

GenerationDefaults read_generation_defaults(const fs::path& dir, const ModelFolder& folder,
                                            const Tokenizer& tokenizer) {
  GenerationDefaults d;
  for (int id : folder.config().eos_token_ids) add_ids(id, d.eos_ids);
  const fs::path path = dir / "generation_config.json";
  if (fs::exists(path)) {
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    const auto j = nlohmann::json::parse(text.str(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) fail(path.string() + ": not a valid JSON object");
    if (j.contains("eos_token_id")) add_ids(j["eos_token_id"], d.eos_ids);
    const bool sample = j.value("do_sample", false);
    // A number beyond float's range is an error; counts are clamped as doubles before their
    // conversion (a value beyond int's range would be undefined behaviour).
    auto number = [&](const char* key, float fallback) {
      return j.contains(key) && j[key].is_number() ? json_float(j[key], path.string() + ": " + key)
                                                   : fallback;
    };
    auto count = [&](const char* key, int fallback) {
      return j.contains(key) && j[key].is_number() ? int(std::clamp(j[key].get<double>(), 0.0, 1e9))
                                                   : fallback;
    };
    if (sample) {
      d.sampling.temperature = number("temperature", 1.0f);
      d.sampling.top_p = number("top_p", 1.0f);
      d.sampling.top_k = count("top_k", 50);
      d.sampling.min_p = number("min_p", 0.0f);
    }
    d.sampling.repetition_penalty = number("repetition_penalty", 1.0f);
    d.max_new_tokens = count("max_new_tokens", 0);
  }
  if (tokenizer.eos_id() >= 0) add_ids(tokenizer.eos_id(), d.eos_ids);
  return d;
}

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(1ull << 30));
  return text;
}

}  // namespace

std::string MemoryPlan::describe() const {
  return gib(total()) + " (weights " + gib(weights) + ", KV cache " + gib(kv_cache) +
         ", activations " + gib(activations) + ")";
}

MemoryPlan plan_memory(const ModelFolder& folder, const QuantConfig& quant,
                       const ModelOptions& options, DType kv_dtype) {
  const ModelConfig& c = folder.config();
  const TensorInfo& embed = folder.require("model.embed_tokens.weight");
  MemoryPlan plan;
  plan.weights = model_weight_bytes(c, quant, dtype_size(embed.dtype));
  const RuntimeMemory runtime =
      Model::runtime_memory(c, Model::resolve(c, options), kv_dtype, c.num_hidden_layers);
  plan.kv_cache = runtime.kv_cache;
  plan.activations = runtime.activations;
  return plan;
}

void check_fits(const MemoryPlan& plan, const Backend& backend, const std::string& what) {
  const MemoryInfo m = backend.memory();
  if (m.device_budget == 0) return;  // host memory: no budget to check
  const uint64_t free = m.device_budget > m.device_used ? m.device_budget - m.device_used : 0;
  if (plan.total() > free)
    fail(what + " needs " + plan.describe() + " but " + backend.device_name() + " has " +
         gib(free) + " free of " + gib(m.device_budget) +
         " (try a shorter --ctx, fp4/nf4 with --double-quant, or --backend cpu)");
}

LoadedModel load_model(const fs::path& dir, Backend& backend, const QuantConfig& quant,
                       const ModelOptions& options) {
  return load_model(dir, std::vector<Backend*>{&backend}, quant, options);
}

LoadedModel load_model(const fs::path& dir, const std::vector<Backend*>& backends,
                       const QuantConfig& quant, const ModelOptions& options, int gpu_layers) {
  const auto start = std::chrono::steady_clock::now();
  LoadedModel m;
  m.folder = std::make_unique<ModelFolder>(ModelFolder::open(dir));
  m.tokenizer = std::make_unique<Tokenizer>(Tokenizer::from_folder(dir));
  m.chat_template = std::make_unique<ChatTemplate>(ChatTemplate::from_folder(dir));
  m.defaults = read_generation_defaults(dir, *m.folder, *m.tokenizer);
  quant.validate();
  std::vector<Stage> stages;
  if (backends.size() == 1) {
    MemoryPlan plan = plan_memory(*m.folder, quant, options, backends[0]->kv_dtype());
    const ModelOptions resolved = Model::resolve(m.folder->config(), options);
    plan.activations +=
        backends[0]->scratch_bytes(m.folder->config(), resolved.context, resolved.max_batch);
    check_fits(plan, *backends[0], "the model in " + dir.string());
    stages.push_back({backends[0], m.folder->config().num_hidden_layers});
  } else {
    stages = place_layers(*m.folder, quant, options, backends, gpu_layers);
  }
  m.placement = describe_placement(stages);
  FolderWeights weights(*m.folder, quant, QuantizeIn::Backend);
  m.model = std::make_unique<Model>(stages, m.folder->config(), weights, options);
  m.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return m;
}

}  // namespace nibble
