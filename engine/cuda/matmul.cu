// out = x · wᵀ for every weight dtype, the 4-bit ones dequantized on the fly.
//
// One token (decode) is memory-bound: a GEMV where each warp owns one output row and its lanes
// stream the row in 16-byte loads, then reduce with shuffles. Several tokens (prefill) use a
// shared-memory tiled GEMM so each dequantized weight is reused across the tile's tokens.
// Both round the operands to the compute dtype and accumulate in float32, as the CPU reference.
#include <cstdint>

#include "engine/cuda/device_math.cuh"

namespace nibble::cuda {
namespace {

constexpr int kGemvWarps = 8;

// Weight elements in one 16-byte load. All 4-bit types share the DType::NF4 instantiation:
// only their code table differs.
template <DType T>
__host__ __device__ constexpr int chunk_elems() {
  return T == DType::F32 ? 4 : T == DType::NF4 ? 32 : 8;
}
template <DType T>
__host__ __device__ constexpr int64_t row_bytes(int64_t cols) {
  return T == DType::F32 ? cols * 4 : T == DType::NF4 ? cols / 2 : cols * 2;
}

// Decodes one 16-byte load of a weight row to chunk_elems<T>() floats.
template <DType T, ComputeDType C>
__device__ __forceinline__ void decode_chunk(uint4 raw, float* out, const float* code,
                                             float absmax) {
  const uint32_t words[4] = {raw.x, raw.y, raw.z, raw.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t u = words[i];
    if constexpr (T == DType::F32) {
      out[i] = __uint_as_float(u);
    } else if constexpr (T == DType::F16) {
      out[2 * i] = __half2float(__ushort_as_half(uint16_t(u & 0xffffu)));
      out[2 * i + 1] = __half2float(__ushort_as_half(uint16_t(u >> 16)));
    } else if constexpr (T == DType::BF16) {
      out[2 * i] = __uint_as_float(u << 16);
      out[2 * i + 1] = __uint_as_float(u & 0xffff0000u);
    } else {
#pragma unroll
      for (int b = 0; b < 4; ++b) {
        const uint32_t byte = (u >> (8 * b)) & 0xffu;
        out[8 * i + 2 * b] = round_operand<C>(__fmul_rn(code[byte >> 4], absmax));
        out[8 * i + 2 * b + 1] = round_operand<C>(__fmul_rn(code[byte & 0xfu], absmax));
      }
    }
  }
}

// kFast: rows split into whole 16-byte loads (and 4-bit chunks inside one quantization block);
// otherwise each lane reads single elements.
template <DType T, ComputeDType C, bool kFast>
__global__ void __launch_bounds__(kGemvWarps * 32)
    gemv(float* __restrict__ out, const float* __restrict__ x, const WeightArgs w) {
  __shared__ CodeTables tables;
  load_code_tables(w, tables);
  const int lane = threadIdx.x & 31;
  const int64_t row = int64_t(blockIdx.x) * kGemvWarps + (threadIdx.x >> 5);
  if (row >= w.rows) return;
  const int64_t k = w.cols;
  float acc = 0;
  if constexpr (kFast) {
    constexpr int kPer = chunk_elems<T>();
    const uint4* wrow =
        reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.data) + row * row_bytes<T>(k));
    const float4* x4 = reinterpret_cast<const float4*>(x);
#pragma unroll 2
    for (int64_t c = lane; c < k / kPer; c += 32) {
      const uint4 raw = __ldg(wrow + c);
      float absmax = 0;
      if constexpr (T == DType::NF4)
        absmax = block_absmax(w, tables.nested_code, (row * k + c * kPer) / w.blocksize);
      float wv[kPer];
      decode_chunk<T, C>(raw, wv, tables.code, absmax);
#pragma unroll
      for (int i = 0; i < kPer / 4; ++i) {
        const float4 v = __ldg(x4 + c * (kPer / 4) + i);
        acc += round_operand<C>(v.x) * wv[4 * i] + round_operand<C>(v.y) * wv[4 * i + 1] +
               round_operand<C>(v.z) * wv[4 * i + 2] + round_operand<C>(v.w) * wv[4 * i + 3];
      }
    }
  } else {
    for (int64_t i = lane; i < k; i += 32)
      acc += round_operand<C>(x[i]) * weight_at(w, tables.code, tables.nested_code, row * k + i);
  }
  acc = warp_sum(acc);
  if (lane == 0) out[row] = acc;
}

template <DType T, ComputeDType C>
cudaError_t launch_gemv(cudaStream_t s, float* out, const float* x, const WeightArgs& w) {
  const bool fast = w.cols % chunk_elems<T>() == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 &&
                    (T != DType::NF4 || w.blocksize % 32 == 0);
  const unsigned grid = blocks_for(w.rows, kGemvWarps);
  if (fast)
    gemv<T, C, true><<<grid, kGemvWarps * 32, 0, s>>>(out, x, w);
  else
    gemv<T, C, false><<<grid, kGemvWarps * 32, 0, s>>>(out, x, w);
  return launched();
}

// Tiles of kTileM tokens x kTileN outputs, kTileK deep; 256 threads each own a 4x4 block of
// outputs, strided by 16 so that shared-memory reads are conflict-free.
constexpr int kTileM = 64, kTileN = 64, kTileK = 16, kGemmThreads = 256;

template <ComputeDType C>
__global__ void __launch_bounds__(kGemmThreads)
    gemm(float* __restrict__ out, const float* __restrict__ x, int64_t m, const WeightArgs w) {
  __shared__ CodeTables tables;
  __shared__ float xs[kTileK][kTileM + 1];
  __shared__ float ws[kTileK][kTileN + 1];
  load_code_tables(w, tables);
  const int64_t n = w.rows, k = w.cols;
  const int64_t m0 = int64_t(blockIdx.y) * kTileM, n0 = int64_t(blockIdx.x) * kTileN;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < k; k0 += kTileK) {
    // Each thread loads 4 elements of each tile; consecutive threads read consecutive k.
#pragma unroll
    for (int i = 0; i < kTileM * kTileK / kGemmThreads; ++i) {
      const int idx = threadIdx.x + i * kGemmThreads, r = idx / kTileK, kk = idx % kTileK;
      const int64_t kg = k0 + kk;
      xs[kk][r] = (m0 + r < m && kg < k) ? round_operand<C>(x[(m0 + r) * k + kg]) : 0.0f;
      ws[kk][r] = (n0 + r < n && kg < k)
                      ? weight_at(w, tables.code, tables.nested_code, (n0 + r) * k + kg)
                      : 0.0f;
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
  gemm<C><<<grid, kGemmThreads, 0, s>>>(out, x, rows, w);
  return launched();
}

template <ComputeDType C>
cudaError_t launch_4bit(cudaStream_t s, float* out, const float* x, int64_t rows,
                        const WeightArgs& w) {
  return rows == 1 ? launch_gemv<DType::NF4, C>(s, out, x, w) : launch_gemm<C>(s, out, x, rows, w);
}

}  // namespace

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
