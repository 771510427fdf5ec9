// The architecture hyper-parameters of a Llama-family model, as read from config.json.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace nibble {

struct RopeScaling {
  std::string type;  // "llama3" (the only type we implement; others are rejected at load)
  float factor = 1.0f;
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // LlamaForCausalLM or MistralForCausalLM
  int vocab_size = 0;
  int hidden_size = 0;
  int intermediate_size = 0;
  int num_hidden_layers = 0;
  int num_attention_heads = 0;
  int num_key_value_heads = 0;
  int head_dim = 0;  // hidden_size / num_attention_heads unless config.json says otherwise
  int max_position_embeddings = 2048;
  float rms_norm_eps = 1e-6f;
  float rope_theta = 10000.0f;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  int sliding_window = 0;  // 0: attend to the whole context
  std::string torch_dtype = "float32";
  std::vector<int> bos_token_ids;
  std::vector<int> eos_token_ids;

  int q_dim() const { return num_attention_heads * head_dim; }
  int kv_dim() const { return num_key_value_heads * head_dim; }
};

// RoPE inverse frequencies (head_dim / 2 of them), with llama3 scaling applied as HF does.
std::vector<float> rope_inv_freq(const ModelConfig& c);

}  // namespace nibble
