// config.json parsing: the variants real Llama/Mistral checkpoints use, defaults, and bad configs.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "loader/model_folder.h"
#include "tests/loader_test_util.h"

using namespace nibble;
using namespace nibble::test;
using nlohmann::json;

namespace {

// `base` with `changes` merged over it (RFC 7386: a null value removes the key).
json patched(json base, const json& changes) {
  base.merge_patch(changes);
  return base;
}

// A minimal valid Llama config with `changes` merged over it.
json llama(const json& changes = json::object()) {
  return patched({{"architectures", {"LlamaForCausalLM"}},
                  {"vocab_size", 32000},
                  {"hidden_size", 4096},
                  {"intermediate_size", 11008},
                  {"num_hidden_layers", 32},
                  {"num_attention_heads", 32}},
                 changes);
}

ModelConfig parse(const json& j) {
  return parse_model_config(j.dump(), "m/config.json");
}

std::string error_for(const json& j) {
  return error_of([&] { parse(j); });
}

}  // namespace

TEST_CASE("config: a Llama 2 config takes the documented defaults") {
  const ModelConfig c = parse(llama());
  CHECK(c.architecture == "LlamaForCausalLM");
  CHECK(c.vocab_size == 32000);
  CHECK(c.hidden_size == 4096);
  CHECK(c.intermediate_size == 11008);
  CHECK(c.num_hidden_layers == 32);
  CHECK(c.num_attention_heads == 32);
  CHECK(c.num_key_value_heads == 32);  // no GQA unless given
  CHECK(c.head_dim == 128);            // hidden / heads
  CHECK(c.max_position_embeddings == 2048);
  CHECK(c.rms_norm_eps == doctest::Approx(1e-6));
  CHECK(c.rope_theta == 10000.0f);
  CHECK(!c.rope_scaling);
  CHECK(!c.tie_word_embeddings);
  CHECK(c.sliding_window == 0);
  CHECK(c.bos_token_ids.empty());
  CHECK(c.eos_token_ids.empty());
}

TEST_CASE("config: GQA, explicit head_dim, tied embeddings, token ids, dtype") {
  const ModelConfig c = parse(llama({{"hidden_size", 2048},
                                     {"num_attention_heads", 32},
                                     {"num_key_value_heads", 4},
                                     {"head_dim", 128},
                                     {"tie_word_embeddings", true},
                                     {"bos_token_id", 128000},
                                     {"eos_token_id", {128001, 128008, 128009}},
                                     {"torch_dtype", "bfloat16"},
                                     {"rms_norm_eps", 1e-5},
                                     {"max_position_embeddings", 131072}}));
  CHECK(c.num_key_value_heads == 4);
  CHECK(c.head_dim == 128);  // given, although hidden / heads is 64
  CHECK(c.q_dim() == 4096);
  CHECK(c.kv_dim() == 512);
  CHECK(c.tie_word_embeddings);
  CHECK(c.bos_token_ids == std::vector<int>{128000});
  CHECK(c.eos_token_ids == std::vector<int>{128001, 128008, 128009});
  CHECK(c.torch_dtype == "bfloat16");
  CHECK(c.rms_norm_eps == doctest::Approx(1e-5));
  CHECK(c.max_position_embeddings == 131072);
  // transformers 5 writes "dtype" instead of "torch_dtype".
  CHECK(parse(llama({{"dtype", "float16"}})).torch_dtype == "float16");
  // Null means "the default", as transformers reads it.
  json nulls = llama();
  for (const char* key : {"num_key_value_heads", "head_dim", "bos_token_id", "rope_theta"})
    nulls[key] = nullptr;
  const ModelConfig d = parse(nulls);
  CHECK(d.num_key_value_heads == 32);
  CHECK(d.head_dim == 128);
  CHECK(d.bos_token_ids.empty());
  CHECK(d.rope_theta == 10000.0f);
}

TEST_CASE("config: Mistral with a sliding window (and one without)") {
  json mistral = llama({{"architectures", {"MistralForCausalLM"}},
                        {"num_key_value_heads", 8},
                        {"sliding_window", 4096},
                        {"rope_theta", 1000000.0},
                        {"max_position_embeddings", 32768}});
  ModelConfig c = parse(mistral);
  CHECK(c.architecture == "MistralForCausalLM");
  CHECK(c.sliding_window == 4096);
  CHECK(c.rope_theta == 1e6f);
  CHECK(c.num_key_value_heads == 8);
  mistral["sliding_window"] = nullptr;  // Mistral 7B v0.2 and later
  CHECK(parse(mistral).sliding_window == 0);
  // Configs without architectures but with model_type.
  CHECK(parse(json{{"model_type", "mistral"},
                   {"vocab_size", 8},
                   {"hidden_size", 8},
                   {"intermediate_size", 8},
                   {"num_hidden_layers", 1},
                   {"num_attention_heads", 2}})
            .architecture == "MistralForCausalLM");
}

TEST_CASE("config: llama3 rope scaling, as rope_scaling and as transformers 5 rope_parameters") {
  const json scaling = {{"factor", 8.0},
                        {"low_freq_factor", 1.0},
                        {"high_freq_factor", 4.0},
                        {"original_max_position_embeddings", 8192},
                        {"rope_type", "llama3"}};
  for (const json& j :
       {llama({{"rope_scaling", scaling}, {"rope_theta", 500000.0}}),
        llama({{"rope_parameters", patched(scaling, {{"rope_theta", 500000.0}})}})}) {
    CAPTURE(j.dump());
    const ModelConfig c = parse(j);
    REQUIRE(c.rope_scaling);
    CHECK(c.rope_scaling->type == "llama3");
    CHECK(c.rope_scaling->factor == 8.0f);
    CHECK(c.rope_scaling->low_freq_factor == 1.0f);
    CHECK(c.rope_scaling->high_freq_factor == 4.0f);
    CHECK(c.rope_scaling->original_max_position_embeddings == 8192);
    CHECK(c.rope_theta == 500000.0f);
  }
  // The older spelling "type", and the "default" type meaning no scaling.
  CHECK(parse(llama({{"rope_scaling",
                      patched(scaling, {{"rope_type", nullptr}, {"type", "llama3"}})}}))
            .rope_scaling);
  CHECK(!parse(llama({{"rope_parameters", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}}))
             .rope_scaling);
  json null_scaling = llama();
  null_scaling["rope_scaling"] = nullptr;
  CHECK(!parse(null_scaling).rope_scaling);
}

TEST_CASE("config: what transformers save_pretrained wrote parses") {
  const ModelConfig c = parse_model_config(
      read_file("tests/fixtures/loader/tiny-llama/config.json"), "tiny-llama/config.json");
  const json j = json::parse(read_file("tests/fixtures/loader/tiny-llama/config.json"));
  CHECK(c.hidden_size == j["hidden_size"]);
  CHECK(c.num_key_value_heads == j["num_key_value_heads"]);
  CHECK(c.head_dim == j["head_dim"]);
  CHECK(c.rope_theta == float(j["rope_parameters"]["rope_theta"]));
  CHECK(c.torch_dtype == j["dtype"]);
}

TEST_CASE("config: unsupported or malformed configs fail with a clear message") {
  CHECK(error_for(llama({{"architectures", {"Qwen2ForCausalLM"}}})) ==
        "unsupported architecture Qwen2ForCausalLM in m/config.json (supported: "
        "LlamaForCausalLM, MistralForCausalLM)");
  CHECK(error_of([] {
          parse_model_config("{\"hidden_size\": 4096,", "m/config.json");
        }).rfind("m/config.json: config is not valid JSON", 0) == 0);
  CHECK(error_of([] { parse_model_config("", "m/config.json"); }).find("not valid JSON") !=
        std::string::npos);
  // Found by fuzz_model_config: nlohmann throws out_of_range, not parse_error, for this number.
  CHECK(error_of([] { parse_model_config(R"({"rope_theta": 11e308})", "m/config.json"); }) ==
        "m/config.json: config is not valid JSON (number overflow parsing '11e308')");

  struct Case {
    const char* what;
    json config;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"not an object", json::array({1}), "not a JSON object"},
      {"no architectures", json{{"hidden_size", 8}}, "no \"architectures\""},
      {"empty architectures", llama({{"architectures", json::array()}}), "\"architectures\""},
      {"missing hidden_size", llama({{"hidden_size", nullptr}}),
       "\"hidden_size\" must be a positive integer (it is missing)"},
      {"string size", llama({{"vocab_size", "32000"}}),
       "\"vocab_size\" must be a positive integer (it is \"32000\")"},
      {"zero layers", llama({{"num_hidden_layers", 0}}),
       "\"num_hidden_layers\" must be a positive integer"},
      {"negative heads", llama({{"num_attention_heads", -4}}), "\"num_attention_heads\""},
      {"huge size", llama({{"intermediate_size", 1e12}}), "\"intermediate_size\""},
      {"size past int", llama({{"intermediate_size", 4294967296}}), "\"intermediate_size\""},
      {"heads do not divide hidden", llama({{"num_attention_heads", 30}}),
       "not a multiple of num_attention_heads"},
      {"kv heads do not divide heads", llama({{"num_key_value_heads", 5}}),
       "not a multiple of num_key_value_heads"},
      {"odd head_dim", llama({{"head_dim", 127}}), "head_dim 127 is odd"},
      {"q_dim overflow", llama({{"head_dim", 2000000000}}), "too large"},
      {"zero eps", llama({{"rms_norm_eps", 0}}), "\"rms_norm_eps\" must be a positive number"},
      {"negative theta", llama({{"rope_theta", -1}}), "\"rope_theta\""},
      {"eps that rounds to 0", llama({{"rms_norm_eps", 1e-86}}),
       "\"rms_norm_eps\" must be a positive number that fits a float (it is 1e-86)"},
      {"infinite theta", llama({{"rope_theta", 1e300}}), "\"rope_theta\""},
      {"tie not bool", llama({{"tie_word_embeddings", "yes"}}),
       "\"tie_word_embeddings\" must be true or false"},
      {"negative window", llama({{"sliding_window", -1}}), "\"sliding_window\""},
      {"eos not ids", llama({{"eos_token_id", {"</s>"}}}), "\"eos_token_id\" must be a token id"},
      {"dtype not string", llama({{"torch_dtype", 16}}), "\"torch_dtype\" must be a string"},
      {"yarn", llama({{"rope_scaling", {{"type", "yarn"}, {"factor", 4.0}}}}),
       "rope_scaling type \"yarn\" is not supported (supported: llama3)"},
      {"linear", llama({{"rope_scaling", {{"rope_type", "linear"}, {"factor", 2.0}}}}),
       "\"linear\" is not supported"},
      {"rope_scaling not object", llama({{"rope_scaling", 2}}),
       "\"rope_scaling\" must be an object"},
      {"llama3 without factor",
       llama({{"rope_scaling",
               {{"rope_type", "llama3"},
                {"low_freq_factor", 1},
                {"high_freq_factor", 4},
                {"original_max_position_embeddings", 8192}}}}),
       "\"rope_scaling.factor\" must be a positive number that fits a float (it is missing)"},
      {"llama3 high <= low",
       llama({{"rope_scaling",
               {{"rope_type", "llama3"},
                {"factor", 8},
                {"low_freq_factor", 4},
                {"high_freq_factor", 4},
                {"original_max_position_embeddings", 8192}}}}),
       "high_freq_factor must be larger"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const std::string message = error_for(c.config);
    CAPTURE(message);
    CHECK(message.find("m/config.json") != std::string::npos);
    CHECK(message.find(c.expected) != std::string::npos);
  }
}
