// The CUDA kernels' launchers: plain C++ functions over device pointers, so that the backend
// (cuda_backend.cpp) is ordinary C++ and only the .cu files go through nvcc. Every launcher
// enqueues on `stream` and returns the launch's error without waiting for the kernel.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "engine/backend.h"

namespace nibble::cuda {

// A weight as the kernels read it: 16/32-bit values, or packed 4-bit codes with their
// bitsandbytes quantization state (double-quantized absmax is decoded in the kernels).
struct WeightArgs {
  DType dtype = DType::F32;  // F32, F16, BF16, NF4 or FP4
  int64_t rows = 0, cols = 0;
  const void* data = nullptr;  // values, or codes (even element in the high nibble)
  // 4-bit only.
  ComputeDType compute = ComputeDType::F32;  // F32 for 16/32-bit weights: no operand rounding
  int block_shift = 6;  // blocksize = 1 << block_shift (bitsandbytes' are powers of two)
  bool nested = false;
  int nested_shift = 8;  // nested blocksize = 1 << nested_shift
  float offset = 0.0f;
  const float* code = nullptr;           // 16 values
  const float* absmax = nullptr;         // per block, without double quantization
  const uint8_t* absmax_q = nullptr;     // per block, with double quantization
  const float* nested_absmax = nullptr;  // per nested block
  const float* nested_code = nullptr;    // 256 values
};

// The step state the kernels read from device memory (so a captured graph can be replayed at
// a new position): int32 {pos0, n_tokens, the bits of the float draw u of a sample op}.
using StepPtr = const int32_t*;

// Whether kernels launch programmatically dependent on the kernel before them (device_math.cuh
// `launch`): the backend turns it on for its decode steps on devices of compute capability 9.0
// and up. Process-wide: a step's launches follow its begin_step.
void set_programmatic_launch(bool on);

cudaError_t launch_embed(cudaStream_t s, float* out, int64_t rows, const WeightArgs& table,
                         const int32_t* ids);
// With `operands` (and a 16-bit compute dtype), the output also as the next products' operands
// (launch_operands' form), which spares them rounding x.
cudaError_t launch_rms_norm(cudaStream_t s, float* out, const float* x, int64_t rows,
                            const WeightArgs& weight, float eps, uint16_t* operands = nullptr,
                            ComputeDType compute = ComputeDType::F32);
// out[rows, w.rows] = round(x)[rows, w.cols] · round(w)ᵀ: a GEMV for one row, a tiled GEMM else.
cudaError_t launch_matmul(cudaStream_t s, float* out, const float* x, int64_t rows,
                          const WeightArgs& w);
// One token times 4-bit weights of x's width and compute dtype in one launch (q, k and v; gate
// and up): out = x · wᵀ for each (kStore), or out += x · wᵀ (kAdd). Only for weights that
// gemv_4bit_fits; launch_matmul takes the others. (The SwiGLU in the store lost against a
// kernel of its own: docs/PERF.md, "Decode", session 13.)
constexpr size_t kMaxGemvTargets = 3;
struct GemvTarget {
  WeightArgs w;
  float* out;
};
enum class GemvEpilogue { kStore, kAdd };
bool gemv_4bit_fits(const float* x, const WeightArgs& w);
// x16: x's operands (written by launch_rms_norm, launch_swiglu or an attention), read instead of
// x where given (16-bit compute only).
cudaError_t launch_gemv_4bit(cudaStream_t s, const float* x, const uint16_t* x16,
                             const GemvTarget* targets, size_t count, GemvEpilogue epilogue);
// Several tokens times a 4-bit weight of 16-bit compute dtype on the tensor cores (gemm_4bit.cu):
// out = x16 · wᵀ, or out += x16 · wᵀ with `accumulate`; x16 holds x's rows already rounded to
// w.compute, as launch_operands writes them. Only for weights that gemm_4bit_fits;
// launch_matmul takes the others.
bool gemm_4bit_fits(const WeightArgs& w);
cudaError_t launch_operands(cudaStream_t s, uint16_t* out, const float* x, int64_t n,
                            ComputeDType compute);  // n a multiple of 8
cudaError_t launch_gemm_4bit(cudaStream_t s, float* out, const uint16_t* x16, int64_t rows,
                             const WeightArgs& w, bool accumulate);
cudaError_t launch_rope(cudaStream_t s, float* x, int64_t rows, int64_t cols, int n_heads,
                        int head_dim, const float* inv_freq, StepPtr step);
// launch_rope on q (n_heads) and k (n_kv_heads, which fill its rows: kv_cols = n_kv_heads *
// head_dim), then launch_kv_store of k and v, in one launch.
struct RopeKvShape {
  int64_t rows, q_cols, kv_cols;
  int n_heads, n_kv_heads, head_dim;
};
cudaError_t launch_rope_kv_store(cudaStream_t s, float* q, float* k, const float* v,
                                 uint16_t* k_cache, uint16_t* v_cache, const RopeKvShape& shape,
                                 const float* inv_freq, StepPtr step);
// Stores rows of k and v (F32) as F16 at cache rows pos0 + r.
cudaError_t launch_kv_store(cudaStream_t s, uint16_t* k_cache, uint16_t* v_cache, const float* k,
                            const float* v, int64_t rows, int64_t cols, StepPtr step);

// Floats of scratch for `max_keys` keys (the most any query of the step can see); `counts`:
// rows * n_heads words, zero before the first launch (each launch leaves them zero). Both
// attentions write, with `operands` (shape.compute 16-bit), the output also as the o
// projection's operands.
// With `rope` (one query row, and attention_rows_wide), q, rope->k and rope->v are the
// products' rows before RoPE: the launch also rotates q and k and stores k and v in the caches
// (launch_rope_kv_store and then launch_attention, in one launch; q and k are left as they were).
struct AttentionRope {
  const float *k, *v, *inv_freq;
  uint16_t *k_cache, *v_cache;  // the caches the attention reads, written at the new position
};
// Whether every head's cache rows start 16-byte aligned (the attention's wide loads).
bool attention_rows_wide(int64_t kv_cols, const AttentionShape& shape);
int64_t attention_scratch_floats(int64_t rows, const AttentionShape& shape, int64_t max_keys);
cudaError_t launch_attention(cudaStream_t s, float* out, const float* q, int64_t rows,
                             int64_t q_cols, const uint16_t* k_cache, const uint16_t* v_cache,
                             int64_t kv_cols, const AttentionShape& shape, int64_t max_keys,
                             float* scratch, unsigned* counts, StepPtr step,
                             uint16_t* operands = nullptr, const AttentionRope* rope = nullptr);

// A prompt's attention on the tensor cores (attention_prompt.cu): for a 16-bit compute dtype, at
// least 512 query rows x heads, heads of a multiple of 16 up to 128 wide; q and the probabilities
// rounded to float16.
bool attention_prompt_fits(int64_t rows, int64_t q_cols, int64_t kv_cols,
                           const AttentionShape& shape);
cudaError_t launch_attention_prompt(cudaStream_t s, float* out, const float* q, int64_t rows,
                                    int64_t q_cols, const uint16_t* k_cache,
                                    const uint16_t* v_cache, int64_t kv_cols,
                                    const AttentionShape& shape, StepPtr step,
                                    uint16_t* operands = nullptr);

// With `operands` (16-bit compute), the output also as the next product's operands.
cudaError_t launch_swiglu(cudaStream_t s, float* out, const float* gate, const float* up, int64_t n,
                          uint16_t* operands = nullptr, ComputeDType compute = ComputeDType::F32);
cudaError_t launch_add(cudaStream_t s, float* x, const float* y, int64_t n);
// ids[0] = engine/sampler.h draw_token of one row of logits, with the step's draw (sample.cu).
cudaError_t launch_sample(cudaStream_t s, int32_t* ids, const float* logits, int64_t cols,
                          StepPtr step, float temperature, int top_k, float top_p, float min_p);
cudaError_t launch_argmax(cudaStream_t s, int32_t* ids, const float* logits, int64_t rows,
                          int64_t cols);

}  // namespace nibble::cuda
