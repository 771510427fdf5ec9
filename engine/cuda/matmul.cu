// out = x · wᵀ for every weight dtype, the 4-bit ones dequantized on the fly. Operands are
// rounded to the compute dtype and products accumulate in float32, as in the CPU reference; for
// one row (the GEMV) the 4-bit weight stays float32, as in bitsandbytes' GEMV, and each 32-value
// chunk's sum of code values times x is multiplied by its block's absmax once (as the Vulkan
// GEMV; the CPU multiplies every code value by it, which differs only by rounding).
//
// One token (decode) is memory-bound. A 4-bit GEMV block owns 4 output rows: each thread takes
// one 16-byte chunk of every row at a time and the x values under it, so one rounding of x serves
// 4 rows, and the 4 sums are reduced together (the Vulkan GEMV's form, shaders/matvec.glsl); one
// launch may compute several weights that read the same x (q, k and v; gate and up). For
// 16/32-bit weights (lm_head) each warp owns a row and its lanes stream it in 16-byte loads, x
// staged in shared memory in a layout where the 32 lanes read 32 different banks. Rows that do
// not split into 16-byte loads take a plain element-wise GEMV.
// Several tokens (prefill) use a tiled float32 GEMM so each dequantized weight serves a whole
// tile of tokens; 4-bit weights with a 16-bit compute dtype take the tensor cores instead
// (gemm_4bit.cu) where the backend can give them x as operands.
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace nibble::cuda {
namespace {

// Elements of a 16/32-bit weight in one 16-byte load.
template <DType T>
__host__ __device__ constexpr int chunk_elems() {
  return T == DType::F32 ? 4 : 8;
}

// The two weights in one byte of 4-bit codes (the even element in the high nibble).
template <ComputeDType C>
__device__ __forceinline__ float2 decode_byte(uint32_t byte, const float* code, float absmax) {
  return round_pair<C>(__fmul_rn(code[(byte >> 4) & 0xfu], absmax),
                       __fmul_rn(code[byte & 0xfu], absmax));
}

// Eight 4-bit codes (one 32-bit word) to eight weights.
template <ComputeDType C>
__device__ __forceinline__ void decode_codes(uint32_t u, float* out, const float* code,
                                             float absmax) {
#pragma unroll
  for (int b = 0; b < 4; ++b) {
    const float2 v = decode_byte<C>(u >> (8 * b), code, absmax);
    out[2 * b] = v.x;
    out[2 * b + 1] = v.y;
  }
}

// Elements 2p and 2p + 1 (p a compile-time constant once unrolled) of one 16-byte load of a
// 16/32-bit weight row. Decoding right where the values are used keeps the GEMV's registers, and
// so its occupancy, low.
template <DType T>
__device__ __forceinline__ float2 chunk_pair(const uint4& raw, int p) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
  if constexpr (T == DType::F32) {
    return make_float2(__uint_as_float(words[2 * p]), __uint_as_float(words[2 * p + 1]));
  } else if constexpr (T == DType::F16) {
    const uint32_t u = words[p];
    return make_float2(__half2float(__ushort_as_half(uint16_t(u & 0xffffu))),
                       __half2float(__ushort_as_half(uint16_t(u >> 16))));
  } else {
    const uint32_t u = words[p];
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
  }
}

// --- GEMV ---------------------------------------------------------------------------------------

// Rows per warp and warps per block, measured on the H100: more warps sharing one staged x beat
// more rows per warp (W16R1 175 tok/s on a 7B, W8R2 162, W4R4 134).
constexpr int kGemvWarps = 16, kGemvRows = 1;
constexpr int kGemvSegment = 4096;  // x elements staged at a time (16 KB)
constexpr int kGemvDepth = 4;       // 16-byte loads per lane and row in flight

// Where the pair of elements (2p, 2p + 1) of chunk c of a staged segment lives (as float2). The
// segment is cut in chunks of kPer elements (one 16-byte weight load each); lane L reads pair p of
// chunk L + 32t, so without the permutation of the pairs inside each chunk the lanes' 8-byte
// reads would fall on the same banks.
template <int kPer>
__device__ __forceinline__ int staged_pair(int c, int p) {
  constexpr int kPairs = kPer / 2;
  return 2 * (c * kPairs + (p ^ ((c / (16 / kPairs)) % kPairs)));
}

template <DType T, ComputeDType C>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_staged(float* __restrict__ out, const float* __restrict__ x, const WeightArgs w) {
  constexpr int kPer = chunk_elems<T>();
  __shared__ __align__(16) float xs[kGemvSegment];
  allow_dependents();
  const int lane = threadIdx.x & 31;
  const int64_t row0 = (int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5)) * kGemvRows;
  const int64_t k = w.cols;
  const uint8_t* base = static_cast<const uint8_t*>(w.data);
  float acc[kGemvRows] = {};
  for (int64_t s0 = 0; s0 < k; s0 += kGemvSegment) {
    const int chunks = int(min(int64_t(kGemvSegment), k - s0)) / kPer;
    // Groups of kGemvDepth loads per lane and row, all in flight together. The trip count is the
    // same for every thread, so the barriers below are reached by all.
    for (int g0 = 0; g0 < chunks; g0 += 32 * kGemvDepth) {
      uint4 raw[kGemvDepth][kGemvRows];
#pragma unroll
      for (int d = 0; d < kGemvDepth; ++d) {
        const int c = g0 + 32 * d + lane;
        if (c >= chunks) break;
        const int64_t chunk = s0 / kPer + c;
#pragma unroll
        for (int r = 0; r < kGemvRows; ++r) {
          const int64_t row = min(row0 + r, w.rows - 1);  // past the end: computed, not written
          raw[d][r] = __ldg(reinterpret_cast<const uint4*>(base + row * k * (16 / kPer)) + chunk);
        }
      }
      if (g0 == 0) {  // stage the segment's x while the first loads are in flight
        // The weight loads above may run beside the tail of the kernel that writes x.
        if (s0 == 0) wait_for_inputs();
        __syncthreads();  // every warp is done with the previous segment
        for (int i = threadIdx.x; i < chunks * kPer; i += blockDim.x)
          xs[staged_pair<kPer>(i / kPer, i % kPer / 2) + i % 2] = round_operand<C>(x[s0 + i]);
        __syncthreads();
      }
#pragma unroll
      for (int d = 0; d < kGemvDepth; ++d) {
        const int c = g0 + 32 * d + lane;
        if (c >= chunks) break;
#pragma unroll
        for (int p = 0; p < kPer / 2; ++p) {
          const float2 xv = *reinterpret_cast<const float2*>(&xs[staged_pair<kPer>(c, p)]);
#pragma unroll
          for (int r = 0; r < kGemvRows; ++r) {
            const float2 wv = chunk_pair<T>(raw[d][r], p);
            acc[r] = fmaf(xv.y, wv.y, fmaf(xv.x, wv.x, acc[r]));
          }
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kGemvRows; ++r) {
    const float sum = warp_sum(acc[r]);
    if (lane == 0 && row0 + r < w.rows) out[row0 + r] = sum;
  }
}

// Any shape: one warp per row, lanes over single elements.
template <ComputeDType C>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv_elementwise(float* __restrict__ out, const float* __restrict__ x, const WeightArgs w) {
  allow_dependents();
  wait_for_inputs();
  __shared__ CodeTables tables;
  load_code_tables(w, tables);
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (row >= w.rows) return;
  float acc = 0;
  for (int64_t i = lane; i < w.cols; i += 32)
    acc += round_operand<C>(x[i]) *
           weight_at(w, tables.code, tables.nested_code, row * w.cols + i, /*round=*/false);
  acc = warp_sum(acc);
  if (lane == 0) out[row] = acc;
}

// The 4-bit GEMV's rows per block.
constexpr int kQuadRows = 4;

// Sum of x[i] * code[q_i] over two words of 4-bit codes (byte b of word i holds elements
// 8i + 2b, high nibble, and 8i + 2b + 1). Both nibbles of a word are masked at once into byte
// offsets of the shared code table, so each lookup is one byte extraction.
__device__ __forceinline__ float words_dot(uint32_t w0, uint32_t w1, const float* xs,
                                           const float* code) {
  const uint32_t words[2] = {w0, w1};
  const char* table = reinterpret_cast<const char*>(code);
  float acc = 0.0f;
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const uint32_t hi = (words[i] >> 2) & 0x3c3c3c3cu, lo = (words[i] << 2) & 0x3c3c3c3cu;
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const float h = *reinterpret_cast<const float*>(table + __byte_perm(hi, 0, 0x4440 + b));
      const float l = *reinterpret_cast<const float*>(table + __byte_perm(lo, 0, 0x4440 + b));
      acc = fmaf(xs[8 * i + 2 * b + 1], l, fmaf(xs[8 * i + 2 * b], h, acc));
    }
  }
  return acc;
}

// One token times a 4-bit weight whose rows are whole 16-byte chunks, each inside one
// quantization block: kQuadRows rows (from row0) per block of kThreads; thread t takes chunks t,
// t + kThreads, ... of every row. Each chunk's sum is multiplied by its block's absmax once. The
// block stores (or with `accumulate` adds) its rows. kX16: x is read as its operands, already
// rounded to C by the kernel that wrote them (x16, pairs packed: half the bytes, no rounding).
template <ComputeDType C, int kThreads, bool kX16>
__device__ __forceinline__ void gemv_4bit_rows(const float* x, const uint32_t* x16,
                                               const WeightArgs& w, float* out, bool accumulate,
                                               int64_t row0) {
  constexpr int kWarps = kThreads / 32;
  __shared__ CodeTables table;
  __shared__ float sums[kQuadRows][kWarps];
  copy_code_tables(w, table);  // weights: no kernel before this one writes them
  __syncthreads();
  const int t = threadIdx.x, lane = t & 31;
  const int64_t k = w.cols;
  float acc[kQuadRows] = {};
  for (int64_t c = t; c < k / 32; c += kThreads) {
    // The absmax loads first (a double-quantized one is a chain: its code, then the value),
    // then the weights', all in flight before anything waits.
    AbsmaxLoad am[kQuadRows];
    uint4 raw[kQuadRows];
    int64_t rows[kQuadRows];
#pragma unroll
    for (int r = 0; r < kQuadRows; ++r) {
      rows[r] = min(row0 + r, w.rows - 1);  // past the end: computed, not written
      am[r] = load_absmax(w, (rows[r] * k + c * 32) >> w.block_shift);
    }
#pragma unroll
    for (int r = 0; r < kQuadRows; ++r)
      raw[r] = __ldg(static_cast<const uint4*>(w.data) + rows[r] * (k / 32) + c);
    // x is the kernel before's output (the wait returns at once after the first time). Not
    // `__restrict__`: read-only (.nc) loads may be scheduled above the wait, which made the
    // model's decode steps read x before it was written.
    wait_for_inputs();
    // x in two halves of 16 values, rounded once for all rows (all 32 at once spill registers).
    float part[kQuadRows] = {};
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float xs[16];
      if constexpr (kX16) {
        const uint4* u4 = reinterpret_cast<const uint4*>(x16 + c * 16 + half * 8);
#pragma unroll
        for (int i = 0; i < 2; ++i) {
          const uint4 u = u4[i];
          const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
          for (int h = 0; h < 4; ++h) {
            const float2 v = unpack_operands<C>(words[h]);
            xs[8 * i + 2 * h] = v.x;
            xs[8 * i + 2 * h + 1] = v.y;
          }
        }
      } else {
        const float4* x4 = reinterpret_cast<const float4*>(x + c * 32 + half * 16);
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const float4 v = x4[i];
          const float2 a = round_pair<C>(v.x, v.y), b = round_pair<C>(v.z, v.w);
          xs[4 * i] = a.x;
          xs[4 * i + 1] = a.y;
          xs[4 * i + 2] = b.x;
          xs[4 * i + 3] = b.y;
        }
      }
#pragma unroll
      for (int r = 0; r < kQuadRows; ++r)
        part[r] += half ? words_dot(raw[r].z, raw[r].w, xs, table.code)
                        : words_dot(raw[r].x, raw[r].y, xs, table.code);
    }
#pragma unroll
    for (int r = 0; r < kQuadRows; ++r)
      acc[r] = fmaf(decode_absmax(w, table.nested_code, am[r]), part[r], acc[r]);
  }
  wait_for_inputs();  // a thread without chunks: its writes follow the kernel before, too
  // The warp's 4 sums at once: each step keeps half of them and adds the other half from the
  // lane `o` away, which keeps the other half; then lane 8r holds sum r (5 shuffles, not 20).
#pragma unroll
  for (int h = kQuadRows / 2; h > 0; h /= 2) {
    const int o = 8 * h;
    const bool upper = (lane & o) != 0;
#pragma unroll
    for (int i = 0; i < h; ++i) {
      const float keep = upper ? acc[i + h] : acc[i], give = upper ? acc[i] : acc[i + h];
      acc[i] = keep + __shfl_xor_sync(0xffffffffu, give, o);
    }
  }
  for (int o = 4; o > 0; o >>= 1) acc[0] += __shfl_xor_sync(0xffffffffu, acc[0], o);
  if (lane % 8 == 0) sums[lane / 8][t / 32] = acc[0];
  __syncthreads();
  if (t < kQuadRows && row0 + t < w.rows) {
    float sum = 0.0f;
#pragma unroll
    for (int g = 0; g < kWarps; ++g) sum += sums[t][g];
    out[row0 + t] = accumulate ? out[row0 + t] + sum : sum;
  }
}

// The weights of one 4-bit GEMV launch: target i's rows are blocks [first_block[i],
// first_block[i + 1]).
struct GemvTargets {
  WeightArgs w[kMaxGemvTargets];
  float* out[kMaxGemvTargets];
  unsigned first_block[kMaxGemvTargets + 1];
  bool accumulate;  // out += x · wᵀ (the residual connection)
};

// Each target's code inlined with a constant index, so that its arguments are read in place
// rather than copied to registers (a dynamic index spilled them).
template <ComputeDType C, int kThreads, bool kX16>
__global__ void __launch_bounds__(kThreads, 1024 / kThreads)
    gemv_4bit(const float* x, const uint32_t* x16, const GemvTargets a) {
  allow_dependents();
  const unsigned b = blockIdx.x;
  static_assert(kMaxGemvTargets == 3);
  if (b < a.first_block[1])
    gemv_4bit_rows<C, kThreads, kX16>(x, x16, a.w[0], a.out[0], a.accumulate,
                                      int64_t(b) * kQuadRows);
  else if (b < a.first_block[2])
    gemv_4bit_rows<C, kThreads, kX16>(x, x16, a.w[1], a.out[1], a.accumulate,
                                      int64_t(b - a.first_block[1]) * kQuadRows);
  else
    gemv_4bit_rows<C, kThreads, kX16>(x, x16, a.w[2], a.out[2], a.accumulate,
                                      int64_t(b - a.first_block[2]) * kQuadRows);
}

template <ComputeDType C, bool kX16>
cudaError_t launch_gemv_4bit(cudaStream_t s, const float* x, const uint32_t* x16,
                             const GemvTargets& a, bool narrow) {
  // 64 threads where rows have at most 64 chunks (2 048-wide), so that none idles.
  const unsigned blocks = a.first_block[kMaxGemvTargets];
  return narrow ? launch(gemv_4bit<C, 64, kX16>, blocks, 64, s, x, x16, a)
                : launch(gemv_4bit<C, 128, kX16>, blocks, 128, s, x, x16, a);
}

// All 4-bit types share the DType::NF4 instantiation: only their code table differs.
template <DType T, ComputeDType C>
cudaError_t launch_gemv(cudaStream_t s, float* out, const float* x, const WeightArgs& w) {
  if constexpr (T == DType::NF4) {
    if (gemv_4bit_fits(x, w)) {
      const GemvTarget target{w, out};
      return launch_gemv_4bit(s, x, nullptr, &target, 1, GemvEpilogue::kStore);
    }
  } else if (w.cols % chunk_elems<T>() == 0) {  // whole 16-byte loads per row
    return launch(gemv_staged<T, C>, blocks_for(w.rows, kGemvWarps * kGemvRows), kGemvWarps * 32, s,
                  out, x, w);
  }
  return launch(gemv_elementwise<C>, blocks_for(w.rows, kGemvWarps), kGemvWarps * 32, s, out, x, w);
}

// --- GEMM tiles
// -----------------------------------------------------------------------------------

// 16 consecutive operands of one tile row: x[row][k..k+16) rounded, or w[row][k..k+16)
// dequantized; zero past the matrix. `fast4`: a 4-bit row whose 16 codes are one aligned 8-byte
// load inside one quantization block.
template <ComputeDType C>
__device__ __forceinline__ void load16_x(const float* x, int64_t rows, int64_t cols, int64_t row,
                                         int64_t k, float* v) {
#pragma unroll
  for (int i = 0; i < 16; ++i)
    v[i] = (row < rows && k + i < cols) ? round_operand<C>(x[row * cols + k + i]) : 0.0f;
}
__device__ __forceinline__ void load16_w(const WeightArgs& w, const CodeTables& t, bool fast4,
                                         int64_t row, int64_t k, float* v) {
  if (fast4 && row < w.rows && k + 16 <= w.cols) {
    const int64_t e = row * w.cols + k;
    const uint2 raw = *reinterpret_cast<const uint2*>(static_cast<const uint8_t*>(w.data) + e / 2);
    const float absmax = block_absmax(w, t.nested_code, e >> w.block_shift);
    switch (w.compute) {
      case ComputeDType::F16:
        decode_codes<ComputeDType::F16>(raw.x, v, t.code, absmax);
        decode_codes<ComputeDType::F16>(raw.y, v + 8, t.code, absmax);
        break;
      case ComputeDType::BF16:
        decode_codes<ComputeDType::BF16>(raw.x, v, t.code, absmax);
        decode_codes<ComputeDType::BF16>(raw.y, v + 8, t.code, absmax);
        break;
      default:
        decode_codes<ComputeDType::F32>(raw.x, v, t.code, absmax);
        decode_codes<ComputeDType::F32>(raw.y, v + 8, t.code, absmax);
    }
    return;
  }
#pragma unroll
  for (int i = 0; i < 16; ++i)
    v[i] = (row < w.rows && k + i < w.cols)
               ? weight_at(w, t.code, t.nested_code, row * w.cols + k + i)
               : 0.0f;
}

bool fast4_tiles(const WeightArgs& w) {
  const bool is_4bit = w.dtype == DType::NF4 || w.dtype == DType::FP4;
  return is_4bit && w.cols % 16 == 0 && w.block_shift >= 4;
}

// --- float32 GEMM
// ---------------------------------------------------------------------------------

// Tiles of 64 tokens x 64 outputs, 16 deep; 256 threads each own a 4x4 block of outputs, strided
// by 16 so that shared-memory reads are conflict-free.
constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kGemmThreads = 256;

template <ComputeDType C>
__global__ void __launch_bounds__(kGemmThreads)
    gemm(float* __restrict__ out, const float* __restrict__ x, int64_t m, const WeightArgs w,
         bool fast4) {
  __shared__ CodeTables tables;
  __shared__ float xs[kTileK][kTileM + 1];
  __shared__ float ws[kTileK][kTileN + 1];
  allow_dependents();
  wait_for_inputs();
  load_code_tables(w, tables);
  const int64_t n = w.rows, k = w.cols;
  const int64_t m0 = int64_t(blockIdx.y) * kTileM, n0 = int64_t(blockIdx.x) * kTileN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    // Threads 0-63 load the x tile's rows, 64-127 the weight tile's rows, 16 values each.
    if (threadIdx.x < 2 * kTileM) {
      const int r = threadIdx.x % kTileM;
      float v[16];
      if (threadIdx.x < kTileM)
        load16_x<C>(x, m, k, m0 + r, k0, v);
      else
        load16_w(w, tables, fast4, n0 + r, k0, v);
      float(*tile)[kTileM + 1] = threadIdx.x < kTileM ? xs : ws;
#pragma unroll
      for (int i = 0; i < 16; ++i) tile[i][r] = v[i];
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        a[i] = xs[kk][ty + 16 * i];
        b[i] = ws[kk][tx + 16 * i];
      }
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int64_t r = m0 + ty + 16 * i, c = n0 + tx + 16 * j;
      if (r < m && c < n) out[r * n + c] = acc[i][j];
    }
}

template <ComputeDType C>
cudaError_t launch_gemm(cudaStream_t s, float* out, const float* x, int64_t rows,
                        const WeightArgs& w) {
  const dim3 grid(blocks_for(w.rows, kTileN), blocks_for(rows, kTileM));
  return launch(gemm<C>, grid, kGemmThreads, s, out, x, rows, w, fast4_tiles(w));
}

template <ComputeDType C>
cudaError_t launch_4bit(cudaStream_t s, float* out, const float* x, int64_t rows,
                        const WeightArgs& w) {
  if (rows == 1) return launch_gemv<DType::NF4, C>(s, out, x, w);
  return launch_gemm<C>(s, out, x, rows, w);
}

}  // namespace

bool gemv_4bit_fits(const float* x, const WeightArgs& w) {
  return (w.dtype == DType::NF4 || w.dtype == DType::FP4) && w.cols % 32 == 0 &&
         w.block_shift >= 5 && reinterpret_cast<uintptr_t>(x) % 16 == 0;
}

cudaError_t launch_gemv_4bit(cudaStream_t s, const float* x, const uint16_t* x16,
                             const GemvTarget* targets, size_t count, GemvEpilogue epilogue) {
  if (count < 1 || count > kMaxGemvTargets) return cudaErrorInvalidValue;
  GemvTargets a{};
  a.accumulate = epilogue == GemvEpilogue::kAdd;
  a.first_block[0] = 0;
  for (size_t i = 0; i < kMaxGemvTargets; ++i) {
    const bool real = i < count;
    if (real) {
      a.w[i] = targets[i].w;
      a.out[i] = targets[i].out;
    }
    a.first_block[i + 1] = a.first_block[i] + (real ? blocks_for(targets[i].w.rows, kQuadRows) : 0);
  }
  // One compute dtype and width for all (the model's q/k/v and gate/up share x).
  const WeightArgs& w = targets[0].w;
  const bool narrow = w.cols <= 64 * 32;
  const uint32_t* words = reinterpret_cast<const uint32_t*>(x16);
  switch (w.compute) {
    case ComputeDType::F16:
      return x16 ? launch_gemv_4bit<ComputeDType::F16, true>(s, x, words, a, narrow)
                 : launch_gemv_4bit<ComputeDType::F16, false>(s, x, words, a, narrow);
    case ComputeDType::BF16:
      return x16 ? launch_gemv_4bit<ComputeDType::BF16, true>(s, x, words, a, narrow)
                 : launch_gemv_4bit<ComputeDType::BF16, false>(s, x, words, a, narrow);
    default:
      if (x16) return cudaErrorInvalidValue;  // operands are 16-bit
      return launch_gemv_4bit<ComputeDType::F32, false>(s, x, words, a, narrow);
  }
}

cudaError_t launch_matmul(cudaStream_t s, float* out, const float* x, int64_t rows,
                          const WeightArgs& w) {
  switch (w.dtype) {
    case DType::F32:
      return rows == 1 ? launch_gemv<DType::F32, ComputeDType::F32>(s, out, x, w)
                       : launch_gemm<ComputeDType::F32>(s, out, x, rows, w);
    case DType::F16:
      return rows == 1 ? launch_gemv<DType::F16, ComputeDType::F32>(s, out, x, w)
                       : launch_gemm<ComputeDType::F32>(s, out, x, rows, w);
    case DType::BF16:
      return rows == 1 ? launch_gemv<DType::BF16, ComputeDType::F32>(s, out, x, w)
                       : launch_gemm<ComputeDType::F32>(s, out, x, rows, w);
    default:
      switch (w.compute) {
        case ComputeDType::F16:
          return launch_4bit<ComputeDType::F16>(s, out, x, rows, w);
        case ComputeDType::BF16:
          return launch_4bit<ComputeDType::BF16>(s, out, x, rows, w);
        default:
          return launch_4bit<ComputeDType::F32>(s, out, x, rows, w);
      }
  }
}

}  // namespace nibble::cuda
