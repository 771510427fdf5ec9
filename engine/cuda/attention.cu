// Causal attention over the F16 KV cache (GQA, optional sliding window), split over the keys:
// block (head, query row, split) scores one chunk of keys and writes its softmax partial (max,
// sum, unnormalized output), and the last block of a (row, head) to finish merges them (`counts`:
// one per (row, head), zero between launches; a kernel of its own merged them before, one launch
// more per decode layer: H100 tg128 7B -5 %). The grid is sized for the most keys a query may
// see, so a captured decode graph stays valid as the sequence grows; splits past the query's
// position exit at once. Decode (one query) uses short chunks, so that even a
// short context spreads over many blocks, growing with the query's keys (decode_chunk); a prompt
// has parallelism enough in its queries.
// A decode step's attention is a chain of latencies more than work (a 7B layer's reads 64 KB at
// 128 positions), so a block asks for its keys and values before it waits for the kernel
// before, and keeps 8 keys' 16-byte loads in flight per thread (one warp per key, 2-byte loads,
// and a value sum walking the keys one by one cost H100 7B tg128 10 %, TinyLlama 24 %).
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace nibble::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kMaxHeadDim = 256;
constexpr int kPromptChunk = 256;  // keys per split of a prompt's query
constexpr int kDecodeChunkMin = 64, kDecodeChunkMax = 1024;

// Keys per split of a decode query that sees `keys` keys: a power of two near keys / 16, from 64
// to 1 024, so that a long context takes about 16 splits instead of one per 64 keys, whose
// blocks' fixed costs and merge then outweighed their parallelism (H100 tg128 after 4 096
// tokens with 64 / 256 / 512 keys per split: 7B 250.9 / 284.5 / 247.2 tok/s, TinyLlama 683.8 /
// 943.2 / 928.2; after 512 and 1 024 tokens 64 stays best for the 7B; docs/PERF.md "Decode",
// session 15). The kernel takes it from the step's position, so a replayed graph follows it.
__device__ __forceinline__ int decode_chunk(int64_t keys) {
  int chunk = kDecodeChunkMin;
  while (chunk < kDecodeChunkMax && 32 * int64_t(chunk) <= keys) chunk *= 2;
  return chunk;
}

// Splits in the grid: enough for the shortest chunk over max_keys.
int64_t split_count(int64_t rows, const AttentionShape& shape, int64_t max_keys) {
  const int64_t keys =
      shape.sliding_window > 0 ? std::min<int64_t>(max_keys, shape.sliding_window) : max_keys;
  const int chunk = rows == 1 ? kDecodeChunkMin : kPromptChunk;
  return std::max<int64_t>(1, (keys + chunk - 1) / chunk);
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

// kVec consecutive halves of a cache row as floats (one 16-byte load for 8, 4 bytes for 2).
template <int kVec>
__device__ __forceinline__ void load_halves(const __half* p, float* v) {
  if constexpr (kVec == 8) {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const float2 f = __half22float2(*reinterpret_cast<const __half2*>(&words[i]));
      v[2 * i] = f.x;
      v[2 * i + 1] = f.y;
    }
  } else {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(p));
    v[0] = f.x;
    v[1] = f.y;
  }
}

// A head's dimensions in segments of kVec (8 where the head dimension allows 16-byte loads, else
// 2: head dimensions are even), and the lanes that share one key: the segment count rounded up
// to a power of two, at most a warp (so a key's lanes are one aligned group of a warp), each lane
// taking every `lanes`-th segment.
template <int kVec>
struct KeyLanes {
  int segments, lanes, keys_per_pass, lane, slot;
  __device__ explicit KeyLanes(int hd) : segments(hd / kVec) {
    lanes = 1;
    while (lanes < segments && lanes < 32) lanes *= 2;
    keys_per_pass = kThreads / lanes;
    lane = threadIdx.x % lanes;
    slot = threadIdx.x / lanes;
  }
};
// The newest position's key and value where this block rotated and rounded them itself (the
// fused RoPE): key j of the split reads them from shared memory, as another block may still be
// writing them to the caches.
// kFresh: only the fused RoPE has such a row.
template <bool kFresh>
struct NewRow {
  const __half *k = nullptr, *v = nullptr;
  int j = -1;  // the split's key that is the new position, or -1
  __device__ const __half* row(const __half* fresh, const __half* cache, int64_t begin, int key,
                               int64_t kv_cols, int64_t head) const {
    const __half* at = cache + (begin + key) * kv_cols + head;
    if constexpr (kFresh) return key == j ? fresh : at;
    return at;
  }
};

// Where a query's only live split writes its head's output (and operands) itself.
struct Direct {
  float* out = nullptr;  // null: the block writes its partial
  uint16_t* operands = nullptr;
  ComputeDType compute = ComputeDType::F32;
};

constexpr int kMaxSegmentsPerLane = 4;  // kVec 2 and head dimensions up to 256
constexpr int kKeysInFlight = 8;        // keys per lane whose loads are in flight together

// The block's softmax partial over keys [begin, begin + n) for one query and head, or with
// `direct` (the query's only live split) its output (and operands), as merge would write it: the
// scores
// (lanes of a key group over its segments, kKeysInFlight keys' loads in flight per lane), then
// the value sum (each key group sums its keys for every dimension, 16 bytes of a value row per
// load; the groups meet in shared memory). All loops have block-uniform trip counts, so the
// shuffles and barriers are reached by every thread.
template <int kVec, bool kFresh>
__device__ __forceinline__ void split_partial(float* part, const float* qs, const __half* k_cache,
                                              const __half* v_cache, int64_t kv_cols, int kvh,
                                              int hd, int64_t begin, int n, float* scores,
                                              float* sums, const NewRow<kFresh>& fresh,
                                              const Direct& direct) {
  const KeyLanes<kVec> kl(hd);
  const float scale = 1.0f / sqrtf(float(hd));
  const int64_t head = int64_t(kvh) * hd;
  for (int j0 = 0; j0 < n; j0 += kl.keys_per_pass * kKeysInFlight) {
    float dot[kKeysInFlight] = {};
    for (int g = kl.lane; g < kl.segments; g += kl.lanes) {
      float kv[kKeysInFlight][kVec];
#pragma unroll
      for (int i = 0; i < kKeysInFlight; ++i) {
        const int j = min(j0 + i * kl.keys_per_pass + kl.slot, n - 1);  // past n: not stored
        load_halves<kVec>(fresh.row(fresh.k, k_cache, begin, j, kv_cols, head) + g * kVec, kv[i]);
      }
#pragma unroll
      for (int i = 0; i < kKeysInFlight; ++i)
#pragma unroll
        for (int e = 0; e < kVec; ++e) dot[i] = fmaf(qs[g * kVec + e], kv[i][e], dot[i]);
    }
#pragma unroll
    for (int i = 0; i < kKeysInFlight; ++i) {
      for (int o = kl.lanes / 2; o > 0; o /= 2) dot[i] += __shfl_xor_sync(0xffffffffu, dot[i], o);
      const int j = j0 + i * kl.keys_per_pass + kl.slot;
      if (kl.lane == 0 && j < n) scores[j] = dot[i] * scale;
    }
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

  float acc[kMaxSegmentsPerLane][kVec] = {};
  for (int j0 = kl.slot; j0 < n; j0 += kl.keys_per_pass * kKeysInFlight) {
#pragma unroll
    for (int s = 0; s < kMaxSegmentsPerLane; ++s) {
      const int g = kl.lane + s * kl.lanes;
      if (g >= kl.segments) break;
      float vv[kKeysInFlight][kVec];
#pragma unroll
      for (int i = 0; i < kKeysInFlight; ++i) {
        const int j = min(j0 + i * kl.keys_per_pass, n - 1);
        load_halves<kVec>(fresh.row(fresh.v, v_cache, begin, j, kv_cols, head) + g * kVec, vv[i]);
      }
#pragma unroll
      for (int i = 0; i < kKeysInFlight; ++i) {
        const int j = j0 + i * kl.keys_per_pass;
        const float p = j < n ? scores[j] : 0.0f;
#pragma unroll
        for (int e = 0; e < kVec; ++e) acc[s][e] = fmaf(p, vv[i][e], acc[s][e]);
      }
    }
  }
  // Key group `slot`'s sums at sums[slot * hd + d], then each dimension's total over the groups.
#pragma unroll
  for (int s = 0; s < kMaxSegmentsPerLane; ++s) {
    const int g = kl.lane + s * kl.lanes;
    if (g >= kl.segments) break;
#pragma unroll
    for (int e = 0; e < kVec; ++e) sums[kl.slot * hd + g * kVec + e] = acc[s][e];
  }
  __syncthreads();
  for (int d = threadIdx.x; d < hd; d += kThreads) {
    float o = 0;
    for (int g = 0; g < kl.keys_per_pass; ++g) o += sums[g * hd + d];
    if (!direct.out) {
      part[2 + d] = o;
      continue;
    }
    direct.out[d] = o / l;
    if (direct.operands) direct.operands[d] = operand_bits(direct.compute, o / l);
  }
  if (threadIdx.x == 0 && !direct.out) part[0] = m, part[1] = l;
}

// kRope (one query; decode): q, k and v are the products' rows before RoPE. Every block rotates
// its query head; the blocks whose split holds the new position rotate its key and round key and
// value to float16 in shared memory, and the first query head of each KV head stores them in the
// caches (what launch_rope_kv_store does, without its launch).
template <int kVec, bool kRope>
__global__ void __launch_bounds__(kThreads)
    attention_split(float* out, const float* q, int64_t q_cols, const __half* k_cache,
                    const __half* v_cache, int64_t kv_cols, const AttentionShape s, float* scratch,
                    unsigned* counts, int splits, StepPtr step, uint16_t* operands,
                    const AttentionRope rope) {
  allow_dependents();
  __shared__ float qs[kMaxHeadDim];
  __shared__ float scores[kDecodeChunkMax > kPromptChunk ? kDecodeChunkMax : kPromptChunk];
  // Each key group's value sums: at most (kThreads / lanes) * hd <= kThreads * 8 floats.
  __shared__ float sums[kThreads * 8];
  const int h = blockIdx.x, split = blockIdx.z, hd = s.head_dim;
  const int64_t row = blockIdx.y;
  const int kvh = h / (s.n_heads / s.n_kv_heads);
  // The step state is written before the step's first kernel: it may be read before the wait.
  const Range range = key_range(s, step, row);
  const int chunk = gridDim.y == 1 ? decode_chunk(range.pos - range.first + 1) : kPromptChunk;
  const int64_t begin = range.first + int64_t(split) * chunk;
  const int64_t end = min(range.pos + 1, begin + chunk);
  float* parts = scratch + (row * s.n_heads + h) * splits * (hd + 2);
  if (begin >= end) return;  // past the query: not one of the live splits (writes nothing)
  // The split's keys and values into the L2 cache while the kernel before finishes (it writes
  // the newest rows: not into L1).
  const int row_lines = (2 * hd + 127) / 128 + 1;  // a row's head may straddle one line more
  for (int64_t i = threadIdx.x; i < 2 * row_lines * (end - begin); i += kThreads) {
    const int64_t key = begin + i / (2 * row_lines);
    const int line = int(i % (2 * row_lines));
    const __half* head = (line < row_lines ? k_cache : v_cache) + key * kv_cols + int64_t(kvh) * hd;
    prefetch_line<false>(reinterpret_cast<const char*>(head) +
                         min(128 * (line % row_lines), 2 * hd - 1));
  }
  wait_for_inputs();
  NewRow<kRope> fresh;
  if constexpr (kRope) {
    __shared__ __align__(16) __half new_k[kMaxHeadDim], new_v[kMaxHeadDim];
    const int half = hd / 2;
    const bool holds_new = range.pos < end;  // uniform
    const bool writer = holds_new && h % (s.n_heads / s.n_kv_heads) == 0;
    const float* qh = q + row * q_cols + h * hd;
    const int64_t e = row * kv_cols + int64_t(kvh) * hd, at = range.pos * kv_cols + kvh * hd;
    for (int i = threadIdx.x; i < half; i += kThreads) {
      const float angle = float(range.pos) * rope.inv_freq[i];
      const float2 qr = rotated_pair(qh[i], qh[i + half], angle);
      qs[i] = qr.x;
      qs[i + half] = qr.y;
      if (!holds_new) continue;
      const float2 kr = rotated_pair(rope.k[e + i], rope.k[e + i + half], angle);
      const __half k_lo = __float2half_rn(kr.x), k_hi = __float2half_rn(kr.y);
      const __half v_lo = __float2half_rn(rope.v[e + i]),
                   v_hi = __float2half_rn(rope.v[e + i + half]);
      new_k[i] = k_lo, new_k[i + half] = k_hi, new_v[i] = v_lo, new_v[i + half] = v_hi;
      if (writer) {
        __half* kc = reinterpret_cast<__half*>(rope.k_cache);
        __half* vc = reinterpret_cast<__half*>(rope.v_cache);
        kc[at + i] = k_lo, kc[at + i + half] = k_hi;
        vc[at + i] = v_lo, vc[at + i + half] = v_hi;
      }
    }
    if (holds_new) fresh = {new_k, new_v, int(range.pos - begin)};
  } else {
    for (int d = threadIdx.x; d < hd; d += kThreads) qs[d] = q[row * q_cols + h * hd + d];
  }
  __syncthreads();
  // A query with one live split needs no partials: its block writes the output (no fence, count
  // and merge).
  const int live = int((range.pos - range.first) / chunk) + 1;
  const int64_t at = row * q_cols + h * hd;
  const Direct direct =
      live == 1 ? Direct{out + at, operands ? operands + at : nullptr, s.compute} : Direct{};
  split_partial<kVec, kRope>(parts + split * (hd + 2), qs, k_cache, v_cache, kv_cols, kvh, hd,
                             begin, int(end - begin), scores, sums, fresh, direct);
  if (direct.out) return;

  // Every writer fences its partial before the count; the last live split merges.
  __shared__ bool last;
  __threadfence();
  __syncthreads();
  unsigned* count = counts + row * s.n_heads + h;
  if (threadIdx.x == 0) last = atomicAdd(count, 1u) == unsigned(live - 1);
  __syncthreads();
  if (!last) return;
  merge(out, q_cols, s, parts, live, row, h, operands);
  if (threadIdx.x == 0) *count = 0;  // for the next launch
}

}  // namespace

bool attention_rows_wide(int64_t kv_cols, const AttentionShape& shape) {
  return shape.head_dim % 8 == 0 && kv_cols % 8 == 0;
}

int64_t attention_scratch_floats(int64_t rows, const AttentionShape& shape, int64_t max_keys) {
  return rows * shape.n_heads * split_count(rows, shape, max_keys) * (shape.head_dim + 2);
}

cudaError_t launch_attention(cudaStream_t s, float* out, const float* q, int64_t rows,
                             int64_t q_cols, const uint16_t* k_cache, const uint16_t* v_cache,
                             int64_t kv_cols, const AttentionShape& shape, int64_t max_keys,
                             float* scratch, unsigned* counts, StepPtr step, uint16_t* operands,
                             const AttentionRope* rope) {
  if (shape.head_dim > kMaxHeadDim || shape.head_dim % 2 != 0 || shape.n_kv_heads <= 0 ||
      shape.n_heads % shape.n_kv_heads != 0)
    return cudaErrorInvalidValue;
  const int splits = int(split_count(rows, shape, max_keys));
  const dim3 grid(unsigned(shape.n_heads), unsigned(rows), unsigned(splits));
  const bool wide = attention_rows_wide(kv_cols, shape);
  if (rope && (rows != 1 || !wide)) return cudaErrorInvalidValue;
  const auto kernel = rope   ? attention_split<8, true>
                      : wide ? attention_split<8, false>
                             : attention_split<2, false>;
  return launch(kernel, grid, kThreads, s, out, q, q_cols, reinterpret_cast<const __half*>(k_cache),
                reinterpret_cast<const __half*>(v_cache), kv_cols, shape, scratch, counts, splits,
                step, operands, rope ? *rope : AttentionRope{});
}

}  // namespace nibble::cuda
