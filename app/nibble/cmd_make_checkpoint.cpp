// nibble make-checkpoint: a random-weight bf16 checkpoint of a well-known shape, in exact Hugging
// Face layout (sharded safetensors + index), so benchmarks need no download.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "app/nibble/command.h"
#include "app/nibble/progress.h"
#include "engine/error.h"
#include "loader/memory_estimate.h"
#include "loader/model_shapes.h"
#include "loader/safetensors.h"

namespace nibble::cli {
namespace {

namespace fs = std::filesystem;

// Normal(mean, std) bf16 values, filled by all cores; each chunk has its own seeded stream, so
// the output depends only on the seed.
void fill_normal(uint16_t* out, size_t n, float mean, float std, uint64_t seed) {
  const size_t chunk = size_t(1) << 20;
  const size_t chunks = (n + chunk - 1) / chunk;
  const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back([=] {
      for (size_t c = t; c < chunks; c += threads) {
        std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + c);
        std::normal_distribution<float> dist(mean, std);
        for (size_t i = c * chunk; i < std::min(n, (c + 1) * chunk); ++i)
          out[i] = f32_to_bf16(dist(rng));
      }
    });
  for (auto& th : pool) th.join();
}

void copy_tokenizer(const fs::path& from, const fs::path& to) {
  if (!fs::exists(from / "tokenizer.json")) fail("no tokenizer.json in " + from.string());
  for (const char* f :
       {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"})
    if (fs::exists(from / f)) fs::copy_file(from / f, to / f, fs::copy_options::overwrite_existing);
}

int run_make_checkpoint(Args& args) {
  const std::string shape = args.get_or({"--shape"}, "");
  const std::string out = args.get_or({"-o", "--output"}, "");
  const std::string tokenizer = args.get_or({"--tokenizer"}, "");
  const uint64_t seed = uint64_t(args.get_int({"--seed"}, 0));
  const int layers = args.get_int({"--layers"}, 0);
  const double shard_gb = args.get_float({"--shard-size"}, 4.0f);
  args.finish();
  if (shape.empty() || out.empty()) fail("make-checkpoint needs --shape NAME and -o DIR");
  ModelConfig c = shape_config(shape);
  if (layers > 0) c.num_hidden_layers = layers;
  if (fs::exists(out)) fail(out + " already exists; choose a new folder");

  const fs::path tmp = out + ".partial";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  // A failure anywhere below (disk full, Ctrl-C aside) leaves no partial folder behind.
  struct RemoveUnlessDone {
    fs::path path;
    bool done = false;
    ~RemoveUnlessDone() {
      std::error_code ec;
      if (!done) fs::remove_all(path, ec);
    }
  } cleanup{tmp};
  const std::vector<WeightShape> tensors = model_weight_shapes(c);
  const uint64_t shard_limit = uint64_t(shard_gb * 1e9);
  // Split into shards of at most shard_limit bytes, in order, as save_pretrained does.
  std::vector<std::vector<WeightShape>> shards(1);
  uint64_t in_shard = 0, total = 0;
  for (const auto& t : tensors) {
    const uint64_t bytes = uint64_t(t.rows * t.cols) * 2;
    if (in_shard > 0 && in_shard + bytes > shard_limit) {
      shards.emplace_back();
      in_shard = 0;
    }
    shards.back().push_back(t);
    in_shard += bytes;
    total += bytes;
  }
  nlohmann::json weight_map = nlohmann::json::object();
  uint64_t done = 0, tensor_index = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::vector<std::vector<uint16_t>> data;
    std::vector<TensorToWrite> items;
    for (const auto& t : shards[s]) {
      const bool norm = t.name.find("norm") != std::string::npos;
      data.emplace_back(size_t(t.rows * t.cols));
      fill_normal(data.back().data(), data.back().size(), norm ? 1.0f : 0.0f, norm ? 0.05f : 0.02f,
                  seed * 1000003 + tensor_index++);
      items.push_back(
          {t.name, DType::BF16,
           t.rows == 1 ? std::vector<int64_t>{t.cols} : std::vector<int64_t>{t.rows, t.cols},
           data.back().data(), data.back().size() * 2});
      weight_map[t.name] = name;
      done += data.back().size() * 2;
      draw_progress("writing", int(done >> 20), int(total >> 20), name);
    }
    write_safetensors(tmp / name, items, {{"format", "pt"}});
  }
  const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::ofstream(tmp / "model.safetensors.index.json") << index.dump(2) << "\n";
  std::ofstream(tmp / "config.json") << config_json(c, "bfloat16");
  const nlohmann::json generation = {{"bos_token_id", c.bos_token_ids.at(0)},
                                     {"eos_token_id", c.eos_token_ids.at(0)}};
  std::ofstream(tmp / "generation_config.json") << generation.dump(2) << "\n";
  if (!tokenizer.empty()) copy_tokenizer(tokenizer, tmp);
  fs::rename(tmp, out);
  cleanup.done = true;
  std::printf("wrote %s: %s shape, %d layers, %.2f GB of bf16 weights in %zu shards\n", out.c_str(),
              shape.c_str(), c.num_hidden_layers, double(total) / 1e9, shards.size());
  return 0;
}

const RegisterCommand reg(
    {"make-checkpoint", "write a random-weight checkpoint of a known shape",
     "usage: nibble make-checkpoint --shape NAME -o DIR [options]\n\n"
     "  --shape NAME           llama-2-7b, llama-3-8b, mistral-7b, tinyllama-1.1b, llama-2-13b\n"
     "  -o, --output DIR       the new model folder (must not exist)\n"
     "  --tokenizer DIR        copy tokenizer files from DIR\n"
     "  --layers N             fewer decoder layers (quick tests)\n"
     "  --shard-size GB        largest shard (default 4)\n"
     "  --seed S               random seed (default 0)\n",
     run_make_checkpoint});

}  // namespace
}  // namespace nibble::cli
