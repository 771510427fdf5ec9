// Random test data held in memory: values, 16/32-bit and 4-bit weights, and tiny Llama-shaped
// models built from them, for tests that need a model but no files (CPU consistency, GPU-vs-CPU
// comparisons). Shared by the CPU, Vulkan and CUDA tests.
#pragma once
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/model_config.h"
#include "engine/quant.h"
#include "engine/weights.h"

namespace nibble::test {

// Normal random values, mean 0 and standard deviation `scale`, from `rng` or from a seed.
template <class Rng>
std::vector<float> random_floats(Rng& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}
inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  return random_floats(rng, n, scale);
}

// The same values rounded to float16, what a GPU's KV cache holds, so that a CPU reference sees
// the cache values the GPU does.
inline std::vector<float> f16_rounded(std::vector<float> v) {
  for (float& x : v) x = f16_to_f32(f32_to_f16(x));
  return v;
}

// `values` as the bytes of a `dtype` tensor (F32, F16 or BF16; rounded to nearest).
// RoPE's inverse frequencies theta^(-2i / head_dim), i < head_dim / 2, with theta 10000.
inline std::vector<float> rope_inv_freq(int head_dim) {
  std::vector<float> inv(size_t(head_dim / 2));
  for (size_t i = 0; i < inv.size(); ++i)
    inv[i] = std::pow(10000.0f, -2.0f * float(i) / float(head_dim));
  return inv;
}

inline std::vector<uint8_t> dense_bytes(DType dtype, const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(&bytes[i * 4], &values[i], 4);
    } else {
      const uint16_t h = dtype == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      std::memcpy(&bytes[i * 2], &h, 2);
    }
  }
  return bytes;
}

// A [rows, cols] 16/32-bit weight holding `values` (rounded to `dtype`); it owns its bytes.
inline HostWeight dense_weight(const std::string& name, DType dtype, int64_t rows, int64_t cols,
                               const std::vector<float>& values) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(dense_bytes(dtype, values));
  HostWeight w;
  w.name = name;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  w.data = bytes->data();
  w.nbytes = bytes->size();
  w.owner = bytes;
  return w;
}

struct Quant4 {
  QuantType type = QuantType::NF4;
  int blocksize = 64;
  bool nested = true;  // double quantization
  ComputeDType compute = ComputeDType::BF16;
  int nested_blocksize = 256;  // bitsandbytes' (small tensors need less to span several groups)
};

// A [rows, cols] 4-bit weight with random codes and absmax values in [scale / 2, scale], or, when
// nested, random 8-bit absmax codes, nested absmax and offset that decode to [scale / 5, scale],
// exactly as bitsandbytes stores them (any valid state defines a weight, so GPU kernels are
// checked against engine/quant.cpp's dequantize without needing the encoder).
template <class Rng>
HostWeight random_4bit(Rng& rng, const std::string& name, const Quant4& q, int64_t rows,
                       int64_t cols, float scale = 1.0f) {
  auto s = std::make_shared<QuantState>();
  s->type = q.type;
  s->blocksize = q.blocksize;
  s->code = quant_code(q.type);
  s->shape = {rows, cols};
  const int64_t blocks = s->num_blocks();
  std::uniform_real_distribution<float> unit(0.5f, 1.0f);
  if (q.nested) {
    s->nested = true;
    s->nested_code = dynamic_map_signed();
    s->nested_blocksize = q.nested_blocksize;
    s->offset = 0.6f * scale;
    for (int64_t b = 0; b < blocks; ++b) s->absmax_q.push_back(uint8_t(rng()));
    for (int64_t g = 0; g < (blocks + q.nested_blocksize - 1) / q.nested_blocksize; ++g)
      s->nested_absmax.push_back(0.4f * scale * unit(rng));
  } else {
    for (int64_t b = 0; b < blocks; ++b) s->absmax.push_back(scale * unit(rng));
  }
  auto packed = std::make_shared<std::vector<uint8_t>>(size_t(rows * cols + 1) / 2);
  for (uint8_t& byte : *packed) byte = uint8_t(rng());
  HostWeight w;
  w.name = name;
  w.dtype = q.type == QuantType::NF4 ? DType::NF4 : DType::FP4;
  w.rows = rows;
  w.cols = cols;
  w.data = packed->data();
  w.nbytes = packed->size();
  w.owner = packed;
  w.quant = s;
  w.compute = q.compute;
  return w;
}
inline HostWeight random_4bit(const std::string& name, const Quant4& q, int64_t rows, int64_t cols,
                              uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  return random_4bit(rng, name, q, rows, cols, scale);
}

inline ModelConfig tiny_config(int layers = 2, int hidden = 64, int heads = 4, int kv_heads = 2,
                               int intermediate = 96, int vocab = 97) {
  ModelConfig c;
  c.architecture = "LlamaForCausalLM";
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = 128;
  c.rms_norm_eps = 1e-5f;
  return c;
}

// Random weights, normal with std 0.02 for matrices (realistic scale) and around 1 for norms,
// stored as `dtype` (F32, F16 or BF16). Each tensor is generated once from its name and the seed.
class RandomWeights final : public WeightSource {
 public:
  RandomWeights(uint64_t seed, DType dtype = DType::F32) : seed_(seed), dtype_(dtype) {}

  bool has(const std::string&) const override { return true; }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool) override {
    auto& bytes = store_[name];
    if (bytes.empty()) {
      std::mt19937_64 rng(seed_ ^ std::hash<std::string>{}(name));
      const bool norm = name.find("norm") != std::string::npos;
      std::normal_distribution<float> dist(norm ? 1.0f : 0.0f, norm ? 0.1f : 0.02f);
      std::vector<float> values(size_t(rows * cols));
      for (float& v : values) v = dist(rng);
      bytes = dense_bytes(dtype_, values);
    }
    HostWeight w;
    w.name = name;
    w.dtype = dtype_;
    w.rows = rows;
    w.cols = cols;
    w.data = bytes.data();
    w.nbytes = bytes.size();
    return w;
  }

 private:
  uint64_t seed_;
  DType dtype_;
  std::map<std::string, std::vector<uint8_t>> store_;
};

// RandomWeights, but every quantizable matrix is a random 4-bit weight (absmax ~0.04, so the
// dequantized values have about the spread of the 16-bit ones).
class Random4bitWeights final : public WeightSource {
 public:
  Random4bitWeights(uint64_t seed, Quant4 q) : seed_(seed), q_(q), dense_(seed, DType::BF16) {}
  bool has(const std::string& name) const override { return dense_.has(name); }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override {
    if (!quantizable) return dense_.get(name, rows, cols, false);
    return random_4bit(name, q_, rows, cols, seed_ ^ std::hash<std::string>{}(name), 0.04f);
  }

 private:
  uint64_t seed_;
  Quant4 q_;
  RandomWeights dense_;
};

// Relative L2 error |a - b| / |b|.
inline double rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
    num += double(a[i] - b[i]) * double(a[i] - b[i]);
    den += double(b[i]) * double(b[i]);
  }
  if (a.size() != b.size()) return INFINITY;
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

}  // namespace nibble::test
