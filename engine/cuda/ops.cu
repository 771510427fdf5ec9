// The element-wise and per-row ops of the forward: embedding gather, RMSNorm, RoPE, the F16 KV
// cache store (also fused: RoPE and the store in one launch), SwiGLU, residual add and argmax.
// Each mirrors its CpuBackend counterpart.
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace nibble::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kRowThreads = 1024;  // one block per row: enough loads in flight for long rows

__global__ void embed_kernel(float* out, const WeightArgs table, const int32_t* ids) {
  allow_dependents();
  wait_for_inputs();
  const int64_t r = blockIdx.x, cols = table.cols;
  const int32_t id = ids[r];
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    out[r * cols + i] = (id >= 0 && id < table.rows)
                            ? weight_at(table, table.code, table.nested_code, id * cols + i)
                            : __int_as_float(0x7fc00000);  // NaN: the host validates ids
}

// kOperands: the output also as a product's operands (rounded to C, pairs packed; n even).
template <bool kOperands, ComputeDType C>
__global__ void rms_norm_kernel(float* out, const float* x, const WeightArgs weight, float eps,
                                uint32_t* operands) {
  allow_dependents();
  const int64_t r = blockIdx.x, n = weight.cols;
  // The norm's weight: read by every row, written by no kernel.
  prefetch_lines<true>(weight.data, weight.dtype == DType::F32 ? 4 * n
                                    : is_4bit(weight)          ? n / 2
                                                               : 2 * n);
  wait_for_inputs();
  const float* xr = x + r * n;
  float ss = 0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  ss = block_reduce<false>(ss);
  const float scale = 1.0f / sqrtf(ss / float(n) + eps);
  const auto normed = [&](int64_t i) {
    return weight_at(weight, weight.code, weight.nested_code, i) * (xr[i] * scale);
  };
  if constexpr (kOperands) {
    for (int64_t i = threadIdx.x; i < n / 2; i += blockDim.x) {
      const float lo = normed(2 * i), hi = normed(2 * i + 1);
      out[r * n + 2 * i] = lo;
      out[r * n + 2 * i + 1] = hi;
      operands[r * (n / 2) + i] = pack_operands<C>(lo, hi);
    }
  } else {
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) out[r * n + i] = normed(i);
  }
}

// Rotates the pair (i, i + half) of the head at `v` of the step's row r, as the CPU's rope.
__device__ __forceinline__ void rotate_pair(float* v, int i, int half, int64_t r,
                                            const float* inv_freq, StepPtr step) {
  const float2 rotated = rotated_pair(v[i], v[i + half], float(step[0] + r) * inv_freq[i]);
  v[i] = rotated.x;
  v[i + half] = rotated.y;
}

// One thread per rotated pair (i, i + half) of one head of one row.
__global__ void rope_kernel(float* x, int64_t rows, int64_t cols, int n_heads, int head_dim,
                            const float* inv_freq, StepPtr step) {
  allow_dependents();
  wait_for_inputs();
  const int half = head_dim / 2;
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= rows * n_heads * half) return;
  const int i = int(t % half);
  const int64_t h = (t / half) % n_heads, r = t / (int64_t(half) * n_heads);
  rotate_pair(x + r * cols + h * head_dim, i, half, r, inv_freq, step);
}

// rope_kernel on q's heads and k's, and kv_store_kernel, in one launch: one thread per rotated
// pair of a q or k head of one row; a k pair's thread also stores the pair's k and v values.
__global__ void rope_kv_store_kernel(float* q, float* k, const float* v, __half* k_cache,
                                     __half* v_cache, const RopeKvShape sh, const float* inv_freq,
                                     StepPtr step) {
  allow_dependents();
  wait_for_inputs();
  const int half = sh.head_dim / 2, heads = sh.n_heads + sh.n_kv_heads;
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= sh.rows * heads * half) return;
  const int i = int(t % half), h = int((t / half) % heads);
  const int64_t r = t / (int64_t(half) * heads);
  if (h < sh.n_heads) {
    rotate_pair(q + r * sh.q_cols + h * sh.head_dim, i, half, r, inv_freq, step);
    return;
  }
  const int64_t e = r * sh.kv_cols + (h - sh.n_heads) * sh.head_dim + i;  // k's and v's element
  rotate_pair(k + e - i, i, half, r, inv_freq, step);
  const int64_t at = int64_t(step[0]) * sh.kv_cols + e;  // rows pos0.. of the caches
  k_cache[at] = __float2half_rn(k[e]);
  k_cache[at + half] = __float2half_rn(k[e + half]);
  v_cache[at] = __float2half_rn(v[e]);
  v_cache[at + half] = __float2half_rn(v[e + half]);
}

__global__ void kv_store_kernel(__half* k_cache, __half* v_cache, const float* k, const float* v,
                                int64_t n, int64_t cols, StepPtr step) {
  allow_dependents();
  wait_for_inputs();
  const int64_t t = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (t >= n) return;
  const int64_t at = int64_t(step[0]) * cols + t;  // rows pos0.. of the cache
  k_cache[at] = __float2half_rn(k[t]);
  v_cache[at] = __float2half_rn(v[t]);
}

// With `operands`, the output also as the next product's operands (rounded to `compute`).
__global__ void swiglu_kernel(float* out, const float* gate, const float* up, int64_t n,
                              uint16_t* operands, ComputeDType compute) {
  allow_dependents();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const float v = gate[i] / (1.0f + expf(-gate[i])) * up[i];
  out[i] = v;
  if (operands) operands[i] = operand_bits(compute, v);
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
  allow_dependents();
  wait_for_inputs();
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

// The first index of the largest value, as std::max_element.
__global__ void argmax_kernel(int32_t* ids, const float* logits, int64_t cols) {
  allow_dependents();
  wait_for_inputs();
  const float* row = logits + int64_t(blockIdx.x) * cols;
  float best = -INFINITY;
  int64_t best_i = 0;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    if (row[i] > best) best = row[i], best_i = i;
  __shared__ float values[kRowThreads];
  __shared__ int64_t indices[kRowThreads];
  values[threadIdx.x] = best;
  indices[threadIdx.x] = best_i;
  __syncthreads();
  for (int stride = kRowThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) {
      const float v = values[threadIdx.x + stride];
      const int64_t j = indices[threadIdx.x + stride];
      if (v > values[threadIdx.x] || (v == values[threadIdx.x] && j < indices[threadIdx.x]))
        values[threadIdx.x] = v, indices[threadIdx.x] = j;
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) ids[blockIdx.x] = int32_t(indices[0]);
}

}  // namespace

void set_programmatic_launch(bool on) {
  programmatic_launch = on;
}

cudaError_t launch_embed(cudaStream_t s, float* out, int64_t rows, const WeightArgs& table,
                         const int32_t* ids) {
  return launch(embed_kernel, unsigned(rows), kRowThreads, s, out, table, ids);
}

cudaError_t launch_rms_norm(cudaStream_t s, float* out, const float* x, int64_t rows,
                            const WeightArgs& weight, float eps, uint16_t* operands,
                            ComputeDType compute) {
  uint32_t* words = reinterpret_cast<uint32_t*>(operands);
  if (!operands || compute == ComputeDType::F32)
    return launch(rms_norm_kernel<false, ComputeDType::F32>, unsigned(rows), kRowThreads, s, out, x,
                  weight, eps, words);
  if (weight.cols % 2 != 0) return cudaErrorInvalidValue;
  return compute == ComputeDType::BF16
             ? launch(rms_norm_kernel<true, ComputeDType::BF16>, unsigned(rows), kRowThreads, s,
                      out, x, weight, eps, words)
             : launch(rms_norm_kernel<true, ComputeDType::F16>, unsigned(rows), kRowThreads, s, out,
                      x, weight, eps, words);
}

cudaError_t launch_rope(cudaStream_t s, float* x, int64_t rows, int64_t cols, int n_heads,
                        int head_dim, const float* inv_freq, StepPtr step) {
  const int64_t n = rows * n_heads * (head_dim / 2);
  return launch(rope_kernel, blocks_for(n, kThreads), kThreads, s, x, rows, cols, n_heads, head_dim,
                inv_freq, step);
}

cudaError_t launch_rope_kv_store(cudaStream_t s, float* q, float* k, const float* v,
                                 uint16_t* k_cache, uint16_t* v_cache, const RopeKvShape& shape,
                                 const float* inv_freq, StepPtr step) {
  const int64_t n = shape.rows * (shape.n_heads + shape.n_kv_heads) * (shape.head_dim / 2);
  return launch(rope_kv_store_kernel, blocks_for(n, kThreads), kThreads, s, q, k, v,
                reinterpret_cast<__half*>(k_cache), reinterpret_cast<__half*>(v_cache), shape,
                inv_freq, step);
}

cudaError_t launch_kv_store(cudaStream_t s, uint16_t* k_cache, uint16_t* v_cache, const float* k,
                            const float* v, int64_t rows, int64_t cols, StepPtr step) {
  return launch(kv_store_kernel, blocks_for(rows * cols, kThreads), kThreads, s,
                reinterpret_cast<__half*>(k_cache), reinterpret_cast<__half*>(v_cache), k, v,
                rows * cols, cols, step);
}

cudaError_t launch_swiglu(cudaStream_t s, float* out, const float* gate, const float* up, int64_t n,
                          uint16_t* operands, ComputeDType compute) {
  if (operands && compute == ComputeDType::F32) return cudaErrorInvalidValue;
  return launch(swiglu_kernel, blocks_for(n, kThreads), kThreads, s, out, gate, up, n, operands,
                compute);
}

cudaError_t launch_add(cudaStream_t s, float* x, const float* y, int64_t n) {
  return launch(add_kernel, blocks_for(n, kThreads), kThreads, s, x, y, n);
}

cudaError_t launch_argmax(cudaStream_t s, int32_t* ids, const float* logits, int64_t rows,
                          int64_t cols) {
  return launch(argmax_kernel, unsigned(rows), kRowThreads, s, ids, logits, cols);
}

}  // namespace nibble::cuda
