// Tiny Llama-shaped models with random weights, held in memory: for tests that need a model but
// no files (CPU consistency, GPU-vs-CPU comparisons).
#pragma once
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/model_config.h"
#include "engine/weights.h"

namespace nibble::test {

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
      const size_t n = size_t(rows * cols);
      bytes.resize(n * dtype_size(dtype_));
      for (size_t i = 0; i < n; ++i) {
        const float v = dist(rng);
        if (dtype_ == DType::F32) {
          std::memcpy(&bytes[i * 4], &v, 4);
        } else {
          const uint16_t h = dtype_ == DType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
          std::memcpy(&bytes[i * 2], &h, 2);
        }
      }
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
