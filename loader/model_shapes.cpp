#include "loader/model_shapes.h"

#include <nlohmann/json.hpp>

#include "engine/error.h"

namespace nibble {

namespace {

ModelConfig llama(int hidden, int intermediate, int layers, int heads, int kv_heads, int vocab,
                  int context, float theta) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.vocab_size = vocab;
  c.max_position_embeddings = context;
  c.rope_theta = theta;
  c.rms_norm_eps = 1e-5f;
  c.bos_token_ids = {1};
  c.eos_token_ids = {2};
  return c;
}

}  // namespace

std::vector<std::string> known_shapes() {
  return {"llama-2-7b", "llama-3-8b", "mistral-7b", "tinyllama-1.1b", "llama-2-13b"};
}

ModelConfig shape_config(const std::string& name) {
  if (name == "llama-2-7b") return llama(4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f);
  if (name == "llama-2-13b") return llama(5120, 13824, 40, 40, 40, 32000, 4096, 10000.0f);
  if (name == "tinyllama-1.1b") return llama(2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f);
  if (name == "llama-3-8b") {
    ModelConfig c = llama(4096, 14336, 32, 32, 8, 128256, 131072, 500000.0f);  // 3.1
    c.rope_scaling = RopeScaling{"llama3", 8.0f, 1.0f, 4.0f, 8192};
    c.bos_token_ids = {128000};
    c.eos_token_ids = {128001};
    return c;
  }
  if (name == "mistral-7b") {
    ModelConfig c = llama(4096, 14336, 32, 32, 8, 32000, 32768, 10000.0f);
    c.architecture = "MistralForCausalLM";
    c.sliding_window = 4096;
    return c;
  }
  std::string known;
  for (const std::string& s : known_shapes()) known += (known.empty() ? "" : ", ") + s;
  fail("unknown shape '" + name + "' (known: " + known + ")");
}

std::string config_json(const ModelConfig& c, const std::string& torch_dtype) {
  nlohmann::json j = {
      {"architectures", {c.architecture}},
      {"model_type", c.architecture == "MistralForCausalLM" ? "mistral" : "llama"},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"torch_dtype", torch_dtype},
      {"bos_token_id",
       c.bos_token_ids.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.bos_token_ids[0])},
      {"eos_token_id",
       c.eos_token_ids.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.eos_token_ids[0])},
      {"sliding_window",
       c.sliding_window ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr)},
  };
  if (c.rope_scaling)
    j["rope_scaling"] = {
        {"rope_type", c.rope_scaling->type},
        {"factor", c.rope_scaling->factor},
        {"low_freq_factor", c.rope_scaling->low_freq_factor},
        {"high_freq_factor", c.rope_scaling->high_freq_factor},
        {"original_max_position_embeddings", c.rope_scaling->original_max_position_embeddings}};
  return j.dump(2) + "\n";
}

}  // namespace nibble
