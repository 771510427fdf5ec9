// Shared by the Vulkan tests: the backend (or a skip when the machine has no Vulkan device at
// all), random weights of every storage kind (from tests/random_model.h's, shared with the CUDA
// tests), NaN poisoning, and running one op on the Vulkan backend and on the CPU reference side
// by side.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <memory>
#include <random>
#include <vector>

#include "engine/cpu/cpu_backend.h"
#include "engine/error.h"
#include "engine/vulkan/vk_device.h"
#include "engine/vulkan/vulkan_backend.h"
#include "tests/random_model.h"

namespace nibble::test {

// The best Vulkan device, or null (with a doctest MESSAGE) when there is no loader or no usable
// device. CI has lavapipe, so there these tests always run. Any other failure fails the test.
inline std::unique_ptr<Backend> vulkan_or_skip() {
  if (!vk::loader_present()) {
    MESSAGE("SKIPPED: no Vulkan loader (libvulkan.so.1) on this machine");
    return nullptr;
  }
  for (const vk::DeviceInfo& d : vk::list_devices())
    if (d.unusable.empty()) return make_vulkan_backend(-1);
  MESSAGE("SKIPPED: no usable Vulkan device");
  return nullptr;
}

// A random weight of any storage kind that owns its bytes: 16/32-bit ones normal with std
// `scale`, 4-bit ones test::random_4bit's (absmax up to `scale`).
struct WeightSpec {
  DType dtype = DType::F32;  // F32, F16, BF16, NF4, FP4
  bool double_quant = false;
  ComputeDType compute = ComputeDType::F32;
  int blocksize = 64;
  int nested_blocksize = 4;  // small, so that small test tensors span several nested groups
};

inline HostWeight random_weight(std::mt19937& rng, const std::string& name, int64_t rows,
                                int64_t cols, const WeightSpec& spec, float scale = 0.05f) {
  if (spec.dtype != DType::NF4 && spec.dtype != DType::FP4)
    return dense_weight(name, spec.dtype, rows, cols,
                        random_floats(rng, size_t(rows * cols), scale));
  const Quant4 q{spec.dtype == DType::NF4 ? QuantType::NF4 : QuantType::FP4, spec.blocksize,
                 spec.double_quant, spec.compute, spec.nested_blocksize};
  return random_4bit(rng, name, q, rows, cols, scale);
}

// Runs `op` on the CPU reference and on the Vulkan backend; each gets its own tensors.
struct Pair {
  CpuBackend cpu{2};
  std::unique_ptr<Backend> gpu;
  Backend* both[2] = {&cpu, nullptr};

  explicit Pair(std::unique_ptr<Backend> g) : gpu(std::move(g)) { both[1] = gpu.get(); }
};

// Fills a tensor with NaN so that an output the op forgets to write cannot pass.
inline void poison(Backend& b, Tensor t) {
  const std::vector<float> nan(size_t(t.numel()), std::numeric_limits<float>::quiet_NaN());
  if (t.dtype == DType::F32) b.write(t, nan.data());
  if (t.dtype == DType::I32) {
    const std::vector<int32_t> bad(size_t(t.numel()), -7);
    b.write(t, bad.data());
  }
}

inline std::vector<float> read_f32(Backend& b, Tensor t) {
  std::vector<float> v(size_t(t.numel()));
  if (t.dtype == DType::F32) {
    b.read(t, v.data());
  } else {  // a float16 KV cache
    std::vector<uint16_t> h(v.size());
    b.read(t, h.data());
    for (size_t i = 0; i < v.size(); ++i) v[i] = f16_to_f32(h[i]);
  }
  return v;
}

// One output per backend of a Pair.
struct Io {
  std::vector<float> out[2];  // cpu, vulkan
};

// out = x · wᵀ on `b` for x [rows, w.cols], the output poisoned first.
inline std::vector<float> matmul_on(Backend& b, const HostWeight& hw, const std::vector<float>& x,
                                    int64_t rows) {
  const Tensor w = b.upload_weight(hw);
  const Tensor xt = b.alloc(DType::F32, rows, hw.cols, Usage::Activations);
  const Tensor out = b.alloc(DType::F32, rows, hw.rows, Usage::Activations);
  b.write(xt, x.data());
  poison(b, out);
  b.begin_step({0, int(rows)});
  b.matmul(out, xt, w);
  b.end_step();
  return read_f32(b, out);
}

// One attention step on `b`: `rows` queries at positions pos0.. over a KV cache whose first pos0
// rows an earlier step stored. k and v hold all pos0 + rows rows, q the step's; the output is
// poisoned first. Returns the output and the value cache's rows.
struct AttentionCase {
  int heads, kv_heads, head_dim, pos0, rows, window;
  ComputeDType compute = ComputeDType::F32;  // AttentionShape::compute
};
struct AttentionResult {
  std::vector<float> out, v_cache;
};
inline AttentionResult attention_on(Backend& b, const AttentionCase& c, const std::vector<float>& q,
                                    const std::vector<float>& k, const std::vector<float>& v) {
  const int64_t q_cols = int64_t(c.heads) * c.head_dim, kv_cols = int64_t(c.kv_heads) * c.head_dim;
  const int total = c.pos0 + c.rows;
  const Tensor kc = b.alloc_kv(total + 3, kv_cols), vc = b.alloc_kv(total + 3, kv_cols);
  const Tensor kt = b.alloc(DType::F32, total, kv_cols, Usage::Activations);
  const Tensor vt = b.alloc(DType::F32, total, kv_cols, Usage::Activations);
  const Tensor qt = b.alloc(DType::F32, c.rows, q_cols, Usage::Activations);
  const Tensor out = b.alloc(DType::F32, c.rows, q_cols, Usage::Activations);
  b.write(kt, k.data());
  b.write(vt, v.data());
  b.write(qt, q.data());
  poison(b, out);
  if (c.pos0 > 0) {  // the cached prefix, as an earlier step stored it
    b.begin_step({0, c.pos0});
    b.kv_store(kc, vc, kt.slice_rows(0, c.pos0), vt.slice_rows(0, c.pos0));
    b.end_step();
  }
  b.begin_step({c.pos0, c.rows});
  b.kv_store(kc, vc, kt.slice_rows(c.pos0, c.rows), vt.slice_rows(c.pos0, c.rows));
  b.attention(out, qt, kc, vc, {c.heads, c.kv_heads, c.head_dim, c.window, c.compute});
  b.end_step();
  return {read_f32(b, out), read_f32(b, vc.slice_rows(0, total))};
}

// Relative L2 error that also fails on any non-finite value in `got`.
inline double checked_error(const std::vector<float>& got, const std::vector<float>& want) {
  for (float v : got)
    if (!std::isfinite(v)) return INFINITY;
  return rel_error(got, want);
}

}  // namespace nibble::test
