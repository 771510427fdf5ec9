// Quantizing on the GPU while loading (the CUDA counterpart of engine/vulkan/vk_quantizer.h): a
// 16/32-bit weight streams from the mmap through a ring of pinned staging buffers (filled by
// several copy threads), cudaMemcpyAsync moves each chunk to the device on a copy stream, and
// quantize.cu turns it into bitsandbytes' packed 4-bit codes and absmax in the weight's device
// allocation, then, with double quantization, sums the absmax in torch's order and quantizes it
// again. Only the 4-bit result stays on the device; the bytes are those of quantize_4bit
// (loader/quantize.h).
//
// Nothing waits per chunk: the host copies chunk i + 1 while the device copies and quantizes
// chunk i, and nothing waits per weight either: a weight's offset and inf/NaN check are read
// back once, in finish().
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/kernels.h"
#include "engine/weights.h"

namespace nibble {
class ParallelCopy;  // loader/parallel_copy.h
}  // namespace nibble

namespace nibble::cuda {

// Byte offsets of a 4-bit weight's parts in its one device allocation, each 256-byte aligned:
// codes | code table (16) | absmax (float32, or u8 when nested) | nested absmax | nested code
// (256).
struct QuantLayout {
  size_t code_at = 0, absmax_at = 0, nested_absmax_at = 0, nested_code_at = 0, bytes = 0;
};
QuantLayout quant_layout(int64_t numel, int blocksize, bool nested, int nested_blocksize);
// Points `a`'s 4-bit fields at the parts of the allocation `p` laid out as `at`.
void point_at(WeightArgs& a, char* p, const QuantLayout& at, int blocksize, bool nested,
              int nested_blocksize);

// The kernels of quantize.cu (launchers enqueue on `s` and return the launch's error).
struct Pass1Args {
  const void* src;   // the chunk's values (device memory), 16-byte aligned
  uint32_t* packed;  // the chunk's first packed word
  float* absmax;     // the chunk's first block's absmax
  uint32_t* status;  // the lowest inf/NaN as 2 * element + (1 if inf), by atomicMin
  uint32_t count;    // elements in the chunk
  uint32_t first;    // the chunk's first element in the weight (a multiple of the blocksize)
  uint32_t blocksize;
};
cudaError_t launch_quantize_4bit(cudaStream_t s, const Pass1Args& a, DType input, QuantType type);
// The float32 mean of `n` absmax values summed in torch's CUDA order (torch_cuda_mean), into
// `*offset`; `partial` holds torch_cuda_reduce(n).blocks floats.
cudaError_t launch_absmax_mean(cudaStream_t s, const float* absmax, int64_t n, float* partial,
                               float* offset);
// double_quantize (loader/quantize.cpp): absmax - *offset to 8-bit indices, per 256 values.
cudaError_t launch_quantize_nested(cudaStream_t s, const float* absmax, int64_t n,
                                   const float* offset, uint8_t* absmax_q, float* nested_absmax);

class Quantizer {
 public:
  // Quantizes on `stream` (the backend's: its later kernels run after); `chunk_bytes` per
  // staging slot (tests pass small ones to cross many chunk boundaries).
  explicit Quantizer(cudaStream_t stream, size_t chunk_bytes = size_t(16) << 20,
                     unsigned copy_threads = 0);
  ~Quantizer();  // after the stream is idle
  Quantizer(const Quantizer&) = delete;
  Quantizer& operator=(const Quantizer&) = delete;

  // Whether the GPU path takes `w` to `spec`: F32/F16/BF16 values, a power-of-two blocksize of
  // 64..4096 and fewer than 2^31 elements (vk::Quantizer::supports). The rest stays on the host.
  static bool supports(const HostWeight& w, const QuantSpec& spec);

  // Starts quantizing `w` into `dst` (device memory laid out as quant_layout). Returns once its
  // values are staged (`w.data` is not read after). With double quantization, `set_offset`
  // receives the offset in finish().
  void quantize(const HostWeight& w, const QuantSpec& spec, char* dst,
                std::function<void(float)> set_offset);
  // Waits for every weight, reports the first inf/NaN as the CPU quantizer does (naming the
  // tensor and element), hands out the offsets, and frees the staging and scratch memory.
  void finish();

 private:
  struct Pending;

  void start();
  void drain();  // waits, checks and completes the pending weights
  float* scratch(size_t floats);
  void release();

  cudaStream_t stream_, copy_stream_ = nullptr;
  size_t chunk_bytes_;
  unsigned copy_threads_;
  bool started_ = false;
  std::vector<uint8_t*> pinned_;            // the staging ring, host side
  std::vector<void*> device_slots_;         // and its device side
  std::vector<cudaEvent_t> copied_, used_;  // per slot: its upload done, its kernel done
  size_t next_slot_ = 0;
  void* tables_ = nullptr;        // the 16 NF4, 16 FP4 and 256 nested codes
  uint32_t* results_ = nullptr;   // per pending weight {status, offset bits}, device
  uint32_t* readback_ = nullptr;  // and pinned host
  float* scratch_ = nullptr;      // float32 absmax and partial sums of double quantization
  size_t scratch_floats_ = 0;
  std::vector<Pending> pending_;
  std::unique_ptr<ParallelCopy> copier_;
};

}  // namespace nibble::cuda
