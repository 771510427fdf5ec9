// The GPU quantizers' tests (tests/vulkan/vulkan_quantize_test.cpp,
// tests/cuda/cuda_quantize_test.cpp), shared so that both check the same things the same way:
// inputs that hit every special case of bitsandbytes' encoder over every setting, weights of
// several chunks, a subnormal offset, the bitsandbytes fixtures, inf and NaN, and a model whose
// weights the backend quantizes; each output compared byte for byte, part by part, with the CPU's
// quantize_4bit or the fixture. Each suite supplies its quantizer as a QuantizeOnGpu.
#pragma once
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/error.h"
#include "engine/model.h"
#include "loader/bnb_checkpoint.h"
#include "loader/quantize.h"
#include "tests/quant_fixture.h"
#include "tests/random_model.h"

namespace nibble::test {

// A weight that owns its bytes.
struct Input {
  HostWeight w;
  Input(const std::string& name, DType dtype, int64_t rows, int64_t cols,
        const std::vector<float>& values)
      : w(dense_weight(name, dtype, rows, cols, values)) {}
};

// One weight to quantize, and the setting to quantize it to.
struct QuantizeCase {
  HostWeight w;
  QuantSpec spec;
};

// The index of the first differing byte, -1 if none (so that a failure says where).
inline int64_t first_difference(const void* a, const void* b, size_t bytes) {
  const auto* x = static_cast<const uint8_t*>(a);
  const auto* y = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < bytes; ++i)
    if (x[i] != y[i]) return int64_t(i);
  return -1;
}

// Values of every kind the encoder must treat as bitsandbytes does, one pattern per block:
// normal ones at two scales, zeros (both signs), float32 subnormals (flushed), the float16
// subnormals (normal in float32), huge magnitudes, a block of equal values, and values exactly on
// the decision thresholds (absmax 1, so they are not rescaled).
inline std::vector<float> awkward_values(std::mt19937& rng, int64_t n, int blocksize, DType dtype) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const FourBitThresholds& t = four_bit_thresholds();
  const float huge = dtype == DType::F16 ? 2e4f : 1e37f;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / blocksize, at = i % blocksize;
    float& x = v[size_t(i)];
    switch (block % 8) {
      case 0:
        x = 0.02f * normal(rng);
        break;
      case 1:
        x = 3.0f * normal(rng);
        break;
      case 2:
        x = at % 2 ? -0.0f : 0.0f;
        break;
      case 3:
        x = -0.37f;
        break;
      case 4: {
        const float special[] = {1e-40f, -3e-39f, 3e-6f, -6e-8f, 0.0f, -0.0f};
        x = at % 3 ? 0.02f * normal(rng) : special[size_t(at / 3) % 6];
        break;
      }
      case 5:
        x = huge * std::max(-3.0f, std::min(3.0f, normal(rng)));
        break;
      case 6: {
        const size_t k = size_t(at) % 45;  // the thresholds, their negatives and neighbours
        const float m = k < 15 ? t.nf4[k] : k < 22 ? t.fp4[k - 15] : k < 29 ? -t.fp4[k - 22] : 0;
        x = at == 0  ? 1.0f
            : k < 29 ? m
                     : std::nextafter(t.nf4[k - 29 > 14 ? 14 : k - 29], at % 2 ? 2.0f : -2.0f);
        break;
      }
      default:
        x = 1e-3f * normal(rng);
    }
  }
  return v;
}

// A GPU quantizer's output for one weight, read back: its bytes (poisoned before it ran), where
// its parts start, and the double-quant offset it reported.
struct Quantized {
  std::vector<uint8_t> bytes;
  size_t code_at = 0, absmax_at = 0, nested_absmax_at = 0, nested_code_at = 0;
  float offset = std::numeric_limits<float>::quiet_NaN();
};

// The quantizer under test: quantizes `cases` in one go, several weights in flight as when loading
// a model, and returns their outputs in order. Empty when the suite has no device (test skipped).
using QuantizeOnGpu = std::function<std::vector<Quantized>(const std::vector<QuantizeCase>&)>;

// The GPU's bytes against the expected packed codes and quantization state, part by part.
inline void check_parts(const Quantized& got, bool double_quant, const std::vector<uint8_t>& packed,
                        const QuantState& s) {
  const uint8_t* bytes = got.bytes.data();
  CHECK(first_difference(bytes, packed.data(), packed.size()) == -1);
  CHECK(first_difference(bytes + got.code_at, s.code.data(), 64) == -1);
  if (double_quant) {
    CHECK(f32_to_bits(got.offset) == f32_to_bits(s.offset));
    CHECK(first_difference(bytes + got.absmax_at, s.absmax_q.data(), s.absmax_q.size()) == -1);
    CHECK(first_difference(bytes + got.nested_absmax_at, s.nested_absmax.data(),
                           s.nested_absmax.size() * 4) == -1);
    CHECK(first_difference(bytes + got.nested_code_at, s.nested_code.data(), 1024) == -1);
  } else {
    CHECK(first_difference(bytes + got.absmax_at, s.absmax.data(), s.absmax.size() * 4) == -1);
  }
}

// `cases` through the GPU, each against the CPU's quantize_4bit.
inline void check_against_cpu(const QuantizeOnGpu& gpu, const std::vector<QuantizeCase>& cases) {
  const std::vector<Quantized> got = gpu(cases);
  REQUIRE(got.size() == cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const QuantizeCase& c = cases[i];
    CAPTURE(c.w.name);
    const QuantizedWeight want =
        quantize_4bit(c.w, c.spec.type, c.spec.blocksize, c.spec.double_quant);
    check_parts(got[i], c.spec.double_quant, want.packed, want.state);
  }
}

// [rows, cols]
using Shape = std::array<int64_t, 2>;

// Every setting (nf4/fp4 x double quant x blocksizes 64..4096) over shapes with partial blocks, odd
// element counts and single rows, then `more_shapes`: awkward_values as `dtype`.
inline void check_every_setting(const QuantizeOnGpu& gpu, DType dtype,
                                std::span<const Shape> more_shapes = {}) {
  std::vector<Shape> shapes = {{1, 1}, {3, 5}, {37, 100}, {64, 64}, {129, 65}, {5, 4097}};
  shapes.insert(shapes.end(), more_shapes.begin(), more_shapes.end());
  std::mt19937 rng(uint32_t(dtype) + 17);
  std::vector<QuantizeCase> cases;
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (bool dq : {false, true})
      for (int blocksize = 64; blocksize <= 4096; blocksize *= 2)
        for (const Shape& s : shapes) {
          const std::string name = std::string(dtype_name(dtype)) + (dq ? " dq " : " ") +
                                   (type == QuantType::NF4 ? "nf4" : "fp4") + " bs" +
                                   std::to_string(blocksize) + " " + std::to_string(s[0]) + "x" +
                                   std::to_string(s[1]);
          cases.push_back({dense_weight(name, dtype, s[0], s[1],
                                        awkward_values(rng, s[0] * s[1], blocksize, dtype)),
                           {type, blocksize, dq}});
        }
  check_against_cpu(gpu, cases);
}

// Weights of several 16 MiB chunks, torch's multi-block mean: 8.6M bfloat16 values (two chunks,
// 134400 absmax values that torch sums in 17 blocks) and 4.5M float32 values (two chunks of
// another size), the latter also at `more_f32_specs`.
inline void check_several_chunks(const QuantizeOnGpu& gpu,
                                 std::span<const QuantSpec> more_f32_specs = {}) {
  std::mt19937 rng(5);
  Input big("big.bf16", DType::BF16, 2100, 4096, random_floats(rng, 2100 * 4096, 0.02f));
  Input wide("big.f32", DType::F32, 1100, 4096, random_floats(rng, 1100 * 4096, 0.02f));
  REQUIRE(torch_cuda_reduce(2100 * 4096 / 64).blocks > 1);
  std::vector<QuantizeCase> cases = {{big.w, {QuantType::NF4, 64, true}},
                                     {wide.w, {QuantType::FP4, 128, true}},
                                     {big.w, {QuantType::FP4, 4096, false}}};
  for (const QuantSpec& spec : more_f32_specs) cases.push_back({wide.w, spec});
  check_against_cpu(gpu, cases);
}

// One block of tiny normal values among zero blocks: the mean of the absmax (the double-quant
// offset) is subnormal, which a device flushing subnormal operands would read as zero.
inline void check_subnormal_offset(const QuantizeOnGpu& gpu) {
  std::vector<float> v(64 * 64, 0.0f);
  for (int i = 0; i < 64; ++i) v[size_t(i)] = (i % 2 ? -1.0f : 1.0f) * 2e-38f * float(1 + i % 7);
  v[64 * 9] = 1.2e-38f;  // an absmax just above FLT_MIN: absmax - offset is subnormal, flushed
  Input tiny("tiny.f32", DType::F32, 64, 64, v);
  const float offset = quantize_4bit(tiny.w, QuantType::NF4, 64, true).state.offset;
  CHECK(offset > 0.0f);
  CHECK(offset < std::numeric_limits<float>::min());
  check_against_cpu(gpu, {{tiny.w, {QuantType::NF4, 64, true}}});
}

// The bitsandbytes fixtures (tests/quant_fixture.h) through the GPU: what bitsandbytes produced.
inline void check_bnb_fixtures(const QuantizeOnGpu& gpu) {
  const std::vector<BnbCase> fixtures = bnb_cases();
  REQUIRE(!fixtures.empty());
  std::vector<QuantizeCase> cases;
  for (const BnbCase& c : fixtures)
    cases.push_back({c.weight("input"), {c.type(), c.blocksize(), c.double_quant()}});
  const std::vector<Quantized> got = gpu(cases);
  REQUIRE(got.size() == cases.size());
  for (size_t i = 0; i < fixtures.size(); ++i) {
    const BnbCase& c = fixtures[i];
    CAPTURE(c.name());
    const TensorInfo& packed = c.tensor("packed");
    const QuantState s = read_bnb_quant_state(
        [&](const std::string& name) {
          return c.file->find(name == "packed" ? "packed" : "state." + name.substr(7));
        },
        "packed");
    check_parts(got[i], c.double_quant(),
                std::vector<uint8_t>(packed.data, packed.data + packed.nbytes), s);
  }
}

// For each input dtype and bad value (NaN, -inf): a rows x cols weight holding it at `bad_at` and
// +inf at the later `inf_at`, quantized between two good weights (the bad one is found while they
// are in flight), fails with the CPU's error, which names the tensor and the element. Then the
// quantizer works again.
inline void check_non_finite_like_cpu(const QuantizeOnGpu& gpu, int64_t rows, int64_t cols,
                                      int64_t bad_at, int64_t inf_at) {
  std::mt19937 rng(9);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      CAPTURE(dtype_name(dtype));
      std::vector<float> v = random_floats(rng, size_t(rows * cols), 0.02f);
      v[size_t(bad_at)] = bad;
      v[size_t(inf_at)] = std::numeric_limits<float>::infinity();
      Input in("model.layers.3.mlp.up_proj.weight", dtype, rows, cols, v);
      std::string cpu, on_gpu;
      try {
        quantize_4bit(in.w, QuantType::NF4, 64, true);
      } catch (const Error& e) {
        cpu = e.what();
      }
      Input good("good", dtype, 8, 64, random_floats(rng, 8 * 64, 0.02f));
      try {
        gpu({{good.w, {QuantType::NF4, 64, true}},
             {in.w, {QuantType::NF4, 64, true}},
             {good.w, {QuantType::FP4, 64, false}}});
      } catch (const Error& e) {
        on_gpu = e.what();
      }
      CHECK(cpu.find("model.layers.3.mlp.up_proj.weight") != std::string::npos);
      CHECK(cpu.find("element " + std::to_string(bad_at)) != std::string::npos);
      CHECK(on_gpu == cpu);
    }
  }
  Input good("after", DType::BF16, 8, 64, random_floats(rng, 8 * 64, 0.02f));
  check_against_cpu(gpu, {{good.w, {QuantType::NF4, 64, true}}});
}

// Random 16-bit weights whose quantizable matrices the backend is to quantize.
class BackendQuantizes final : public WeightSource {
 public:
  BackendQuantizes(uint64_t seed, QuantSpec spec) : dense_(seed, DType::BF16), spec_(spec) {}
  bool has(const std::string& name) const override { return dense_.has(name); }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override {
    HostWeight w = dense_.get(name, rows, cols, quantizable);
    w.compute = ComputeDType::BF16;
    if (quantizable) w.quantize_to = spec_;
    return w;
  }

 private:
  RandomWeights dense_;
  QuantSpec spec_;
};

// A tiny model whose weights `host_side` gets quantized on the host (NIBBLE_QUANTIZE_ON=cpu) and
// `gpu_side` quantizes itself: the same weight memory and the very same logits after a prompt and,
// with `decode_step`, after one more token (the replayed graph).
inline void check_same_logits(Backend& host_side, Backend& gpu_side, QuantSpec spec,
                              bool decode_step) {
  BackendQuantizes weights(11, spec);
  const ModelConfig c = tiny_config();
  ModelOptions options;
  options.context = 32;
  options.max_batch = 8;
  options.all_logits = true;
  setenv("NIBBLE_QUANTIZE_ON", "cpu", 1);
  Model on_host(host_side, c, weights, options);
  unsetenv("NIBBLE_QUANTIZE_ON");
  Model on_gpu(gpu_side, c, weights, options);
  CHECK(on_gpu.weight_bytes_per_token() == on_host.weight_bytes_per_token());
  CHECK(host_side.memory().weights == gpu_side.memory().weights);
  const std::vector<int> ids = {3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46};
  on_host.forward(ids, 0, true);
  on_gpu.forward(ids, 0, true);
  std::vector<float> want = on_host.logits(), got = on_gpu.logits();
  REQUIRE(got.size() == want.size());
  CHECK(first_difference(got.data(), want.data(), got.size() * 4) == -1);
  CHECK(on_gpu.pick() == on_host.pick());
  if (!decode_step) return;
  const int next = on_host.pick();
  on_host.forward(std::span(&next, 1), int(ids.size()));
  on_gpu.forward(std::span(&next, 1), int(ids.size()));
  want = on_host.logits();
  got = on_gpu.logits();
  CHECK(first_difference(got.data(), want.data(), got.size() * 4) == -1);
}

// A NaN in a weight the backend quantizes, reported when the uploads complete.
inline void check_upload_reports_non_finite(Backend& gpu) {
  std::vector<float> v(64 * 64, 0.01f);
  v[77] = std::numeric_limits<float>::quiet_NaN();
  Input in("model.layers.0.self_attn.q_proj.weight", DType::BF16, 64, 64, v);
  gpu.upload_quantized(in.w, {QuantType::FP4, 64, false});
  CHECK_THROWS_WITH_AS(gpu.finish_uploads(),
                       "tensor model.layers.0.self_attn.q_proj.weight has a non-finite value (NaN) "
                       "at element 77; it cannot be quantized",
                       Error);
}

}  // namespace nibble::test
