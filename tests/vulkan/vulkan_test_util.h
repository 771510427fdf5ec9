// Shared by the Vulkan tests: the backend (or a skip when the machine has no Vulkan device at
// all), random inputs and weights of every storage kind, NaN poisoning, and running one op on
// the Vulkan backend and on the CPU reference side by side.
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

inline std::vector<float> random_floats(std::mt19937& rng, size_t n, float scale = 1.0f) {
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Round every value to float16 (the KV cache's type), so CPU and GPU see the same cache values.
inline std::vector<float> f16_rounded(std::vector<float> v) {
  for (float& x : v) x = f16_to_f32(f32_to_f16(x));
  return v;
}

// A random weight that owns its bytes. 4-bit weights get random codes and absmax values
// (positive, realistic scale), double-quantized ones random u8 indices, nested scales and offset.
struct WeightSpec {
  DType dtype = DType::F32;  // F32, F16, BF16, NF4, FP4
  bool double_quant = false;
  ComputeDType compute = ComputeDType::F32;
  int blocksize = 64;
  int nested_blocksize = 4;  // small, so that small test tensors span several nested groups
};

inline HostWeight random_weight(std::mt19937& rng, const std::string& name, int64_t rows,
                                int64_t cols, const WeightSpec& spec, float scale = 0.05f) {
  HostWeight w;
  w.name = name;
  w.dtype = spec.dtype;
  w.rows = rows;
  w.cols = cols;
  w.compute = spec.compute;
  const size_t n = size_t(rows * cols);
  auto bytes = std::make_shared<std::vector<uint8_t>>();
  if (!w.quantized()) {
    const std::vector<float> v = random_floats(rng, n, scale);
    bytes->resize(n * dtype_size(spec.dtype));
    for (size_t i = 0; i < n; ++i) {
      if (spec.dtype == DType::F32) {
        std::memcpy(&(*bytes)[i * 4], &v[i], 4);
      } else {
        const uint16_t h = spec.dtype == DType::F16 ? f32_to_f16(v[i]) : f32_to_bf16(v[i]);
        std::memcpy(&(*bytes)[i * 2], &h, 2);
      }
    }
  } else {
    auto q = std::make_shared<QuantState>();
    q->type = spec.dtype == DType::NF4 ? QuantType::NF4 : QuantType::FP4;
    q->code = quant_code(q->type);
    q->blocksize = spec.blocksize;
    q->shape = {rows, cols};
    const int64_t blocks = q->num_blocks();
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_real_distribution<float> absmax(0.5f * scale, 3.0f * scale);
    bytes->resize((n + 1) / 2);
    for (uint8_t& b : *bytes) b = uint8_t(byte(rng));
    if (spec.double_quant) {
      q->nested = true;
      q->nested_code = dynamic_map_signed();
      q->nested_blocksize = spec.nested_blocksize;
      q->absmax_q.resize(size_t(blocks));
      for (uint8_t& b : q->absmax_q) b = uint8_t(byte(rng));
      q->nested_absmax.resize(size_t((blocks + q->nested_blocksize - 1) / q->nested_blocksize));
      for (float& a : q->nested_absmax) a = absmax(rng);
      q->offset = 2.0f * scale;
    } else {
      q->absmax.resize(size_t(blocks));
      for (float& a : q->absmax) a = absmax(rng);
    }
    w.quant = q;
  }
  w.data = bytes->data();
  w.nbytes = bytes->size();
  w.owner = bytes;
  return w;
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

// Relative L2 error that also fails on any non-finite value in `got`.
inline double checked_error(const std::vector<float>& got, const std::vector<float>& want) {
  for (float v : got)
    if (!std::isfinite(v)) return INFINITY;
  return rel_error(got, want);
}

}  // namespace nibble::test
