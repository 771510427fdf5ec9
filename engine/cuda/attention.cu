// Causal attention over the F16 KV cache (GQA, optional sliding window), split over the keys:
// block (head, query row, split) scores one chunk of keys and writes its softmax partial (max,
// sum, unnormalized output), and the last block of a (row, head) to finish merges them (`counts`:
// one per (row, head), zero between launches; a kernel of its own merged them before, one launch
// more per decode layer: H100 tg128 7B -5 %). The grid is sized for the most keys a query may
// see, so a captured decode graph stays valid as the sequence grows; splits past the query's
// position exit at once. Decode (one query) uses short chunks, so that even a
// short context spreads over many blocks; a prompt has parallelism enough in its queries.
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace nibble::cuda {
namespace {

constexpr int kThreads = 128, kWarps = kThreads / 32;
constexpr int kMaxHeadDim = 256;
constexpr int kMaxChunk = 256;

int chunk_size(int64_t rows) {
  return rows == 1 ? 64 : kMaxChunk;
}

int64_t split_count(int64_t rows, const AttentionShape& shape, int64_t max_keys) {
  const int64_t keys =
      shape.sliding_window > 0 ? std::min<int64_t>(max_keys, shape.sliding_window) : max_keys;
  return std::max<int64_t>(1, (keys + chunk_size(rows) - 1) / chunk_size(rows));
}

struct Range {
  int64_t first, pos;  // the query at `pos` sees keys [first, pos]
};
__device__ __forceinline__ Range key_range(const AttentionShape& s, StepPtr step, int64_t row) {
  const int64_t pos = step[0] + row;
  const int64_t first = s.sliding_window > 0 ? max(int64_t(0), pos - s.sliding_window + 1) : 0;
  return {first, pos};
}

// Merges the partials of the splits [0, live) of query `row`, head h into the output (and its
// operands), one thread per output dimension. The partials come from other blocks: read past
// the L1 cache.
__device__ __forceinline__ void merge(float* out, int64_t q_cols, const AttentionShape& s,
                                      const float* parts, int live, int64_t row, int h,
                                      uint16_t* operands) {
  const int hd = s.head_dim;
  float m = -INFINITY;
  for (int i = 0; i < live; ++i) m = fmaxf(m, __ldcg(parts + i * (hd + 2)));
  for (int d = threadIdx.x; d < hd; d += blockDim.x) {
    float l = 0, o = 0;
    for (int i = 0; i < live; ++i) {
      const float* p = parts + i * (hd + 2);
      const float w = expf(__ldcg(p) - m);
      l += __ldcg(p + 1) * w;
      o += __ldcg(p + 2 + d) * w;
    }
    out[row * q_cols + h * hd + d] = o / l;
    if (operands) operands[row * q_cols + h * hd + d] = operand_bits(s.compute, o / l);
  }
}

__global__ void __launch_bounds__(kThreads)
    attention_split(float* out, const float* q, int64_t q_cols, const __half* k_cache,
                    const __half* v_cache, int64_t kv_cols, const AttentionShape s, float* scratch,
                    unsigned* counts, int splits, int chunk, StepPtr step, uint16_t* operands) {
  allow_dependents();
  wait_for_inputs();
  __shared__ float qs[kMaxHeadDim];
  __shared__ float scores[kMaxChunk];
  const int h = blockIdx.x, split = blockIdx.z, hd = s.head_dim;
  const int64_t row = blockIdx.y;
  const int kvh = h / (s.n_heads / s.n_kv_heads);
  const Range range = key_range(s, step, row);
  const int64_t begin = range.first + int64_t(split) * chunk;
  const int64_t end = min(range.pos + 1, begin + chunk);
  float* parts = scratch + (row * s.n_heads + h) * splits * (hd + 2);
  float* part = parts + split * (hd + 2);
  if (begin >= end) return;  // past the query: not one of the live splits
  const int n = int(end - begin);
  for (int d = threadIdx.x; d < hd; d += kThreads) qs[d] = q[row * q_cols + h * hd + d];
  __syncthreads();

  // Scores: one warp per key, lanes over the head dimension.
  const float scale = 1.0f / sqrtf(float(hd));
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
#pragma unroll 4  // several keys' loads in flight before their reductions
  for (int j = warp; j < n; j += kWarps) {
    const __half* key = k_cache + (begin + j) * kv_cols + int64_t(kvh) * hd;
    float dot = 0;
    for (int d = lane; d < hd; d += 32) dot += qs[d] * __half2float(key[d]);
    dot = warp_sum(dot);
    if (lane == 0) scores[j] = dot * scale;
  }
  __syncthreads();

  float m = -INFINITY;
  for (int j = threadIdx.x; j < n; j += kThreads) m = fmaxf(m, scores[j]);
  m = block_reduce<true>(m);
  float l = 0;
  for (int j = threadIdx.x; j < n; j += kThreads) {
    const float p = expf(scores[j] - m);
    scores[j] = p;
    l += p;
  }
  l = block_reduce<false>(l);  // also orders the writes to `scores` before the reads below

  for (int d = threadIdx.x; d < hd; d += kThreads) {
    const __half* value = v_cache + begin * kv_cols + int64_t(kvh) * hd + d;
    float o = 0;
#pragma unroll 8
    for (int j = 0; j < n; ++j) o += scores[j] * __half2float(value[j * kv_cols]);
    part[2 + d] = o;
  }
  if (threadIdx.x == 0) part[0] = m, part[1] = l;

  // Every writer fences its partial before the count; the last live split merges.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  unsigned* count = counts + row * s.n_heads + h;
  const int live = int((range.pos - range.first) / chunk) + 1;
  if (threadIdx.x == 0) last = atomicAdd(count, 1u) == unsigned(live - 1);
  __syncthreads();
  if (!last) return;
  merge(out, q_cols, s, parts, live, row, h, operands);
  if (threadIdx.x == 0) *count = 0;  // for the next launch
}

}  // namespace

int64_t attention_scratch_floats(int64_t rows, const AttentionShape& shape, int64_t max_keys) {
  return rows * shape.n_heads * split_count(rows, shape, max_keys) * (shape.head_dim + 2);
}

cudaError_t launch_attention(cudaStream_t s, float* out, const float* q, int64_t rows,
                             int64_t q_cols, const uint16_t* k_cache, const uint16_t* v_cache,
                             int64_t kv_cols, const AttentionShape& shape, int64_t max_keys,
                             float* scratch, unsigned* counts, StepPtr step, uint16_t* operands) {
  if (shape.head_dim > kMaxHeadDim || shape.n_kv_heads <= 0 ||
      shape.n_heads % shape.n_kv_heads != 0)
    return cudaErrorInvalidValue;
  const int splits = int(split_count(rows, shape, max_keys));
  const dim3 grid(unsigned(shape.n_heads), unsigned(rows), unsigned(splits));
  return launch(attention_split, grid, kThreads, s, out, q, q_cols,
                reinterpret_cast<const __half*>(k_cache), reinterpret_cast<const __half*>(v_cache),
                kv_cols, shape, scratch, counts, splits, chunk_size(rows), step, operands);
}

}  // namespace nibble::cuda
