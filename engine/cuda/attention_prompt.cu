// Causal attention for a prompt on the tensor cores (flash-style), for models whose products
// compute in a 16-bit dtype: block (64 queries, head) runs 16 query rows per warp over the
// float16 KV cache, 64 positions at a time staged in shared memory by cp.async. Per tile each warp
// computes its scores S = q·kᵀ with mma.sync m16n8k16 (float32 sums), keeps the online softmax in
// registers (the 4 lanes of a quad share a row), and adds P·v to its output fragments after
// scaling them by the softmax's correction; the probabilities' accumulator fragments are the next
// product's operand fragments as they stand. The operands are float16: q (scaled by
// 1/sqrt(head_dim) first) and the probabilities are rounded to it, as the keys and values already
// are in the cache; sums are float32 (as shaders/attention_coopmat.comp on Vulkan). GQA: query
// head h reads KV head h / (n_heads / n_kv_heads). With `operands`, the output also as the o
// projection's operands (rounded to the model's compute dtype, pairs packed).
#include <cstdint>

#include "engine/cuda/tensor_core.cuh"

namespace nibble::cuda {
namespace {

constexpr int kWarps = 4, kThreads = 32 * kWarps, kQueries = 16 * kWarps;
constexpr int kKeys = 64;  // positions per staged tile

// kFrags: head_dim / 16. Staged rows are head_dim halves plus 16 bytes, so that the 8 rows an
// ldmatrix reads start on different banks.
template <int kFrags>
__global__ void __launch_bounds__(kThreads)
    attention_prompt(float* out, const float* q, int64_t rows, int64_t q_cols,
                     const __half* k_cache, const __half* v_cache, int64_t kv_cols,
                     const AttentionShape s, StepPtr step, uint32_t* operands) {
  constexpr int kHeadDim = 16 * kFrags, kRowChunks = 2 * kFrags + 1;
  __shared__ __align__(16) uint4 ks[kKeys * kRowChunks], vs[kKeys * kRowChunks];
  allow_dependents();
  wait_for_inputs();
  const int h = blockIdx.y, kvh = h / (s.n_heads / s.n_kv_heads);
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5, g = lane >> 2, c = lane & 3;
  const int64_t pos0 = step[0], row0 = int64_t(blockIdx.x) * kQueries;
  const int64_t last_row = min(rows, row0 + kQueries) - 1;
  // This lane's two query rows (g and g + 8 of the warp's 16) and their positions.
  const int64_t my_row[2] = {row0 + warp * 16 + g, row0 + warp * 16 + g + 8};
  const int64_t my_pos[2] = {pos0 + my_row[0], pos0 + my_row[1]};
  const int64_t window = s.sliding_window;

  // q as A fragments: (row g, d 2c..2c+1), (g + 8, same), (g, d + 8), (g + 8, d + 8).
  uint32_t qa[kFrags][4];
  const float scale = rsqrtf(float(kHeadDim));
#pragma unroll
  for (int f = 0; f < kFrags; ++f)
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t row = my_row[i & 1];
      const int d = 16 * f + 2 * c + 8 * (i >> 1);
      float2 v = make_float2(0.0f, 0.0f);
      if (row < rows) v = *reinterpret_cast<const float2*>(q + row * q_cols + h * kHeadDim + d);
      qa[f][i] = pack_operands<ComputeDType::F16>(v.x * scale, v.y * scale);
    }

  float o[2 * kFrags][4] = {};
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
  const int64_t first_key = window > 0 ? max(int64_t(0), pos0 + row0 - window + 1) : 0;
  const int64_t last_key = pos0 + last_row;
  for (int64_t k0 = first_key; k0 <= last_key; k0 += kKeys) {
    // Stage the tile: 64 rows of 2 * kFrags chunks of keys and of values.
    for (int i = t; i < kKeys * 2 * kFrags; i += kThreads) {
      const int r = i / (2 * kFrags), ch = i % (2 * kFrags);
      const int64_t key = k0 + r;
      const bool valid = key <= last_key;
      const int64_t at = (valid ? key : 0) * kv_cols + int64_t(kvh) * kHeadDim + ch * 8;
      copy16(shared_address(&ks[r * kRowChunks + ch]), k_cache + at, valid);
      copy16(shared_address(&vs[r * kRowChunks + ch]), v_cache + at, valid);
    }
    copies_commit();
    copies_wait();
    __syncthreads();

    // Scores: 8 fragments of 8 keys; key fragment pairs by ldmatrix as in the GEMM's weights.
    float sc[kKeys / 8][4] = {};
#pragma unroll
    for (int f = 0; f < kFrags; ++f)
#pragma unroll
      for (int j = 0; j < kKeys / 8; j += 2) {
        uint32_t b[4];
        const int r = 8 * j + (lane & 7) + ((lane >> 4) << 3);
        load_fragments<false>(shared_address(&ks[r * kRowChunks + 2 * f + ((lane >> 3) & 1)]), b);
        mma<ComputeDType::F16>(sc[j], qa[f], b[0], b[1]);
        mma<ComputeDType::F16>(sc[j + 1], qa[f], b[2], b[3]);
      }

    // The online softmax: mask, the rows' new maxima (over the quad), probabilities, correction.
    float tile_max[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j)
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const int64_t key = k0 + 8 * j + 2 * c + (i & 1), pos = my_pos[i >> 1];
        const bool seen = key <= pos && (window <= 0 || key > pos - window);
        sc[j][i] = seen ? sc[j][i] : -INFINITY;
        tile_max[i >> 1] = fmaxf(tile_max[i >> 1], sc[j][i]);
      }
    float base[2], correction[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 1));
      tile_max[r] = fmaxf(tile_max[r], __shfl_xor_sync(0xffffffffu, tile_max[r], 2));
      const float next = fmaxf(m[r], tile_max[r]);
      base[r] = next == -INFINITY ? 0.0f : next;  // a row with nothing seen yet: all zeros
      correction[r] = __expf(m[r] - base[r]);
      m[r] = next;
      l[r] *= correction[r];
    }
    uint32_t pa[kKeys / 16][4];  // P as A fragments: two score fragments per 16 keys
#pragma unroll
    for (int j = 0; j < kKeys / 8; ++j) {
      const float p0 = __expf(sc[j][0] - base[0]), p1 = __expf(sc[j][1] - base[0]);
      const float p2 = __expf(sc[j][2] - base[1]), p3 = __expf(sc[j][3] - base[1]);
      l[0] += p0 + p1;
      l[1] += p2 + p3;
      pa[j / 2][2 * (j & 1)] = pack_operands<ComputeDType::F16>(p0, p1);
      pa[j / 2][2 * (j & 1) + 1] = pack_operands<ComputeDType::F16>(p2, p3);
    }
#pragma unroll
    for (int j = 0; j < 2 * kFrags; ++j) {
      o[j][0] *= correction[0], o[j][1] *= correction[0];
      o[j][2] *= correction[1], o[j][3] *= correction[1];
    }

    // o += P·v: v's fragments transposed by ldmatrix (keys are the product's k).
#pragma unroll
    for (int kk = 0; kk < kKeys / 16; ++kk)
#pragma unroll
      for (int j = 0; j < 2 * kFrags; j += 2) {
        uint32_t b[4];
        const int r = 16 * kk + (lane & 7) + (((lane >> 3) & 1) << 3);
        load_fragments<true>(shared_address(&vs[r * kRowChunks + j + (lane >> 4)]), b);
        mma<ComputeDType::F16>(o[j], pa[kk], b[0], b[1]);
        mma<ComputeDType::F16>(o[j + 1], pa[kk], b[2], b[3]);
      }
    __syncthreads();  // the tile is read before the next one is staged
  }

#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    if (my_row[r] >= rows) continue;
    const int64_t at = my_row[r] * q_cols + h * kHeadDim + 2 * c;
#pragma unroll
    for (int j = 0; j < 2 * kFrags; ++j) {
      const float lo = o[j][2 * r] / l[r], hi = o[j][2 * r + 1] / l[r];
      *reinterpret_cast<float2*>(out + at + 8 * j) = make_float2(lo, hi);
      if (operands)
        operands[(at + 8 * j) / 2] = s.compute == ComputeDType::BF16
                                         ? pack_operands<ComputeDType::BF16>(lo, hi)
                                         : pack_operands<ComputeDType::F16>(lo, hi);
    }
  }
}

}  // namespace

bool attention_prompt_fits(int64_t rows, int64_t q_cols, int64_t kv_cols, const AttentionShape& s) {
  return s.compute != ComputeDType::F32 && rows * s.n_heads >= 512 && s.head_dim % 16 == 0 &&
         s.head_dim <= 128 && q_cols % 2 == 0 && kv_cols % 8 == 0;
}

cudaError_t launch_attention_prompt(cudaStream_t s, float* out, const float* q, int64_t rows,
                                    int64_t q_cols, const uint16_t* k_cache,
                                    const uint16_t* v_cache, int64_t kv_cols,
                                    const AttentionShape& shape, StepPtr step, uint16_t* operands) {
  // One kernel per head size: kFrags is the fragments' count along the head.
  static constexpr decltype(&attention_prompt<1>) kernels[] = {
      attention_prompt<1>, attention_prompt<2>, attention_prompt<3>, attention_prompt<4>,
      attention_prompt<5>, attention_prompt<6>, attention_prompt<7>, attention_prompt<8>};
  const int frags = shape.head_dim / 16;
  if (shape.head_dim % 16 != 0 || frags < 1 || frags > 8) return cudaErrorInvalidValue;
  const dim3 grid(blocks_for(rows, kQueries), unsigned(shape.n_heads));
  return launch(kernels[frags - 1], grid, kThreads, s, out, q, rows, q_cols,
                reinterpret_cast<const __half*>(k_cache), reinterpret_cast<const __half*>(v_cache),
                kv_cols, shape, step, reinterpret_cast<uint32_t*>(operands));
}

}  // namespace nibble::cuda
