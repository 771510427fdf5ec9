#include "engine/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <thread>

#include "engine/error.h"
#include "engine/sampler.h"

namespace nibble {

CpuBackend::CpuBackend(int threads) : pool_(threads) {}

std::string CpuBackend::device_name() const {
  return "CPU (" + std::to_string(pool_.size()) + " threads)";
}

CpuBackend::Buffer& CpuBackend::buffer(Tensor t) {
  return buffers_.at(t.buffer - 1);
}

float* CpuBackend::f32(Tensor t) {
  return reinterpret_cast<float*>(buffer(t).bytes.data()) + t.row_offset * t.cols;
}
int32_t* CpuBackend::i32(Tensor t) {
  return reinterpret_cast<int32_t*>(buffer(t).bytes.data()) + t.row_offset * t.cols;
}

Tensor CpuBackend::alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) {
  const size_t bytes = size_t(rows * cols) * dtype_size(dtype);
  Buffer b;
  b.bytes.assign(bytes, 0);
  buffers_.push_back(std::move(b));
  (usage == Usage::Weights   ? memory_.weights
   : usage == Usage::KvCache ? memory_.kv_cache
                             : memory_.activations) += bytes;
  return Tensor{uint32_t(buffers_.size()), dtype, rows, cols, 0};
}

Tensor CpuBackend::alloc_kv(int64_t rows, int64_t cols) {
  return alloc(kv_dtype(), rows, cols, Usage::KvCache);
}

Tensor CpuBackend::upload_weight(const HostWeight& w) {
  Buffer b;
  b.weight = w;
  buffers_.push_back(std::move(b));
  memory_.weights += stored_bytes(w);
  return Tensor{uint32_t(buffers_.size()), w.dtype, w.rows, w.cols, 0};
}

double CpuBackend::measure_bandwidth() {
  const size_t bytes = size_t(256) << 20;
  std::vector<uint8_t> src(bytes, 1), dst(bytes, 0);
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    pool_.parallel_for(int64_t(bytes >> 20), [&](int64_t begin, int64_t end) {
      std::memcpy(dst.data() + (begin << 20), src.data() + (begin << 20),
                  size_t(end - begin) << 20);
    });
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, 2.0 * double(bytes) / s / 1e9);  // read + write, as the GPU figure
  }
  return best;
}

void CpuBackend::write(Tensor dst, const void* src) {
  std::memcpy(buffer(dst).bytes.data() + size_t(dst.row_offset * dst.cols) * dtype_size(dst.dtype),
              src, size_t(dst.numel()) * dtype_size(dst.dtype));
}

void CpuBackend::read(Tensor src, void* dst) {
  std::memcpy(dst,
              buffer(src).bytes.data() + size_t(src.row_offset * src.cols) * dtype_size(src.dtype),
              size_t(src.numel()) * dtype_size(src.dtype));
}

void CpuBackend::begin_step(const StepInfo& step) {
  step_ = step;
  times_.clear();
}

void CpuBackend::end_step() {
  last_times_ = times_;
}

void CpuBackend::weight_row(const HostWeight& w, int64_t row, float* out, bool round) const {
  const int64_t n = w.cols, first = row * w.cols;
  switch (w.dtype) {
    case DType::F32:
      std::memcpy(out, w.data + first * 4, size_t(n) * 4);
      break;
    case DType::F16: {
      const auto* p = reinterpret_cast<const uint16_t*>(w.data) + first;
      for (int64_t i = 0; i < n; ++i) out[i] = f16_to_f32(p[i]);
      break;
    }
    case DType::BF16: {
      const auto* p = reinterpret_cast<const uint16_t*>(w.data) + first;
      for (int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(p[i]);
      break;
    }
    case DType::NF4:
    case DType::FP4:
      dequantize(w.data, *w.quant, first, n, out, round ? w.compute : ComputeDType::F32);
      break;
    default:
      fail("weight " + w.name + " has an unsupported dtype");
  }
}

void CpuBackend::embed(Tensor out, Tensor table, Tensor ids) {
  const HostWeight& w = buffer(table).weight;
  const int32_t* id = i32(ids);
  float* o = f32(out);
  for (int64_t r = 0; r < out.rows; ++r) weight_row(w, id[r], o + r * out.cols);
}

void CpuBackend::rms_norm(Tensor out, Tensor x, Tensor weight, float eps) {
  const HostWeight& w = buffer(weight).weight;
  const int64_t n = x.cols;
  thread_local std::vector<float> g;
  g.resize(size_t(n));
  weight_row(w, 0, g.data());
  const float* in = f32(x);
  float* o = f32(out);
  for (int64_t r = 0; r < x.rows; ++r) {
    const float* xr = in + r * n;
    float ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += xr[i] * xr[i];
    const float scale = 1.0f / std::sqrt(ss / float(n) + eps);
    for (int64_t i = 0; i < n; ++i) o[r * n + i] = g[size_t(i)] * (xr[i] * scale);
  }
}

void CpuBackend::matmul(Tensor out, Tensor x, Tensor wt) {
  const HostWeight& w = buffer(wt).weight;
  if (x.cols != w.cols || out.cols != w.rows || out.rows != x.rows)
    fail("matmul shape mismatch for " + w.name);
  const int64_t n = x.rows, k = w.cols;
  const float* in = f32(x);
  if (w.quantized() && w.compute != ComputeDType::F32) {
    x_rounded_.assign(in, in + n * k);
    for (float& v : x_rounded_) v = round_to(w.compute, v);
    in = x_rounded_.data();
  }
  // The operands, as bitsandbytes has them: x rounded to the compute dtype and the weight
  // dequantized to it for a matmul, but for one row (its GEMV) the weight stays float32.
  // Output rows are computed kRows at a time: their sums are independent, so the CPU overlaps
  // them, while each stays the same float32 sum in the same order as one row alone.
  static constexpr int64_t kRows = 4;
  // One captured reference: std::function then holds the lambda without allocating per call.
  const struct {
    const CpuBackend* self;
    const HostWeight& w;
    const float* in;
    float* out;
    int64_t n, k;
  } job{this, w, in, f32(out), n, k};
  pool_.parallel_for(w.rows, [&job](int64_t begin, int64_t end) {
    const int64_t k = job.k, m = job.w.rows;
    thread_local std::vector<float> rows;
    rows.resize(size_t(kRows * k));
    for (int64_t j = begin; j < end; j += kRows) {
      const int64_t count = std::min(kRows, end - j);
      for (int64_t t = 0; t < kRows; ++t) {
        float* row = rows.data() + t * k;
        if (t < count)
          job.self->weight_row(job.w, j + t, row, job.n > 1);
        else
          std::fill(row, row + k, 0.0f);
      }
      const float* w_rows = rows.data();
      for (int64_t r = 0; r < job.n; ++r) {
        const float* xr = job.in + r * k;
        float acc[kRows] = {};
        for (int64_t i = 0; i < k; ++i)
          for (int64_t t = 0; t < kRows; ++t) acc[t] += xr[i] * w_rows[t * k + i];
        for (int64_t t = 0; t < count; ++t) job.out[r * m + j + t] = acc[t];
      }
    }
  });
}

void CpuBackend::rope(Tensor x, int n_heads, int head_dim, Tensor inv_freq) {
  const float* inv = f32(inv_freq);
  const int half = head_dim / 2;
  float* data = f32(x);
  for (int64_t r = 0; r < x.rows; ++r) {
    const float pos = float(step_.pos0 + r);
    for (int h = 0; h < n_heads; ++h) {
      float* v = data + r * x.cols + h * head_dim;
      for (int i = 0; i < half; ++i) {
        const float angle = pos * inv[i];
        const float c = std::cos(angle), s = std::sin(angle);
        const float a = v[i], b = v[i + half];
        v[i] = a * c - b * s;
        v[i + half] = b * c + a * s;
      }
    }
  }
}

void CpuBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v) {
  const size_t bytes = size_t(k.numel()) * 4;
  std::memcpy(f32(k_cache.slice_rows(step_.pos0, k.rows)), f32(k), bytes);
  std::memcpy(f32(v_cache.slice_rows(step_.pos0, v.rows)), f32(v), bytes);
}

void CpuBackend::attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                           const AttentionShape& s) {
  const int group = s.n_heads / s.n_kv_heads, hd = s.head_dim;
  const float scale = 1.0f / std::sqrt(float(hd));
  const float *qd = f32(q), *kd = f32(k_cache), *vd = f32(v_cache);
  float* od = f32(out);
  const int64_t kv_cols = k_cache.cols;
  pool_.parallel_for(q.rows * s.n_heads, [&](int64_t begin, int64_t end) {
    thread_local std::vector<float> scores;
    for (int64_t item = begin; item < end; ++item) {
      const int64_t r = item / s.n_heads;
      const int h = int(item % s.n_heads), kvh = h / group;
      const int64_t pos = step_.pos0 + r;
      const int64_t first =
          s.sliding_window > 0 ? std::max<int64_t>(0, pos - s.sliding_window + 1) : 0;
      const float* qv = qd + r * q.cols + h * hd;
      scores.resize(size_t(pos - first + 1));
      float max_score = -std::numeric_limits<float>::infinity();
      for (int64_t j = first; j <= pos; ++j) {
        const float* kv = kd + j * kv_cols + kvh * hd;
        float dot = 0;
        for (int i = 0; i < hd; ++i) dot += qv[i] * kv[i];
        scores[size_t(j - first)] = dot * scale;
        max_score = std::max(max_score, dot * scale);
      }
      float sum = 0;
      for (float& sc : scores) sum += (sc = std::exp(sc - max_score));
      float* o = od + r * out.cols + h * hd;
      std::fill(o, o + hd, 0.0f);
      for (int64_t j = first; j <= pos; ++j) {
        const float p = scores[size_t(j - first)] / sum;
        const float* vv = vd + j * kv_cols + kvh * hd;
        for (int i = 0; i < hd; ++i) o[i] += p * vv[i];
      }
    }
  });
}

void CpuBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  const float *g = f32(gate), *u = f32(up);
  float* o = f32(out);
  for (int64_t i = 0; i < out.numel(); ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

void CpuBackend::add(Tensor x, Tensor y) {
  float* a = f32(x);
  const float* b = f32(y);
  for (int64_t i = 0; i < x.numel(); ++i) a[i] += b[i];
}

void CpuBackend::argmax(Tensor ids, Tensor logits) {
  const float* l = f32(logits);
  int32_t* o = i32(ids);
  for (int64_t r = 0; r < logits.rows; ++r) {
    const float* row = l + r * logits.cols;
    o[r] = int32_t(std::max_element(row, row + logits.cols) - row);
  }
}

void CpuBackend::sample(Tensor ids, Tensor logits, const SamplerConfig& config) {
  if (logits.rows != 1 || ids.numel() != 1) fail("cpu sample: one row of logits, one id");
  i32(ids)[0] = draw_token({f32(logits), size_t(logits.cols)}, config, step_.u, sample_scratch_);
}

void CpuBackend::phase_begin(int, Phase) {
  if (profiling_) phase_start_ = std::chrono::steady_clock::now();
}

void CpuBackend::phase_end(int layer, Phase phase) {
  if (!profiling_) return;
  const auto now = std::chrono::steady_clock::now();
  times_.push_back(
      {layer, phase, std::chrono::duration<double, std::milli>(now - phase_start_).count()});
}

}  // namespace nibble
