// End to end against HF transformers: tiny random checkpoints saved by save_pretrained, with the
// float32 logits and greedy continuation transformers computed (tools/make_fixture_models.py).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/cpu/cpu_backend.h"
#include "engine/generator.h"
#include "engine/model.h"
#include "engine/tokenizer.h"
#include "loader/folder_weights.h"
#include "loader/model_folder.h"
#include "tests/random_model.h"

using namespace nibble;

namespace {

const char* const kFixtures[] = {"llama-gqa", "mistral-swa", "llama3-rope"};

struct Reference {
  std::vector<int> prompt_ids, greedy_ids;
  std::vector<float> logits;  // one row per token of prompt_ids + greedy_ids
  int rows = 0, vocab = 0;
};

std::string fixture_dir(const std::string& name) {
  return std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/models/" + name;
}

Reference read_reference(const std::string& dir) {
  std::ifstream in(dir + "/reference.json");
  REQUIRE(in);
  const auto j = nlohmann::json::parse(in);
  Reference r;
  r.prompt_ids = j["prompt_ids"].get<std::vector<int>>();
  r.greedy_ids = j["greedy_ids"].get<std::vector<int>>();
  r.rows = j["logits_shape"][0];
  r.vocab = j["logits_shape"][1];
  r.logits.resize(size_t(r.rows) * size_t(r.vocab));
  std::ifstream bin(dir + "/" + j["logits_file"].get<std::string>(), std::ios::binary);
  bin.read(reinterpret_cast<char*>(r.logits.data()), std::streamsize(r.logits.size() * 4));
  REQUIRE(bin.gcount() == std::streamsize(r.logits.size() * 4));
  return r;
}

QuantConfig no_quant() {
  QuantConfig q;
  q.enabled = false;
  return q;
}

}  // namespace

TEST_CASE("fixture models: CPU logits equal HF transformers' (float32, rel. error < 1e-4)") {
  for (const char* name : kFixtures) {
    CAPTURE(name);
    const std::string dir = fixture_dir(name);
    const Reference ref = read_reference(dir);
    const ModelFolder folder = ModelFolder::open(dir);
    FolderWeights weights(folder, no_quant());
    CpuBackend backend(2);
    Model model(backend, folder.config(), weights,
                {.context = 64, .max_batch = 64, .all_logits = true});
    std::vector<int> ids = ref.prompt_ids;
    ids.insert(ids.end(), ref.greedy_ids.begin(), ref.greedy_ids.end());
    REQUIRE(int(ids.size()) == ref.rows);
    model.forward(ids, 0, true);
    const std::vector<float> logits = model.logits();
    CHECK(test::rel_error(logits, ref.logits) < 1e-4);
    // Row by row too, so one bad position cannot hide in the norm of all of them.
    double worst = 0;
    for (int r = 0; r < ref.rows; ++r) {
      const auto row = [&](const std::vector<float>& v) {
        return std::vector<float>(v.begin() + long(r) * ref.vocab,
                                  v.begin() + long(r + 1) * ref.vocab);
      };
      worst = std::max(worst, test::rel_error(row(logits), row(ref.logits)));
    }
    CHECK(worst < 2e-4);
  }
}

TEST_CASE("fixture models: greedy generation reproduces HF's tokens") {
  for (const char* name : kFixtures) {
    CAPTURE(name);
    const std::string dir = fixture_dir(name);
    const Reference ref = read_reference(dir);
    const ModelFolder folder = ModelFolder::open(dir);
    FolderWeights weights(folder, no_quant());
    CpuBackend backend(2);
    Model model(backend, folder.config(), weights, {.context = 64});
    const Tokenizer tokenizer = Tokenizer::from_folder(dir);
    Generator generator(model, tokenizer);
    GenerationSettings settings;
    settings.max_new_tokens = int(ref.greedy_ids.size());
    generator.generate(ref.prompt_ids, settings, nullptr);
    CHECK(generator.last_output() == ref.greedy_ids);
  }
}

TEST_CASE("fixture models: the tokenizer reproduces the prompt ids HF used") {
  for (const char* name : kFixtures) {
    CAPTURE(name);
    const std::string dir = fixture_dir(name);
    std::ifstream in(dir + "/reference.json");
    const auto j = nlohmann::json::parse(in);
    const Tokenizer tokenizer = Tokenizer::from_folder(dir);
    CHECK(tokenizer.encode(j["prompt"].get<std::string>()) ==
          j["prompt_ids"].get<std::vector<int>>());
  }
}
