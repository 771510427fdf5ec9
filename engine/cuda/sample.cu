// ids[0] = the token that the step's draw u picks from one row of logits: engine/sampler.h
// draw_token on the device, as shaders/sample.comp computes it on Vulkan (the same search and
// walk; see there): one block finds each cut as the largest weight bit pattern whose count or
// kept sum still reaches its target, kWays - 1 cuts tried per pass, then walks the kept tokens
// in vocabulary order to where their running sum passes u times their sum.
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace nibble::cuda {
namespace {

constexpr unsigned kThreads = 512;
constexpr unsigned kWays = 8;
constexpr unsigned kBatch = 8;  // loads in flight per thread
constexpr unsigned kChunks = 32, kPerChunk = kThreads / kChunks;

struct SampleArgs {
  int32_t* ids;
  const float* logits;
  const int32_t* step;  // {pos0, n_tokens, u's bits}
  unsigned cols;
  float inverse_temperature, top_p, min_p;
  unsigned top_k;
};

__device__ float weight_of(const SampleArgs& a, float logit, float max_logit) {
  return expf(fminf((logit - max_logit) * a.inverse_temperature, 0.0f));
}

// Sums each thread's v[j] over the block into partial[j][0].
__device__ void reduce(float (&partial)[kWays][kThreads], const float (&v)[kWays]) {
  const unsigned t = threadIdx.x;
  for (unsigned j = 0; j < kWays; ++j) partial[j][t] = v[j];
  __syncthreads();
  for (unsigned s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s)
      for (unsigned j = 0; j < kWays; ++j) partial[j][t] += partial[j][t + s];
    __syncthreads();
  }
}

// The largest weight c >= floor (as bits) with count(w >= c) >= target (by_count) or
// sum(w >= c) >= target; floor itself satisfies it.
__device__ unsigned find_cut(const SampleArgs& a, float (&partial)[kWays][kThreads], unsigned floor,
                             bool by_count, float target, float max_logit) {
  unsigned lo = floor, hi = __float_as_uint(1.0f) + 1;  // it holds at lo, not at hi
  while (hi - lo > 1) {
    const unsigned step = (hi - lo + kWays - 1) / kWays;
    float stat[kWays] = {};
    for (unsigned i = threadIdx.x; i < a.cols; i += kBatch * kThreads) {
      float l[kBatch];
      for (unsigned b = 0; b < kBatch; ++b)
        l[b] = i + b * kThreads < a.cols ? a.logits[i + b * kThreads] : 0.0f;
      for (unsigned b = 0; b < kBatch; ++b) {
        const float w = i + b * kThreads < a.cols ? weight_of(a, l[b], max_logit) : 0.0f;
        const unsigned bits = __float_as_uint(w);
        for (unsigned j = 1; j < kWays; ++j)
          if (bits >= lo + j * step) stat[j] += by_count ? 1.0f : w;
      }
    }
    reduce(partial, stat);
    unsigned next_lo = lo, next_hi = hi;
    for (unsigned j = 1; j < kWays && lo + j * step < hi; ++j) {
      if (partial[j][0] >= target) {
        next_lo = lo + j * step;
      } else {
        next_hi = lo + j * step;
        break;
      }
    }
    __syncthreads();  // partial is written again
    lo = next_lo;
    hi = next_hi;
  }
  return lo;
}

__global__ void __launch_bounds__(kThreads) sample_kernel(const SampleArgs a) {
  allow_dependents();
  wait_for_inputs();
  __shared__ float partial[kWays][kThreads];
  const unsigned t = threadIdx.x;
  float m = -INFINITY;
  for (unsigned i = t; i < a.cols; i += kThreads) m = fmaxf(m, a.logits[i]);
  partial[0][t] = m;
  __syncthreads();
  for (unsigned s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s) partial[0][t] = fmaxf(partial[0][t], partial[0][t + s]);
    __syncthreads();
  }
  const float max_logit = partial[0][0];
  __syncthreads();

  unsigned cut = 0;  // the kept weights are those >= cut (as bits)
  if (a.top_k > 0 && a.top_k < a.cols)
    cut = find_cut(a, partial, 0, true, float(a.top_k), max_logit);
  if (a.top_p < 1.0f) {
    float v[kWays] = {};
    for (unsigned i = t; i < a.cols; i += kThreads) {
      const float w = weight_of(a, a.logits[i], max_logit);
      if (__float_as_uint(w) >= cut) v[0] += w;
    }
    reduce(partial, v);
    const float target = a.top_p * partial[0][0];
    __syncthreads();
    cut = find_cut(a, partial, cut, false, target, max_logit);
  }
  cut = max(cut, __float_as_uint(a.min_p));

  // Each thread's contiguous range of the vocabulary, its kept sum, and where its interval of
  // the kept sum starts, nondecreasing by construction (two levels, clamped below the next
  // chunk's start) so that exactly one interval holds the draw.
  const unsigned per = (a.cols + kThreads - 1) / kThreads;
  const unsigned begin = min(t * per, a.cols), end = min(begin + per, a.cols);
  float own = 0.0f;
  for (unsigned i = begin; i < end; ++i) {
    const float w = weight_of(a, a.logits[i], max_logit);
    if (__float_as_uint(w) >= cut) own += w;
  }
  partial[0][t] = own;
  __syncthreads();
  if (t < kChunks) {
    float sum = 0.0f;
    for (unsigned k = 0; k < kPerChunk; ++k) sum += partial[0][t * kPerChunk + k];
    partial[2][t] = sum;
  }
  __syncthreads();
  if (t == 0) {
    float at = 0.0f;
    for (unsigned c = 0; c < kChunks; ++c) {
      const float sum = partial[2][c];
      partial[2][c] = at;
      at += sum;
    }
    partial[2][kChunks] = at;
  }
  __syncthreads();
  if (t < kChunks) {
    const float next = partial[2][t + 1];
    float at = partial[2][t];
    for (unsigned k = 0; k < kPerChunk; ++k) {
      partial[1][t * kPerChunk + k] = at;
      at = fminf(at + partial[0][t * kPerChunk + k], next);
    }
  }
  __syncthreads();
  const float total = partial[2][kChunks];
  const float before = partial[1][t], through = t + 1 < kThreads ? partial[1][t + 1] : total;
  const float u = __int_as_float(a.step[2]);
  const float r = fminf(u * total, __uint_as_float(__float_as_uint(total) - 1));
  if (r < before || r >= through) return;
  float run = before;
  unsigned picked = begin;
  for (unsigned i = begin; i < end; ++i) {
    const float w = weight_of(a, a.logits[i], max_logit);
    if (__float_as_uint(w) < cut) continue;
    picked = i;
    run += w;
    if (run > r) break;
  }
  a.ids[0] = int32_t(picked);
}

}  // namespace

cudaError_t launch_sample(cudaStream_t s, int32_t* ids, const float* logits, int64_t cols,
                          StepPtr step, float temperature, int top_k, float top_p, float min_p) {
  const SampleArgs a{ids,
                     logits,
                     step,
                     unsigned(cols),
                     1.0f / temperature,
                     top_p,
                     min_p,
                     unsigned(top_k > 0 ? top_k : 0)};
  return launch(sample_kernel, 1, kThreads, s, a);
}

}  // namespace nibble::cuda
