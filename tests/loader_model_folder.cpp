// Model folders: what transformers save_pretrained wrote (single file and sharded), sharded folders
// built here, bitsandbytes 4-bit checkpoints, and folders missing or breaking something.
#include <doctest/doctest.h>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/cpu/cpu_backend.h"
#include "loader/load_model.h"
#include "loader/model_folder.h"
#include "tests/loader_test_util.h"

using namespace nibble;
using namespace nibble::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const std::string kFixtures = "tests/fixtures/loader/";
std::string tiny_config() {
  return read_file(kFixtures + "tiny-llama/config.json");
}

double sum_bf16(const TensorInfo& t) {
  double sum = 0;
  for (size_t i = 0; i < t.nbytes / 2; ++i) {
    uint16_t h;
    std::memcpy(&h, t.data + 2 * i, 2);
    sum += bf16_to_f32(h);
  }
  return sum;
}

// Every tensor save_pretrained wrote is found with its dtype, shape and values.
void check_against_python(const ModelFolder& folder) {
  const json expected = json::parse(read_file(kFixtures + "tiny-llama.expected.json"));
  CHECK(folder.tensors().size() == expected.size());
  uint64_t bytes = 0;
  for (const auto& [name, e] : expected.items()) {
    CAPTURE(name);
    const TensorInfo& t = folder.require(name);
    CHECK(e["dtype"] == "bfloat16");
    CHECK(t.dtype == DType::BF16);
    CHECK(t.shape == e["shape"].get<std::vector<int64_t>>());
    // Summing the same bf16 values in float64 differs from torch only by summation order.
    CHECK(sum_bf16(t) == doctest::Approx(e["sum"].get<double>()).epsilon(1e-9));
    bytes += t.nbytes;
  }
  CHECK(folder.total_bytes() == bytes);
}

// A folder with the tiny config and the given files.
void write_folder(const fs::path& dir, const std::map<std::string, std::string>& files) {
  write_file(dir / "config.json", tiny_config());
  for (const auto& [name, bytes] : files) write_file(dir / name, bytes);
}

std::string one_tensor_file(const std::string& name) {
  return safetensors_bytes(
      R"({")" + name + R"(": {"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", "ab");
}

std::string index_of(const json& weight_map) {
  return json{{"metadata", {{"total_size", 4}}}, {"weight_map", weight_map}}.dump();
}

}  // namespace

TEST_CASE("model folder: a single-file folder transformers wrote") {
  const ModelFolder folder = ModelFolder::open(kFixtures + "tiny-llama");
  CHECK(folder.dir() == kFixtures + "tiny-llama");
  CHECK(folder.config().architecture == "LlamaForCausalLM");
  CHECK(folder.config_json() == tiny_config());
  check_against_python(folder);
  CHECK(folder.find("model.nonexistent.weight") == nullptr);
  const std::string message = error_of([&] { folder.require("lm_head.bias"); });
  CHECK(message.find("\"lm_head.bias\"") != std::string::npos);
  CHECK(message.find("tiny-llama") != std::string::npos);
}

TEST_CASE("model folder: a sharded folder transformers wrote finds tensors across shards") {
  const ModelFolder folder = ModelFolder::open(kFixtures + "tiny-llama-sharded");
  check_against_python(folder);
  const json index =
      json::parse(read_file(kFixtures + "tiny-llama-sharded/model.safetensors.index.json"));
  std::set<std::string> files;
  for (const auto& [name, shard] : index["weight_map"].items()) {
    CAPTURE(name);
    const TensorInfo& t = folder.require(name);
    CHECK(fs::path(t.file).filename() == shard.get<std::string>());
    files.insert(t.file);
  }
  CHECK(files.size() == 2);
  CHECK(folder.total_bytes() == index["metadata"]["total_size"].get<uint64_t>());
  // tensors() goes shard by shard, each in file order.
  const auto all = folder.tensors();
  for (size_t i = 1; i < all.size(); ++i)
    if (all[i]->file == all[i - 1]->file) CHECK(all[i - 1]->data < all[i]->data);
}

TEST_CASE("model folder: a sharded folder written with write_safetensors") {
  TempDir dir;
  const std::vector<float> a(6, 1.0f), b(4, 2.0f);
  write_safetensors(dir / "s1.safetensors", {{"a", DType::F32, {2, 3}, a.data(), 24}});
  write_safetensors(dir / "s2.safetensors", {{"b", DType::F32, {4}, b.data(), 16}});
  write_folder(dir.path(), {{"model.safetensors.index.json",
                             index_of({{"a", "s1.safetensors"}, {"b", "s2.safetensors"}})}});
  const ModelFolder folder = ModelFolder::open(dir.path());
  CHECK(folder.require("a").file == (dir / "s1.safetensors").string());
  CHECK(folder.require("b").file == (dir / "s2.safetensors").string());
  CHECK(folder.require("b").shape == std::vector<int64_t>{4});
  CHECK(folder.total_bytes() == 40);
}

TEST_CASE("model folder: a bitsandbytes 4-bit checkpoint exposes its packed weights and state") {
  // The names transformers gives a Linear4bit's weight and its quant state when saving.
  const std::string w = "model.layers.0.self_attn.q_proj.weight";
  const std::vector<uint8_t> packed(128), absmax_q(4), quant_state(40, ' ');
  const std::vector<float> quant_map(16), nested_absmax(1), nested_quant_map(256);
  TempDir dir;
  write_folder(dir.path(), {});
  write_safetensors(
      dir / "model.safetensors",
      {{w, DType::U8, {128, 1}, packed.data(), 128},
       {w + ".absmax", DType::U8, {4}, absmax_q.data(), 4},
       {w + ".quant_map", DType::F32, {16}, quant_map.data(), 64},
       {w + ".nested_absmax", DType::F32, {1}, nested_absmax.data(), 4},
       {w + ".nested_quant_map", DType::F32, {256}, nested_quant_map.data(), 1024},
       {w + ".quant_state.bitsandbytes__nf4", DType::U8, {40}, quant_state.data(), 40}});
  const ModelFolder folder = ModelFolder::open(dir.path());
  CHECK(folder.require(w).dtype == DType::U8);
  CHECK(folder.require(w).shape == std::vector<int64_t>{128, 1});
  CHECK(folder.require(w + ".quant_state.bitsandbytes__nf4").nbytes == 40);
  CHECK(folder.require(w + ".nested_quant_map").numel() == 256);
}

TEST_CASE("model folder: missing pieces fail naming the folder and what is missing") {
  TempDir dir;
  const std::string d = dir.path().string();
  auto message = [](const fs::path& p) { return error_of([&] { ModelFolder::open(p); }); };

  CHECK(message(dir / "nope") == "model folder " + d +
                                     "/nope does not exist (a Hugging Face model "
                                     "folder holds config.json and model.safetensors (or "
                                     "model.safetensors.index.json and its shards))");
  CHECK(message(dir.path()).rfind("model folder " + d + " is empty", 0) == 0);
  write_file(dir / "README.md", "hi");
  CHECK(message(dir / "README.md").rfind(d + "/README.md is not a folder", 0) == 0);
  CHECK(message(dir.path()).rfind("model folder " + d + " has no config.json", 0) == 0);
  write_file(dir / "config.json", tiny_config());
  CHECK(message(dir.path()) ==
        "model folder " + d + " has no model.safetensors or model.safetensors.index.json");
  write_file(dir / "pytorch_model.bin", "");
  CHECK(message(dir.path()).find("only PyTorch .bin weights: convert them to safetensors") !=
        std::string::npos);
  write_file(dir / "config.json", "{\"architectures\": [\"GPT2LMHeadModel\"]}");
  CHECK(message(dir.path()) ==
        "unsupported architecture GPT2LMHeadModel in " + d +
            "/config.json (supported: LlamaForCausalLM, MistralForCausalLM)");
  write_file(dir / "config.json", "{oops");
  CHECK(message(dir.path()).rfind(d + "/config.json: config is not valid JSON", 0) == 0);
}

TEST_CASE("model folder: bad weights and bad shard indexes fail naming the file") {
  struct Case {
    const char* what;
    std::map<std::string, std::string> files;
    std::vector<std::string> expected;  // parts of the message
  };
  const std::string index = "model.safetensors.index.json";
  const std::vector<Case> cases = {
      {"truncated weights",
       {{"model.safetensors", one_tensor_file("w").substr(0, 20)}},
       {"model.safetensors", "header length"}},
      {"index not JSON", {{index, "{\"weight_map\": "}}, {index, "not valid JSON"}},
      {"index number past double",
       {{index, R"({"metadata": {"total_size": -1e999}})"}},
       {index, "number overflow"}},
      {"index without weight_map", {{index, "{\"metadata\": {}}"}}, {index, "\"weight_map\""}},
      {"index maps to a number",
       {{index, R"({"weight_map": {"w": 3}})"}},
       {index, "\"w\"", "not to a file name"}},
      {"shard outside the folder",
       {{index, index_of({{"w", "../w.safetensors"}})}},
       {index, "\"../w.safetensors\"", "not a file name in the model folder"}},
      {"absolute shard path",
       {{index, index_of({{"w", "/etc/passwd"}})}},
       {index, "not a file name"}},
      {"missing shard",
       {{index, index_of({{"w", "s1.safetensors"}})}},
       {index, "names shard s1.safetensors", "\"w\""}},
      {"tensor not in its shard",
       {{index, index_of({{"w", "s1.safetensors"}, {"v", "s1.safetensors"}})},
        {"s1.safetensors", one_tensor_file("w")}},
       {index, "\"v\"", "s1.safetensors, which does not hold it"}},
      {"tensor in two shards",
       {{index, index_of({{"w", "s1.safetensors"}, {"v", "s2.safetensors"}})},
        {"s1.safetensors", one_tensor_file("w")},
        {"s2.safetensors",
         safetensors_bytes(R"({"v": {"dtype":"U8","shape":[1],"data_offsets":[0,1]},
                                                 "w": {"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                           "ab")}},
       {"\"w\" is in both", "s1.safetensors", "s2.safetensors"}},
      {"bad shard",
       {{index, index_of({{"w", "s1.safetensors"}})}, {"s1.safetensors", "garbage!"}},
       {"s1.safetensors", "header"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    TempDir dir;
    write_folder(dir.path(), c.files);
    const std::string message = error_of([&] { ModelFolder::open(dir.path()); });
    CAPTURE(message);
    CHECK(message.find(dir.path().string()) != std::string::npos);
    for (const std::string& part : c.expected) CHECK(message.find(part) != std::string::npos);
  }
}

// generation_config.json's numbers: counts beyond int are clamped before their conversion, a
// number beyond float's range is an error naming the file and the key (converting it would be
// undefined behaviour).
TEST_CASE("generation_config: huge counts are clamped, numbers beyond a float are errors") {
  TempDir dir;
  for (const auto& f : fs::directory_iterator("tests/fixtures/models/llama-gqa"))
    fs::copy_file(f.path(), dir / f.path().filename().string());
  QuantConfig none;
  none.enabled = false;
  CpuBackend cpu(1);
  write_file(dir / "generation_config.json",
             R"({"do_sample": true, "top_k": 1e30, "max_new_tokens": 1e300, "top_p": 0.5})");
  const LoadedModel m = load_model(dir.path(), cpu, none, {.context = 16});
  CHECK(m.defaults.sampling.top_k == 1000000000);
  CHECK(m.defaults.max_new_tokens == 1000000000);
  CHECK(m.defaults.sampling.top_p == 0.5f);
  write_file(dir / "generation_config.json", R"({"do_sample": true, "temperature": 1e300})");
  const std::string e = error_of([&] { load_model(dir.path(), cpu, none, {.context = 16}); });
  CHECK(e.find("generation_config.json: temperature is out of range") != std::string::npos);
}
