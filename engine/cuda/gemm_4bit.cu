// Prompt products (several tokens) of 4-bit weights on the tensor cores: out = x · wᵀ (or, for
// the residual connection, out += x · wᵀ in the store) with x's operands already rounded to the
// 16-bit compute dtype (launch_operands) and the weight dequantized and rounded inside the
// kernel, so that the operands are exactly the values the CPU reference multiplies and only the
// summation order differs.
//
// A block of 256 threads owns a 128x128 output tile (tokens x weight rows) and walks k in slices
// of 64. Each slice goes through shared memory in two buffers: x's operands by cp.async, the
// weight's 4-bit codes through registers, loaded one slice ahead and dequantized after the
// tensor cores have taken the current slice, so that their latency hides behind its products.
// Each warp multiplies a 64x32 part of the tile with mma.sync m16n8k16 (float32 sums), reading
// its fragments with ldmatrix; shared rows are 8 chunks of 16 bytes, chunk c of row r stored at
// c ^ (r % 8) so that the 8 rows an ldmatrix reads fall on different banks.
#include <cstdint>

#include "engine/cuda/tensor_core.cuh"

namespace nibble::cuda {
namespace {

constexpr int kTileM = 128, kTileN = 128, kTileK = 64, kThreads = 256;
constexpr int kChunks = kTileK / 8;               // 16-byte chunks per shared row
constexpr int kTileBytes = kTileM * kTileK * 2;   // one operand tile (16 KB)
constexpr int kSharedBytes = 2 * 2 * kTileBytes;  // x and w, two buffers each (64 KB)
constexpr int kWarpM = 64, kWarpN = 32;           // each warp's part of the tile
constexpr int kFragsM = kWarpM / 16, kFragsN = kWarpN / 8;

// Byte offset of 16-byte chunk c of row r in a tile.
__device__ __forceinline__ uint32_t chunk_at(int r, int c) {
  return uint32_t(r * kTileK * 2 + ((c ^ (r & 7)) << 4));
}

// The 32 codes of one thread's part of a weight slice (row `row`, columns k..k+32, inside one
// quantization block), as loaded, and their block's absmax before decoding.
struct Codes {
  uint4 raw;
  AbsmaxLoad absmax;
  bool valid;
};

__device__ __forceinline__ Codes load_codes(const WeightArgs& w, int64_t row, int64_t k) {
  Codes c{};
  c.valid = row < w.rows && k < w.cols;
  if (c.valid) {
    const int64_t e = row * w.cols + k;
    c.raw = *reinterpret_cast<const uint4*>(static_cast<const uint8_t*>(w.data) + e / 2);
    c.absmax = load_absmax(w, e >> w.block_shift);
  }
  return c;
}

// Dequantizes and rounds `c` into 4 chunks of a weight tile row (zeros past the weight). Byte b of
// word i holds elements 8i + 2b (high nibble) and 8i + 2b + 1.
template <ComputeDType C>
__device__ __forceinline__ void store_codes(const Codes& c, const WeightArgs& w,
                                            const CodeTables& t, char* tile, int r, int c0) {
  const uint32_t words[4] = {c.raw.x, c.raw.y, c.raw.z, c.raw.w};
  const float absmax = c.valid ? decode_absmax(w, t.nested_code, c.absmax) : 0.0f;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    uint32_t packed[4];
#pragma unroll
    for (int b = 0; b < 4; ++b) {
      const uint32_t byte = words[i] >> (8 * b);
      packed[b] = pack_operands<C>(__fmul_rn(t.code[(byte >> 4) & 0xfu], absmax),
                                   __fmul_rn(t.code[byte & 0xfu], absmax));
    }
    *reinterpret_cast<uint4*>(tile + chunk_at(r, c0 + i)) =
        make_uint4(packed[0], packed[1], packed[2], packed[3]);
  }
}

template <ComputeDType C>
__global__ void __launch_bounds__(kThreads, 1)
    gemm_4bit(float* out, const uint16_t* x, int64_t m, const WeightArgs w, bool accumulate) {
  extern __shared__ __align__(128) char tiles[];  // [buffer][x, w][kTileBytes]
  __shared__ CodeTables tables;
  allow_dependents();
  wait_for_inputs();
  load_code_tables(w, tables);
  const int64_t n = w.rows, k = w.cols;
  const int64_t m0 = int64_t(blockIdx.y) * kTileM, n0 = int64_t(blockIdx.x) * kTileN;
  const int t = threadIdx.x, lane = t & 31, warp = t >> 5;
  const int wm = (warp >> 2) * kWarpM, wn = (warp & 3) * kWarpN;
  const int slices = int((k + kTileK - 1) / kTileK);
  // This thread's weight loads: half a slice row (32 codes).
  const int w_row = t >> 1, w_half = t & 1;

  // x's 1 024 chunks of a slice, 4 per thread.
  const auto copy_x = [&](int slice, int buffer) {
    const uint32_t tile = shared_address(tiles + buffer * 2 * kTileBytes);
#pragma unroll
    for (int i = 0; i < kTileM * kChunks / kThreads; ++i) {
      const int id = t + i * kThreads, r = id / kChunks, c = id % kChunks;
      const int64_t row = m0 + r, col = int64_t(slice) * kTileK + c * 8;
      const bool valid = row < m && col < k;
      copy16(tile + chunk_at(r, c), valid ? x + row * k + col : x, valid);
    }
    copies_commit();
  };
  const auto codes_of = [&](int slice) {
    return load_codes(w, n0 + w_row, int64_t(slice) * kTileK + w_half * 32);
  };
  const auto store_w = [&](const Codes& c, int buffer) {
    store_codes<C>(c, w, tables, tiles + (buffer * 2 + 1) * kTileBytes, w_row, w_half * 4);
  };

  float acc[kFragsM][kFragsN][4] = {};
  copy_x(0, 0);
  store_w(codes_of(0), 0);
  copies_wait();
  __syncthreads();
  for (int s = 0; s < slices; ++s) {
    const int buffer = s & 1;
    const bool next = s + 1 < slices;
    Codes codes{};
    if (next) {
      copy_x(s + 1, buffer ^ 1);
      codes = codes_of(s + 1);
    }
    const uint32_t xs = shared_address(tiles + buffer * 2 * kTileBytes);
    const uint32_t ws = xs + kTileBytes;
#pragma unroll
    for (int kk = 0; kk < kTileK / 16; ++kk) {
      uint32_t a[kFragsM][4], b[kFragsN][2];
      // x: matrices (rows 0-7, k 0-7), (8-15, 0-7), (0-7, 8-15), (8-15, 8-15) of each 16x16.
#pragma unroll
      for (int i = 0; i < kFragsM; ++i) {
        load_fragments(xs + chunk_at(wm + i * 16 + (lane & 15), kk * 2 + (lane >> 4)), a[i]);
      }
      // w: matrices (rows 0-7, k 0-7), (0-7, 8-15), (8-15, 0-7), (8-15, 8-15): two n8 fragments.
#pragma unroll
      for (int j = 0; j < kFragsN; j += 2) {
        uint32_t r[4];
        load_fragments(
            ws + chunk_at(wn + j * 8 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1)),
            r);
        b[j][0] = r[0], b[j][1] = r[1], b[j + 1][0] = r[2], b[j + 1][1] = r[3];
      }
#pragma unroll
      for (int i = 0; i < kFragsM; ++i)
#pragma unroll
        for (int j = 0; j < kFragsN; ++j) mma<C>(acc[i][j], a[i], b[j][0], b[j][1]);
    }
    if (next) store_w(codes, buffer ^ 1);
    copies_wait();
    __syncthreads();
  }

  // Fragment layout: d0, d1 at (row lane / 4, columns 2 (lane % 4) + 0, 1), d2, d3 8 rows below.
  const bool pairs = n % 2 == 0;  // float2 stores stay aligned
#pragma unroll
  for (int i = 0; i < kFragsM; ++i)
#pragma unroll
    for (int j = 0; j < kFragsN; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int64_t row = m0 + wm + i * 16 + (lane >> 2) + 8 * h;
        const int64_t col = n0 + wn + j * 8 + 2 * (lane & 3);
        if (row >= m || col >= n) continue;
        float* o = out + row * n + col;
        float2 v = make_float2(acc[i][j][2 * h], acc[i][j][2 * h + 1]);
        if (pairs) {
          if (accumulate) {
            const float2 before = *reinterpret_cast<const float2*>(o);
            v.x += before.x, v.y += before.y;
          }
          *reinterpret_cast<float2*>(o) = v;
        } else {
          o[0] = accumulate ? o[0] + v.x : v.x;
          if (col + 1 < n) o[1] = accumulate ? o[1] + v.y : v.y;
        }
      }
}

template <ComputeDType C>
cudaError_t launch_gemm_4bit(cudaStream_t s, float* out, const uint16_t* x, int64_t rows,
                             const WeightArgs& w, bool accumulate) {
  static const cudaError_t opt_in =
      cudaFuncSetAttribute(gemm_4bit<C>, cudaFuncAttributeMaxDynamicSharedMemorySize, kSharedBytes);
  if (opt_in != cudaSuccess) return opt_in;
  // A plain launch (prompt steps are not programmatic, device_math.cuh `launch`) with the
  // dynamic shared memory.
  const dim3 grid(blocks_for(w.rows, kTileN), blocks_for(rows, kTileM));
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = kThreads;
  config.dynamicSmemBytes = kSharedBytes;
  config.stream = s;
  return cudaLaunchKernelEx(&config, gemm_4bit<C>, out, x, rows, w, accumulate);
}

// Eight values of x per thread as four words of operand bits.
template <ComputeDType C>
__global__ void operands_kernel(uint32_t* out, const float* x, int64_t n) {
  allow_dependents();
  wait_for_inputs();
  const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  if (i >= n) return;
  const float4 a = *reinterpret_cast<const float4*>(x + i);
  const float4 b = *reinterpret_cast<const float4*>(x + i + 4);
  *reinterpret_cast<uint4*>(out + i / 2) =
      make_uint4(pack_operands<C>(a.x, a.y), pack_operands<C>(a.z, a.w), pack_operands<C>(b.x, b.y),
                 pack_operands<C>(b.z, b.w));
}

}  // namespace

bool gemm_4bit_fits(const WeightArgs& w) {
  const bool is_4bit = w.dtype == DType::NF4 || w.dtype == DType::FP4;
  return is_4bit && w.compute != ComputeDType::F32 && w.cols % 32 == 0 && w.block_shift >= 5;
}

cudaError_t launch_operands(cudaStream_t s, uint16_t* out, const float* x, int64_t n,
                            ComputeDType compute) {
  if (n % 8 != 0) return cudaErrorInvalidValue;
  const unsigned blocks = blocks_for(n / 8, 256);
  uint32_t* words = reinterpret_cast<uint32_t*>(out);
  return compute == ComputeDType::BF16
             ? launch(operands_kernel<ComputeDType::BF16>, blocks, 256, s, words, x, n)
             : launch(operands_kernel<ComputeDType::F16>, blocks, 256, s, words, x, n);
}

cudaError_t launch_gemm_4bit(cudaStream_t s, float* out, const uint16_t* x, int64_t rows,
                             const WeightArgs& w, bool accumulate) {
  if (!gemm_4bit_fits(w)) return cudaErrorInvalidValue;
  return w.compute == ComputeDType::BF16
             ? launch_gemm_4bit<ComputeDType::BF16>(s, out, x, rows, w, accumulate)
             : launch_gemm_4bit<ComputeDType::F16>(s, out, x, rows, w, accumulate);
}

}  // namespace nibble::cuda
