#include "loader/memory_estimate.h"

namespace nibble {

std::vector<WeightShape> model_weight_shapes(const ModelConfig& c) {
  const int64_t d = c.hidden_size, f = c.intermediate_size, q = c.q_dim(), kv = c.kv_dim();
  std::vector<WeightShape> w;
  w.push_back({"model.embed_tokens.weight", c.vocab_size, d, false});
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    w.push_back({p + "input_layernorm.weight", 1, d, false});
    w.push_back({p + "self_attn.q_proj.weight", q, d, true});
    w.push_back({p + "self_attn.k_proj.weight", kv, d, true});
    w.push_back({p + "self_attn.v_proj.weight", kv, d, true});
    w.push_back({p + "self_attn.o_proj.weight", d, q, true});
    w.push_back({p + "post_attention_layernorm.weight", 1, d, false});
    w.push_back({p + "mlp.gate_proj.weight", f, d, true});
    w.push_back({p + "mlp.up_proj.weight", f, d, true});
    w.push_back({p + "mlp.down_proj.weight", d, f, true});
  }
  w.push_back({"model.norm.weight", 1, d, false});
  if (!c.tie_word_embeddings) w.push_back({"lm_head.weight", c.vocab_size, d, false});
  return w;
}

uint64_t quantized_weight_bytes(int64_t numel, int blocksize, bool double_quant) {
  const uint64_t n = uint64_t(numel), blocks = (n + uint64_t(blocksize) - 1) / uint64_t(blocksize);
  const uint64_t packed = (n + 1) / 2, code = 16 * 4;
  if (!double_quant) return packed + blocks * 4 + code;
  const uint64_t nested_blocks = (blocks + 255) / 256;
  return packed + blocks + nested_blocks * 4 + 256 * 4 + code + 4;
}

uint64_t model_weight_bytes(const ModelConfig& c, const QuantConfig& quant,
                            size_t unquantized_element_bytes) {
  uint64_t total = 0;
  for (const WeightShape& w : model_weight_shapes(c)) {
    bool quantize = quant.enabled && w.quantizable;
    // As transformers' modules_to_not_convert: a module is skipped if its name contains the entry.
    for (const std::string& skip : quant.skip_modules)
      if (w.name.find(skip) != std::string::npos) quantize = false;
    const int64_t numel = w.rows * w.cols;
    total += quantize ? quantized_weight_bytes(numel, quant.blocksize, quant.double_quant)
                      : uint64_t(numel) * unquantized_element_bytes;
  }
  return total;
}

}  // namespace nibble
