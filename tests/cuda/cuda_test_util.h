// Helpers of the CUDA tests: the skip when there is no NVIDIA GPU, random inputs, and 4-bit
// weights with random codes and quantization states (any valid state defines a weight, so the
// kernels are checked against engine/quant.cpp's dequantize without needing the encoder).
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
#include "engine/quant.h"
#include "tests/random_model.h"

namespace nibble::test {

// The CUDA backend, or null (after saying why) on machines without an NVIDIA GPU or driver.
inline std::unique_ptr<Backend> cuda_or_skip() {
  try {
    return make_cuda_backend(0);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("no CUDA device", 0) != 0) throw;
    MESSAGE("skipped, this machine cannot run CUDA: " << what);
    return nullptr;
  }
}

inline std::vector<float> random_floats(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The same values rounded to what an F16 KV cache holds.
inline std::vector<float> f16_representable(std::vector<float> v) {
  for (float& x : v) x = f16_to_f32(f32_to_f16(x));
  return v;
}

// A [rows, cols] 16/32-bit weight holding `values` (rounded to `dtype`).
inline HostWeight dense_weight(const std::string& name, DType dtype, int64_t rows, int64_t cols,
                               const std::vector<float>& values) {
  auto bytes = std::make_shared<std::vector<uint8_t>>(values.size() * dtype_size(dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(bytes->data() + 4 * i, &values[i], 4);
    } else {
      const uint16_t h = dtype == DType::F16 ? f32_to_f16(values[i]) : f32_to_bf16(values[i]);
      std::memcpy(bytes->data() + 2 * i, &h, 2);
    }
  }
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
  bool nested = true;
  ComputeDType compute = ComputeDType::BF16;
};

// A [rows, cols] 4-bit weight: random codes, absmax around `scale`, optionally double-quantized
// (random 8-bit absmax codes, nested absmax and offset) exactly as bitsandbytes stores it.
inline HostWeight random_4bit(const std::string& name, const Quant4& q, int64_t rows, int64_t cols,
                              uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
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
    s->nested_blocksize = 256;
    s->offset = 0.6f * scale;
    for (int64_t b = 0; b < blocks; ++b) s->absmax_q.push_back(uint8_t(rng()));
    for (int64_t b = 0; b < (blocks + 255) / 256; ++b)
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

}  // namespace nibble::test
