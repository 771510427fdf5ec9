// Device helpers shared by the kernels: reading one weight element exactly as the CPU reference
// does (engine/quant.cpp dequantize + round_to), operand rounding, and warp/block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <utility>

#include "engine/cuda/kernels.h"

namespace nibble::cuda {

__device__ __forceinline__ bool is_4bit(const WeightArgs& w) {
  return w.dtype == DType::NF4 || w.dtype == DType::FP4;
}

// Round to the nearest compute-dtype value (round-to-nearest-even, as the CPU's round_to).
template <ComputeDType C>
__device__ __forceinline__ float round_operand(float v) {
  if constexpr (C == ComputeDType::F16) return __half2float(__float2half_rn(v));
  if constexpr (C == ComputeDType::BF16) return __bfloat162float(__float2bfloat16_rn(v));
  return v;
}
__device__ __forceinline__ float round_operand(ComputeDType c, float v) {
  switch (c) {
    case ComputeDType::F16:
      return round_operand<ComputeDType::F16>(v);
    case ComputeDType::BF16:
      return round_operand<ComputeDType::BF16>(v);
    default:
      return v;
  }
}

// Two values rounded at once: one packed conversion instead of two (type conversions run at a
// fraction of the FMA rate, and the 4-bit GEMM rounds every weight it reads).
template <ComputeDType C>
__device__ __forceinline__ float2 round_pair(float a, float b) {
  if constexpr (C == ComputeDType::F16) return __half22float2(__floats2half2_rn(a, b));
  if constexpr (C == ComputeDType::BF16) return __bfloat1622float2(__floats2bfloat162_rn(a, b));
  return make_float2(a, b);
}

// Two values as one word of 16-bit compute-dtype bits (a product's operands), `lo` in the low
// half (the lower k).
template <ComputeDType C>
__device__ __forceinline__ uint32_t pack_operands(float lo, float hi) {
  if constexpr (C == ComputeDType::BF16) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}
// One operand's bits (C: F16 or BF16), rounded to nearest even.
__device__ __forceinline__ uint16_t operand_bits(ComputeDType c, float v) {
  return c == ComputeDType::BF16 ? __bfloat16_as_ushort(__float2bfloat16_rn(v))
                                 : __half_as_ushort(__float2half_rn(v));
}
template <ComputeDType C>
__device__ __forceinline__ float2 unpack_operands(uint32_t u) {
  if constexpr (C == ComputeDType::BF16)
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
  else
    return __half22float2(*reinterpret_cast<const __half2*>(&u));
}

// The code tables of a 4-bit weight, copied to shared memory at the start of a kernel.
struct CodeTables {
  float code[16];
  float nested_code[256];
};
__device__ __forceinline__ void copy_code_tables(const WeightArgs& w, CodeTables& t) {
  if (is_4bit(w)) {
    for (int i = threadIdx.x; i < 16; i += blockDim.x) t.code[i] = w.code[i];
    if (w.nested)
      for (int i = threadIdx.x; i < 256; i += blockDim.x) t.nested_code[i] = w.nested_code[i];
  }
}
// Every thread of the block must call this (it synchronizes).
__device__ __forceinline__ void load_code_tables(const WeightArgs& w, CodeTables& t) {
  copy_code_tables(w, t);
  __syncthreads();
}

// absmax of quantization block b, in two steps so that the loads can be issued long before the
// code table is at hand. The explicit _rn operations keep nvcc from fusing them into an FMA, so
// the value is bit-identical to QuantState::block_absmax.
struct AbsmaxLoad {
  float scale;  // absmax, or the nested absmax
  uint32_t q;   // the 8-bit absmax code (double quantization)
};
__device__ __forceinline__ AbsmaxLoad load_absmax(const WeightArgs& w, int64_t b) {
  if (!w.nested) return {w.absmax[b], 0};
  return {w.nested_absmax[b >> w.nested_shift], w.absmax_q[b]};
}
__device__ __forceinline__ float decode_absmax(const WeightArgs& w, const float* nested_code,
                                               AbsmaxLoad a) {
  return w.nested ? __fadd_rn(__fmul_rn(nested_code[a.q], a.scale), w.offset) : a.scale;
}

__device__ __forceinline__ float block_absmax(const WeightArgs& w, const float* nested_code,
                                              int64_t b) {
  return decode_absmax(w, nested_code, load_absmax(w, b));
}

// Flattened element e of a weight as float32, rounded to the compute dtype for 4-bit weights
// when `round` (a matmul's operand; the one-row GEMV keeps them float32, see matmul.cu).
// `code`/`nested_code` point at the tables (shared memory in hot kernels, global otherwise).
__device__ __forceinline__ float weight_at(const WeightArgs& w, const float* code,
                                           const float* nested_code, int64_t e, bool round = true) {
  switch (w.dtype) {
    case DType::F32:
      return static_cast<const float*>(w.data)[e];
    case DType::F16:
      return __half2float(static_cast<const __half*>(w.data)[e]);
    case DType::BF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(w.data)[e]);
    default: {
      const uint8_t byte = static_cast<const uint8_t*>(w.data)[e >> 1];
      const int q = (e & 1) ? (byte & 0x0f) : (byte >> 4);  // even element in the high nibble
      const float v = __fmul_rn(code[q], block_absmax(w, nested_code, e >> w.block_shift));
      return round ? round_operand(w.compute, v) : v;
    }
  }
}

// RoPE: the pair (a, b) = (x[i], x[i + head_dim / 2]) of a head rotated by `angle` = position *
// inv_freq[i], as the CPU's rope.
__device__ __forceinline__ float2 rotated_pair(float a, float b, float angle) {
  float s, c;
  sincosf(angle, &s, &c);
  return make_float2(a * c - b * s, b * c + a * s);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum/max over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result.
template <bool kMax>
__device__ __forceinline__ float block_reduce(float v) {
  __shared__ float partial[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = kMax ? warp_max(v) : warp_sum(v);
  __syncthreads();  // `partial` may still be read by a previous reduction
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = lane < warps ? partial[lane] : (kMax ? -INFINITY : 0.0f);
  return kMax ? warp_max(v) : warp_sum(v);
}

// Programmatic dependent launch (compute capability 9.0 and up; the backend sets
// `programmatic_launch` where the device has it): a kernel may start while the kernel before it
// in the stream finishes, so that its launch and prologue (a GEMV's first weight loads) overlap
// that kernel's tail, as Vulkan dispatches without a barrier between them overlap. Every kernel
// calls allow_dependents() first, so that the next kernel's blocks may launch once all of its own
// have, and wait_for_inputs() before it reads anything an earlier kernel wrote or writes anything
// one reads: griddepcontrol.wait returns once the kernel before has completed and its writes are
// visible, and that kernel waited for its own predecessor, so the order is kept transitively.
inline bool programmatic_launch = false;

__device__ __forceinline__ void allow_dependents() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
__device__ __forceinline__ void wait_for_inputs() {
#if __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

// Asks for the 128-byte lines of [p, p + bytes) ahead of their loads, one line per thread of
// the block at a time: into this SM's L1 cache (kL1; only for data that no kernel of the step
// writes, as the L1 caches are not coherent), else into the L2 cache. Kernels issue it before
// wait_for_inputs for what they will read, so that its way from memory overlaps the kernel
// before.
template <bool kL1>
__device__ __forceinline__ void prefetch_line(const void* p) {
  if constexpr (kL1)
    asm volatile("prefetch.global.L1 [%0];" ::"l"(p));
  else
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
template <bool kL1>
__device__ __forceinline__ void prefetch_lines(const void* p, int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (int64_t o = int64_t(threadIdx.x) * 128; o < bytes; o += int64_t(blockDim.x) * 128)
    prefetch_line<kL1>(c + o);
}

// Launches `kernel` on stream `s`, programmatically dependent on the kernel before it where the
// device allows; returns the launch's error.
template <class... Params, class... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, cudaStream_t s,
                   Args&&... args) {
  cudaLaunchAttribute attribute{};
  attribute.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attribute.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t config{};
  config.gridDim = grid;
  config.blockDim = block;
  config.stream = s;
  config.attrs = &attribute;
  config.numAttrs = programmatic_launch ? 1 : 0;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

inline unsigned blocks_for(int64_t n, int threads) {
  return unsigned((n + threads - 1) / threads);
}

}  // namespace nibble::cuda
