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
                                    DType kv_dtype, int layers) {
  const uint64_t b = uint64_t(options.max_batch);
  RuntimeMemory m;
  m.kv_cache = 2ull * uint64_t(layers) * uint64_t(options.context) * uint64_t(c.kv_dim()) *
               dtype_size(kv_dtype);
  // ids, x, xn, q, k, v, att, proj, gate, up (every stage); logits and two picks (the last)
  const uint64_t floats = b * (3ull * uint64_t(c.hidden_size) + 2ull * uint64_t(c.q_dim()) +
                               2ull * uint64_t(c.kv_dim()) + 2ull * uint64_t(c.intermediate_size)) +
                          (options.all_logits ? b : 1) * uint64_t(c.vocab_size);
  m.activations = 4 * (floats + b + 2);
  return m;
}

Model::Model(Backend& backend, const ModelConfig& config, WeightSource& weights,
             const ModelOptions& options)
    : Model(std::vector<Stage>{{&backend, config.num_hidden_layers}}, config, weights, options) {}

Model::Model(std::vector<Stage> stages, const ModelConfig& config, WeightSource& weights,
             const ModelOptions& requested)
    : stages_(std::move(stages)), config_(config) {
  const ModelConfig& c = config_;
  int placed = 0;
  for (const Stage& s : stages_) {
    if (!s.backend || s.layers < 0) fail("model: invalid stage");
    placed += s.layers;
  }
  if (stages_.empty() || placed != c.num_hidden_layers)
    fail("model: the stages hold " + std::to_string(placed) + " layers, the model has " +
         std::to_string(c.num_hidden_layers));
  const ModelOptions options = resolve(c, requested);
  context_ = options.context;
  max_batch_ = options.max_batch;
  Backend& first = *stages_.front().backend;
  Backend& last = *stages_.back().backend;

  const int total = 3 + c.num_hidden_layers * 9;
  int done = 0;
  auto load = [&](Backend& be, const std::string& name, int64_t rows, int64_t cols,
                  bool quantizable) {
    const HostWeight w = weights.get(name, rows, cols, quantizable);
    if (name.ends_with("self_attn.q_proj.weight")) compute_ = w.compute;
    Tensor t = w.quantize_to ? be.upload_quantized(w, *w.quantize_to) : be.upload_weight(w);
    weight_bytes_per_token_ += name == "model.embed_tokens.weight" && &be == &first
                                   ? w.nbytes / uint64_t(rows)
                                   : stored_bytes(w);
    if (options.on_progress) options.on_progress(++done, total, name);
    return t;
  };

  const int d = c.hidden_size, f = c.intermediate_size, b = max_batch_;
  const std::vector<float> inv_freq = rope_inv_freq(c);
  embed_ = load(first, "model.embed_tokens.weight", c.vocab_size, d, false);
  int next_layer = 0;
  for (const Stage& stage : stages_) {
    Backend& be = *stage.backend;
    StageState s;
    s.first_layer = next_layer;
    for (int i = next_layer; i < next_layer + stage.layers; ++i) {
      Layer l;
      l.attn_norm = load(be, layer_name(i, "input_layernorm.weight"), 1, d, false);
      l.wq = load(be, layer_name(i, "self_attn.q_proj.weight"), c.q_dim(), d, true);
      l.wk = load(be, layer_name(i, "self_attn.k_proj.weight"), c.kv_dim(), d, true);
      l.wv = load(be, layer_name(i, "self_attn.v_proj.weight"), c.kv_dim(), d, true);
      l.wo = load(be, layer_name(i, "self_attn.o_proj.weight"), d, c.q_dim(), true);
      l.mlp_norm = load(be, layer_name(i, "post_attention_layernorm.weight"), 1, d, false);
      l.w_gate = load(be, layer_name(i, "mlp.gate_proj.weight"), f, d, true);
      l.w_up = load(be, layer_name(i, "mlp.up_proj.weight"), f, d, true);
      l.w_down = load(be, layer_name(i, "mlp.down_proj.weight"), d, f, true);
      l.k_cache = be.alloc_kv(context_, c.kv_dim());
      l.v_cache = be.alloc_kv(context_, c.kv_dim());
      s.layers.push_back(l);
    }
    next_layer += stage.layers;
    s.inv_freq = be.alloc(DType::F32, 1, int64_t(inv_freq.size()), Usage::Weights);
    be.write(s.inv_freq, inv_freq.data());
    s.ids = be.alloc(DType::I32, b, 1, Usage::Activations);
    s.x = be.alloc(DType::F32, b, d, Usage::Activations);
    s.xn = be.alloc(DType::F32, b, d, Usage::Activations);
    s.q = be.alloc(DType::F32, b, c.q_dim(), Usage::Activations);
    s.k = be.alloc(DType::F32, b, c.kv_dim(), Usage::Activations);
    s.v = be.alloc(DType::F32, b, c.kv_dim(), Usage::Activations);
    s.att = be.alloc(DType::F32, b, c.q_dim(), Usage::Activations);
    s.proj = be.alloc(DType::F32, b, d, Usage::Activations);
    s.gate = be.alloc(DType::F32, b, f, Usage::Activations);
    s.up = be.alloc(DType::F32, b, f, Usage::Activations);
    state_.push_back(std::move(s));
  }
  final_norm_ = load(last, "model.norm.weight", 1, d, false);
  const bool tied = c.tie_word_embeddings && !weights.has("lm_head.weight");
  if (tied && &last == &first) {
    lm_head_ = embed_;
    weight_bytes_per_token_ += uint64_t(c.vocab_size) * uint64_t(d) * dtype_size(embed_.dtype);
    if (options.on_progress) options.on_progress(++done, total, "lm_head (tied)");
  } else {
    lm_head_ =
        load(last, tied ? "model.embed_tokens.weight" : "lm_head.weight", c.vocab_size, d, false);
  }
  all_logits_ = options.all_logits;
  logits_ = last.alloc(DType::F32, all_logits_ ? b : 1, c.vocab_size, Usage::Output);
  for (Tensor& pick : picks_) pick = last.alloc(DType::I32, 1, 1, Usage::Output);
  for (const Stage& stage : stages_) {
    stage.backend->finish_uploads();
    stage.backend->reserve_scratch(c, context_, max_batch_);
  }
}

void Model::forward(std::span<const int> tokens, int pos, bool all_logits, DevicePick how) {
  if (tokens.empty()) fail("forward: no tokens");
  if (all_logits && !all_logits_)
    fail("internal error: forward's all_logits needs a model made with ModelOptions::all_logits");
  if (pos < 0 || pos + int(tokens.size()) > context_)
    fail("the sequence needs " + std::to_string(pos + tokens.size()) +
         " positions but the context holds " + std::to_string(context_) +
         " (raise --ctx or shorten the prompt)");
  for (size_t i = 0; i < tokens.size(); i += size_t(max_batch_)) {
    const size_t n = std::min(tokens.size() - i, size_t(max_batch_));
    forward_chunk(tokens.subspan(i, n), pos + int(i), all_logits, how);
  }
}

void Model::run_layers(Backend& be, StageState& s, int n) {
  const ModelConfig& c = config_;
  auto rows = [n](Tensor t) { return t.slice_rows(0, n); };
  Tensor x = rows(s.x), xn = rows(s.xn), q = rows(s.q), k = rows(s.k), v = rows(s.v);
  Tensor att = rows(s.att), proj = rows(s.proj), gate = rows(s.gate), up = rows(s.up);
  const AttentionShape shape{c.num_attention_heads, c.num_key_value_heads, c.head_dim,
                             c.sliding_window, compute_};
  for (size_t j = 0; j < s.layers.size(); ++j) {
    const Layer& l = s.layers[j];
    const int i = s.first_layer + int(j);
    // Attention block: x += Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x))
    be.phase_begin(i, Phase::Attention);
    be.norm_matmuls(x, l.attn_norm, c.rms_norm_eps, xn, {{q, l.wq}, {k, l.wk}, {v, l.wv}});
    be.rope_kv_attention(att, q, k, v, l.k_cache, l.v_cache, shape, s.inv_freq);
    be.matmul_add(x, att, l.wo, proj);
    be.phase_end(i, Phase::Attention);
    // MLP block: x += W_down · (silu(W_gate·norm(x)) * W_up·norm(x))
    be.phase_begin(i, Phase::Mlp);
    be.norm_matmul_swiglu(gate, x, l.mlp_norm, c.rms_norm_eps, xn, l.w_gate, l.w_up, up);
    be.matmul_add(x, gate, l.w_down, proj);
    be.phase_end(i, Phase::Mlp);
  }
}

void Model::forward_picked(int pos, DevicePick how) {
  if (pos < 0 || pos + 1 > context_)
    fail("the sequence needs " + std::to_string(pos + 1) + " positions but the context holds " +
         std::to_string(context_) + " (raise --ctx or shorten the prompt)");
  if (stages_.front().backend != stages_.back().backend) {  // the pick is on another device
    const int token = pick();
    run(1, pos, false, &token, how);
    return;
  }
  run(1, pos, false, nullptr, how);
}

void Model::forward_chunk(std::span<const int> tokens, int pos, bool all_logits, DevicePick how) {
  for (int t : tokens)
    if (t < 0 || t >= config_.vocab_size)
      fail("token id " + std::to_string(t) + " is outside the vocabulary of " +
           std::to_string(config_.vocab_size));
  run(int(tokens.size()), pos, all_logits, tokens.data(), how);
}

void Model::run(int n, int pos, bool all_logits, const int* tokens, DevicePick how) {
  const ModelConfig& c = config_;
  for (size_t si = 0; si < stages_.size(); ++si) {
    Backend& be = *stages_[si].backend;
    StageState& s = state_[si];
    Tensor x = s.x.slice_rows(0, n);
    be.begin_step({pos, n, how.u});
    if (si == 0) {
      Tensor ids = tokens ? s.ids.slice_rows(0, n) : picks_[last_pick_];
      if (tokens) be.write(ids, tokens);
      be.embed(x, embed_, ids);
    } else {
      be.write(x, hidden_.data());  // from the previous stage
    }
    run_layers(be, s, n);
    if (si + 1 < stages_.size()) {
      be.end_step();
      hidden_.resize(size_t(n) * size_t(c.hidden_size));
      be.read(x, hidden_.data());
      continue;
    }
    // Only the rows whose logits are wanted go through the final norm and the output head.
    const int first = all_logits ? 0 : n - 1;
    last_rows_ = n - first;
    Tensor h = x.slice_rows(first, last_rows_), hn = s.xn.slice_rows(first, last_rows_);
    Tensor logits = logits_.slice_rows(0, last_rows_);
    be.rms_norm(hn, h, final_norm_, c.rms_norm_eps);
    be.matmul(logits, hn, lm_head_);
    last_pick_ ^= 1;
    if (how.sampling)
      be.sample(picks_[last_pick_], logits.slice_rows(last_rows_ - 1, 1), *how.sampling);
    else
      be.argmax(picks_[last_pick_], logits.slice_rows(last_rows_ - 1, 1));
    be.end_step();
  }
}

std::vector<float> Model::logits() {
  std::vector<float> out;
  logits(out);
  return out;
}

void Model::logits(std::vector<float>& out) {
  out.resize(size_t(last_rows_) * size_t(config_.vocab_size));
  backend().read(logits_.slice_rows(0, last_rows_), out.data());
}

int Model::pick(int back) {
  if (back != 0 && back != 1) fail("internal error: pick looks back at most one forward");
  int id = 0;
  backend().read(picks_[last_pick_ ^ back], &id);
  return id;
}

std::vector<LayerTime> Model::step_times() {
  std::vector<LayerTime> all;
  for (size_t i = 0; i < stages_.size(); ++i) {
    if (i > 0 && stages_[i].backend == stages_[i - 1].backend) continue;
    for (const LayerTime& t : stages_[i].backend->step_times()) all.push_back(t);
  }
  return all;
}

}  // namespace nibble
