// The bitsandbytes encoder of loader/quantize.cpp as CUDA kernels, operation for operation in
// float32 so that the bytes are the host's: every product and sum is an explicit round-to-nearest
// intrinsic (nvcc would otherwise fuse a multiply and an add), subnormals are flushed exactly
// where the host flushes them (this file is built without -ftz), and the torch-order sum of the
// absmax keeps the host's summation tree (torch_cuda_mean).
#include <cstring>

#include "engine/cuda/quantizer.h"
#include "loader/quantize.h"
#include "loader/quantize_index.h"

namespace nibble::cuda {
namespace {

constexpr int kThreads = 256;  // the least threads per thread block of pass 1

// The tables of pass 1 (loader/quantize.h four_bit_thresholds, bnb_reciprocal_table), passed by
// value: small enough for the kernel's parameters, read from the constant bank.
struct Pass1Tables {
  uint32_t rcp[32];
  float nf4[15];
  float fp4[7];
  uint32_t fp4_index[8];
};
struct NestedTables {
  uint32_t rcp[32];
  float code[256];
};

__device__ float flush_subnormal(float v) {
  return fabsf(v) < 1.17549435e-38f ? 0.0f : v;  // the sign of a zero changes no index
}

__device__ bool non_finite(float v) {
  return (__float_as_uint(v) & 0x7f800000u) == 0x7f800000u;
}

// float16 bits -> float32 in integer arithmetic (exact for subnormal halves).
__device__ float f16_bits_to_f32(uint32_t h) {
  const uint32_t sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 31u) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0u) return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  const float v = __fmul_rn(float(mantissa), __uint_as_float(103u << 23));  // * 2^-24, exact
  return sign ? -v : v;
}

// bnb_reciprocal (loader/quantize.cpp), line for line: the correctly rounded 1/significand, the
// table's other neighbour where it says so, then the exponent.
__device__ float bnb_reciprocal(float absmax, const uint32_t* table) {
  const uint32_t bits = __float_as_uint(absmax);
  const int exponent = int((bits >> 23) & 0xffu);
  if (exponent == 0) return __uint_as_float(0x7f800000u);  // ftz: 1/0
  const uint32_t fraction = bits & 0x7fffffu;
  const float significand = __uint_as_float((127u << 23) | fraction);
  float unit = __frcp_rn(significand);
  if ((fraction & 0x1fffu) == 0u) {
    const uint32_t k = fraction >> 13;
    if ((table[k / 32] >> (k % 32)) & 1u)
      unit = nextafterf(unit, double(unit) > __drcp_rn(double(significand)) ? 0.0f : 2.0f);
  }
  const uint32_t unit_bits = __float_as_uint(unit);
  const int scaled_exponent = int(unit_bits >> 23) - (exponent - 127);
  if (scaled_exponent <= 0) return 0.0f;  // ftz: a subnormal result is +0
  return __uint_as_float((uint32_t(scaled_exponent) << 23) | (unit_bits & 0x7fffffu));
}

__device__ float scale_value(float x, float scale) {
  return flush_subnormal(__fmul_rn(x, scale));
}

// quantize_4bit_index: the thresholds x exceeds (ascending, strict), FP4's through its index map.
__device__ uint32_t code_index(float x, QuantType type, const Pass1Tables& t) {
  uint32_t exceeded = 0;
  if (type == QuantType::NF4) {
#pragma unroll
    for (int j = 0; j < 15; ++j) exceeded += x > t.nf4[j];
    return exceeded;
  }
  const float a = fabsf(x);
#pragma unroll
  for (int j = 0; j < 7; ++j) exceeded += a > t.fp4[j];
  return t.fp4_index[exceeded] + (x < 0.0f ? 8u : 0u);
}

// Threads per thread block of pass 1: a quantization block must fit in one (blocks of 4096 take
// 512), and at least 256.
__host__ __device__ constexpr int pass1_threads(int blocksize) {
  return blocksize / 8 > kThreads ? blocksize / 8 : kThreads;
}

// Pass 1: each thread takes 8 consecutive values (one packed word); the kBlock / 8 threads of a
// quantization block find its absmax, by shuffles within a warp or through shared memory.
template <DType kIn, int kBlock>
__global__ void __launch_bounds__(pass1_threads(kBlock))
    quantize_4bit_kernel(Pass1Args a, QuantType type, Pass1Tables tables) {
  constexpr uint32_t kGroup = kBlock / 8;  // threads per quantization block, a power of two
  __shared__ float block_max[kGroup > 32 ? pass1_threads(kBlock) : 1];
  const uint32_t t = threadIdx.x, e0 = (blockIdx.x * pass1_threads(kBlock) + t) * 8;
  float x[8];
  float amax = 0.0f;
  uint32_t bad = 0xffffffffu;
  const bool active = e0 < a.count;
  if (active) {
    const uint4* src = static_cast<const uint4*>(a.src);
    uint32_t w[8];
    if constexpr (kIn == DType::F32) {
      const uint4 u0 = src[e0 / 4], u1 = src[e0 / 4 + 1];
      const uint32_t v[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
      for (int i = 0; i < 8; ++i) w[i] = v[i];
    } else {
      const uint4 u = src[e0 / 8];
      const uint32_t v[4] = {u.x, u.y, u.z, u.w};
      for (int i = 0; i < 4; ++i) {
        w[2 * i] = v[i] & 0xffffu;
        w[2 * i + 1] = v[i] >> 16;
      }
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      if (e0 + i >= a.count) {
        x[i] = 0.0f;  // a partial last block is padded with zeros
        continue;
      }
      if constexpr (kIn == DType::F32)
        x[i] = __uint_as_float(w[i]);
      else if constexpr (kIn == DType::F16)
        x[i] = f16_bits_to_f32(w[i]);
      else
        x[i] = __uint_as_float(w[i] << 16);
      if (non_finite(x[i]))
        bad = min(bad, ((a.first + e0 + i) << 1) | ((__float_as_uint(x[i]) << 9) == 0u ? 1u : 0u));
      x[i] = flush_subnormal(x[i]);
      amax = fmaxf(amax, fabsf(x[i]));
    }
  }
  if (bad != 0xffffffffu) atomicMin(a.status, bad);

  // The block's absmax: a max is exact in any order.
  float absmax = amax;
  if constexpr (kGroup <= 32) {
    for (uint32_t s = kGroup / 2; s > 0; s >>= 1)
      absmax = fmaxf(absmax, __shfl_xor_sync(~0u, absmax, s));
  } else {
    block_max[t] = amax;
    __syncthreads();
    for (uint32_t s = kGroup / 2; s > 0; s >>= 1) {
      if ((t & (kGroup - 1)) < s) block_max[t] = fmaxf(block_max[t], block_max[t + s]);
      __syncthreads();
    }
    absmax = block_max[t & ~(kGroup - 1)];
  }
  if (!active) return;
  if ((t & (kGroup - 1)) == 0) a.absmax[e0 / kBlock] = absmax;
  // An all-zero block scales 0 by 1/0: NaN, which takes index 0.
  const float scale = bnb_reciprocal(absmax, tables.rcp);
  uint32_t word = 0;
#pragma unroll
  for (int j = 0; j < 4; ++j) {  // byte j: elements 2j (high nibble), 2j + 1
    const uint32_t hi =
        absmax == 0.0f ? 0u : code_index(scale_value(x[2 * j], scale), type, tables);
    const uint32_t lo =
        absmax == 0.0f ? 0u : code_index(scale_value(x[2 * j + 1], scale), type, tables);
    word |= ((hi << 4) | lo) << (8 * j);
  }
  a.packed[e0 / 8] = word;
}

// thread_sum of loader/quantize.cpp: what one lane of torch's reduction accumulates.
__device__ float lane_sum(const float* x, uint32_t n, bool vectorized, uint32_t first,
                          uint32_t stride, bool takes_tail) {
  float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
  if (vectorized) {
    uint32_t idx = first;
    for (; uint64_t(idx) * 4 + 3 < n; idx += stride)
      for (int i = 0; i < 4; ++i) acc[i] = __fadd_rn(acc[i], x[idx * 4 + i]);
    const uint32_t tail = n - n % 4 + first;  // lane t of block 0 takes element tail_start + t
    if (takes_tail && tail < n) acc[0] = __fadd_rn(acc[0], x[tail]);
  } else {
    uint32_t idx = first;
    for (; uint64_t(idx) + 3ull * stride < n; idx += stride * 4)
      for (int i = 0; i < 4; ++i) acc[i] = __fadd_rn(acc[i], x[idx + i * stride]);
    for (int i = 0; i < 4 && idx < n; ++i, idx += stride) acc[i] = __fadd_rn(acc[i], x[idx]);
  }
  return __fadd_rn(__fadd_rn(__fadd_rn(acc[0], acc[1]), acc[2]), acc[3]);
}

// block_reduce: halving through shared memory over `lanes` (a power of two, the block size).
__device__ float lanes_tree(float v, float* scratch) {
  const uint32_t t = threadIdx.x;
  scratch[t] = v;
  __syncthreads();
  for (uint32_t s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) scratch[t] = __fadd_rn(scratch[t], scratch[t + s]);
    __syncthreads();
  }
  return scratch[0];
}

// Phase 0: thread block b of `blocks` sums its lanes' strided values; phase 1 (one block): lane t
// sums the partial sums of blocks t, t + lanes, ... in order. The last phase writes the mean.
__global__ void __launch_bounds__(512)
    absmax_sum_kernel(const float* values, uint32_t n, bool vectorized, uint32_t blocks, int phase,
                      float* partial, float* offset, float inv_count) {
  __shared__ float scratch[512];
  const uint32_t t = threadIdx.x, lanes = blockDim.x;
  float v = 0.0f;
  if (phase == 0) {
    v = lane_sum(values, n, vectorized, t + blockIdx.x * lanes, lanes * blocks, blockIdx.x == 0);
  } else {
    for (uint32_t j = t; j < blocks; j += lanes) v = __fadd_rn(v, partial[j]);
  }
  const float sum = lanes_tree(v, scratch);
  if (t != 0) return;
  if (phase == 0 && blocks > 1)
    partial[blockIdx.x] = sum;
  else
    *offset = __fmul_rn(sum, inv_count);  // torch_mean_of_sum
}

// double_quantize: one thread block per nested block of 256 values.
__global__ void __launch_bounds__(kNestedBlocksize)
    quantize_nested_kernel(const float* absmax, uint32_t n, const float* offset, uint8_t* absmax_q,
                           float* nested_absmax, NestedTables tables) {
  __shared__ float scratch[kNestedBlocksize];
  const uint32_t t = threadIdx.x, i = blockIdx.x * kNestedBlocksize + t;
  const float c = i < n ? flush_subnormal(__fsub_rn(absmax[i], *offset)) : 0.0f;
  scratch[t] = fabsf(c);
  __syncthreads();
  for (uint32_t s = kNestedBlocksize / 2; s > 0; s >>= 1) {
    if (t < s) scratch[t] = fmaxf(scratch[t], scratch[t + s]);
    __syncthreads();
  }
  const float amax = scratch[0];
  if (t == 0) nested_absmax[blockIdx.x] = amax;
  if (i >= n) return;
  // An all-zero block scales 0 by 1/0: NaN, whose search ends at index 0.
  absmax_q[i] = amax == 0.0f ? 0u
                             : quantize_8bit_index_in(
                                   tables.code, scale_value(c, bnb_reciprocal(amax, tables.rcp)));
}

const Pass1Tables& pass1_tables() {
  static const Pass1Tables tables = [] {
    Pass1Tables t{};
    const FourBitThresholds& f = four_bit_thresholds();
    std::memcpy(t.rcp, bnb_reciprocal_table().data(), sizeof t.rcp);
    std::memcpy(t.nf4, f.nf4.data(), sizeof t.nf4);
    std::memcpy(t.fp4, f.fp4.data(), sizeof t.fp4);
    std::memcpy(t.fp4_index, f.fp4_index.data(), sizeof t.fp4_index);
    return t;
  }();
  return tables;
}

template <DType kIn, int kBlock>
void launch_pass1(cudaStream_t s, const Pass1Args& a, QuantType type) {
  constexpr uint32_t threads = pass1_threads(kBlock), per_block = threads * 8;
  quantize_4bit_kernel<kIn, kBlock>
      <<<(a.count + per_block - 1) / per_block, threads, 0, s>>>(a, type, pass1_tables());
}

template <DType kIn>
cudaError_t launch_pass1(cudaStream_t s, const Pass1Args& a, QuantType type) {
  switch (a.blocksize) {
    case 64:
      launch_pass1<kIn, 64>(s, a, type);
      break;
    case 128:
      launch_pass1<kIn, 128>(s, a, type);
      break;
    case 256:
      launch_pass1<kIn, 256>(s, a, type);
      break;
    case 512:
      launch_pass1<kIn, 512>(s, a, type);
      break;
    case 1024:
      launch_pass1<kIn, 1024>(s, a, type);
      break;
    case 2048:
      launch_pass1<kIn, 2048>(s, a, type);
      break;
    case 4096:
      launch_pass1<kIn, 4096>(s, a, type);
      break;
    default:
      return cudaErrorInvalidValue;
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_quantize_4bit(cudaStream_t s, const Pass1Args& a, DType input, QuantType type) {
  switch (input) {
    case DType::F32:
      return launch_pass1<DType::F32>(s, a, type);
    case DType::F16:
      return launch_pass1<DType::F16>(s, a, type);
    case DType::BF16:
      return launch_pass1<DType::BF16>(s, a, type);
    default:
      return cudaErrorInvalidValue;
  }
}

cudaError_t launch_absmax_mean(cudaStream_t s, const float* absmax, int64_t n, float* partial,
                               float* offset) {
  const TorchReduce r = torch_cuda_reduce(n);
  const float inv_count = 1.0f / float(n);  // torch_mean_of_sum's factor
  absmax_sum_kernel<<<uint32_t(r.blocks), uint32_t(r.lanes), 0, s>>>(
      absmax, uint32_t(n), r.vectorized, uint32_t(r.blocks), 0, partial, offset, inv_count);
  if (r.blocks > 1)
    absmax_sum_kernel<<<1, uint32_t(r.lanes), 0, s>>>(
        absmax, uint32_t(n), r.vectorized, uint32_t(r.blocks), 1, partial, offset, inv_count);
  return cudaGetLastError();
}

cudaError_t launch_quantize_nested(cudaStream_t s, const float* absmax, int64_t n,
                                   const float* offset, uint8_t* absmax_q, float* nested_absmax) {
  static const NestedTables tables = [] {
    NestedTables t{};
    std::memcpy(t.rcp, bnb_reciprocal_table().data(), sizeof t.rcp);
    std::memcpy(t.code, dynamic_map_signed().data(), sizeof t.code);
    return t;
  }();
  const uint32_t grid = uint32_t((n + kNestedBlocksize - 1) / kNestedBlocksize);
  quantize_nested_kernel<<<grid, kNestedBlocksize, 0, s>>>(absmax, uint32_t(n), offset, absmax_q,
                                                           nested_absmax, tables);
  return cudaGetLastError();
}

}  // namespace nibble::cuda
