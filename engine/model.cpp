#include "engine/model.h"

#include <algorithm>

#include "engine/error.h"

namespace nibble {

namespace {
std::string layer_name(int i, const char* rest) {
  return "model.layers." + std::to_string(i) + "." + rest;
}
}  // namespace

ModelOptions Model::resolve(const ModelConfig& config, ModelOptions options) {
  if (options.context <= 0) options.context = std::min(config.max_position_embeddings, 4096);
  options.max_batch = std::max(1, std::min(options.max_batch, options.context));
  return options;
}

RuntimeMemory Model::runtime_memory(const ModelConfig& c, const ModelOptions& options,
                                    DType kv_dtype) {
  const uint64_t b = uint64_t(options.max_batch);
  RuntimeMemory m;
  m.kv_cache = 2ull * uint64_t(c.num_hidden_layers) * uint64_t(options.context) *
               uint64_t(c.kv_dim()) * dtype_size(kv_dtype);
  // ids_, x_, xn_, q_, k_, v_, att_, proj_, gate_, up_, logits_, next_id_ (see the constructor)
  const uint64_t floats = b * (3ull * uint64_t(c.hidden_size) + 2ull * uint64_t(c.q_dim()) +
                               2ull * uint64_t(c.kv_dim()) + 2ull * uint64_t(c.intermediate_size) +
                               uint64_t(c.vocab_size));
  m.activations = 4 * (floats + b + 1);
  return m;
}

Model::Model(Backend& backend, const ModelConfig& config, WeightSource& weights,
             const ModelOptions& requested)
    : backend_(backend), config_(config) {
  const ModelConfig& c = config_;
  const ModelOptions options = resolve(c, requested);
  context_ = options.context;
  max_batch_ = options.max_batch;

  const int total = 3 + c.num_hidden_layers * 9;
  int done = 0;
  auto load = [&](const std::string& name, int64_t rows, int64_t cols, bool quantizable) {
    const HostWeight w = weights.get(name, rows, cols, quantizable);
    Tensor t = backend_.upload_weight(w);
    weight_bytes_per_token_ += name == "model.embed_tokens.weight" ? w.nbytes / uint64_t(rows)
                                                                   : stored_bytes(w);
    if (options.on_progress) options.on_progress(++done, total, name);
    return t;
  };

  const int d = c.hidden_size, f = c.intermediate_size;
  embed_ = load("model.embed_tokens.weight", c.vocab_size, d, false);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    Layer l;
    l.attn_norm = load(layer_name(i, "input_layernorm.weight"), 1, d, false);
    l.wq = load(layer_name(i, "self_attn.q_proj.weight"), c.q_dim(), d, true);
    l.wk = load(layer_name(i, "self_attn.k_proj.weight"), c.kv_dim(), d, true);
    l.wv = load(layer_name(i, "self_attn.v_proj.weight"), c.kv_dim(), d, true);
    l.wo = load(layer_name(i, "self_attn.o_proj.weight"), d, c.q_dim(), true);
    l.mlp_norm = load(layer_name(i, "post_attention_layernorm.weight"), 1, d, false);
    l.w_gate = load(layer_name(i, "mlp.gate_proj.weight"), f, d, true);
    l.w_up = load(layer_name(i, "mlp.up_proj.weight"), f, d, true);
    l.w_down = load(layer_name(i, "mlp.down_proj.weight"), d, f, true);
    l.k_cache = backend_.alloc_kv(context_, c.kv_dim());
    l.v_cache = backend_.alloc_kv(context_, c.kv_dim());
    layers_.push_back(l);
  }
  final_norm_ = load("model.norm.weight", 1, d, false);
  const bool tied = c.tie_word_embeddings && !weights.has("lm_head.weight");
  lm_head_ = tied ? embed_ : load("lm_head.weight", c.vocab_size, d, false);
  if (tied) {
    weight_bytes_per_token_ += uint64_t(c.vocab_size) * uint64_t(d) * dtype_size(embed_.dtype);
    if (options.on_progress) options.on_progress(++done, total, "lm_head (tied)");
  }

  const std::vector<float> inv_freq = rope_inv_freq(c);
  inv_freq_ = backend_.alloc(DType::F32, 1, int64_t(inv_freq.size()), Usage::Weights);
  backend_.write(inv_freq_, inv_freq.data());

  const int b = max_batch_;
  ids_ = backend_.alloc(DType::I32, b, 1, Usage::Activations);
  x_ = backend_.alloc(DType::F32, b, d, Usage::Activations);
  xn_ = backend_.alloc(DType::F32, b, d, Usage::Activations);
  q_ = backend_.alloc(DType::F32, b, c.q_dim(), Usage::Activations);
  k_ = backend_.alloc(DType::F32, b, c.kv_dim(), Usage::Activations);
  v_ = backend_.alloc(DType::F32, b, c.kv_dim(), Usage::Activations);
  att_ = backend_.alloc(DType::F32, b, c.q_dim(), Usage::Activations);
  proj_ = backend_.alloc(DType::F32, b, d, Usage::Activations);
  gate_ = backend_.alloc(DType::F32, b, f, Usage::Activations);
  up_ = backend_.alloc(DType::F32, b, f, Usage::Activations);
  logits_ = backend_.alloc(DType::F32, b, c.vocab_size, Usage::Activations);
  next_id_ = backend_.alloc(DType::I32, 1, 1, Usage::Activations);
}

void Model::forward(std::span<const int> tokens, int pos, bool all_logits) {
  if (tokens.empty()) fail("forward: no tokens");
  if (pos < 0 || pos + int(tokens.size()) > context_)
    fail("the sequence needs " + std::to_string(pos + tokens.size()) +
         " positions but the context holds " + std::to_string(context_) +
         " (raise --ctx or shorten the prompt)");
  for (size_t i = 0; i < tokens.size(); i += size_t(max_batch_)) {
    const size_t n = std::min(tokens.size() - i, size_t(max_batch_));
    forward_chunk(tokens.subspan(i, n), pos + int(i), all_logits);
  }
}

void Model::forward_chunk(std::span<const int> tokens, int pos, bool all_logits) {
  const ModelConfig& c = config_;
  const int n = int(tokens.size());
  for (int t : tokens)
    if (t < 0 || t >= c.vocab_size)
      fail("token id " + std::to_string(t) + " is outside the vocabulary of " +
           std::to_string(c.vocab_size));
  auto rows = [n](Tensor t) { return t.slice_rows(0, n); };
  Tensor x = rows(x_), xn = rows(xn_), q = rows(q_), k = rows(k_), v = rows(v_);
  Tensor att = rows(att_), proj = rows(proj_), gate = rows(gate_), up = rows(up_);
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                             c.sliding_window};

  backend_.begin_step({pos, n});
  backend_.write(rows(ids_), tokens.data());
  backend_.embed(x, embed_, rows(ids_));
  for (int i = 0; i < int(layers_.size()); ++i) {
    const Layer& l = layers_[size_t(i)];
    // Attention block: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
    backend_.phase_begin(i, Phase::Attention);
    backend_.rms_norm(xn, x, l.attn_norm, c.rms_norm_eps);
    backend_.matmul(q, xn, l.wq);
    backend_.matmul(k, xn, l.wk);
    backend_.matmul(v, xn, l.wv);
    backend_.rope(q, c.num_attention_heads, c.head_dim, inv_freq_);
    backend_.rope(k, c.num_key_value_heads, c.head_dim, inv_freq_);
    backend_.kv_store(l.k_cache, l.v_cache, k, v);
    backend_.attention(att, q, l.k_cache, l.v_cache, shape);
    backend_.matmul(proj, att, l.wo);
    backend_.add(x, proj);
    backend_.phase_end(i, Phase::Attention);
    // MLP block: x += W_down · (silu(W_gate·norm(x)) * W_up·norm(x))
    backend_.phase_begin(i, Phase::Mlp);
    backend_.rms_norm(xn, x, l.mlp_norm, c.rms_norm_eps);
    backend_.matmul(gate, xn, l.w_gate);
    backend_.matmul(up, xn, l.w_up);
    backend_.swiglu(gate, gate, up);
    backend_.matmul(proj, gate, l.w_down);
    backend_.add(x, proj);
    backend_.phase_end(i, Phase::Mlp);
  }
  // Only the rows whose logits are wanted go through the final norm and the output head.
  const int first = all_logits ? 0 : n - 1;
  last_rows_ = n - first;
  Tensor h = x.slice_rows(first, last_rows_), hn = xn.slice_rows(first, last_rows_);
  Tensor logits = logits_.slice_rows(0, last_rows_);
  backend_.rms_norm(hn, h, final_norm_, c.rms_norm_eps);
  backend_.matmul(logits, hn, lm_head_);
  backend_.argmax(next_id_, logits.slice_rows(last_rows_ - 1, 1));
  backend_.end_step();
}

std::vector<float> Model::logits() {
  std::vector<float> out(size_t(last_rows_) * size_t(config_.vocab_size));
  backend_.read(logits_.slice_rows(0, last_rows_), out.data());
  return out;
}

int Model::argmax() {
  int id = 0;
  backend_.read(next_id_, &id);
  return id;
}

}  // namespace nibble
