// Quantizing on the GPU while loading: a 16/32-bit weight streams from the mmap through a ring of
// host-visible staging buffers (copied by several threads), shaders/quantize_4bit.comp turns each
// chunk into bitsandbytes' packed 4-bit codes and absmax in the weight's device allocation, and,
// with double quantization, quantize_sum.comp and quantize_nested.comp finish the absmax. Only
// the 4-bit result stays on the device; the bytes are those of quantize_4bit (loader/quantize.h).
//
// Nothing waits per chunk: the host copies chunk i + 1 while the device quantizes chunk i, and a
// weight's last step (its offset, its inf/NaN check) completes while the next weight streams in.
#pragma once
#include <volk.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "engine/vulkan/vk_device.h"
#include "engine/vulkan/vk_memory.h"
#include "engine/vulkan/vk_pipelines.h"
#include "engine/weights.h"

namespace nibble {
class ParallelCopy;  // loader/parallel_copy.h
}  // namespace nibble

namespace nibble::vk {

// Byte offsets of the parts of a 4-bit weight in its one device allocation: packed codes |
// absmax (float32, or u8 when double-quantized) | nested absmax (float32) | code tables (the 16
// codes, then the 256 nested ones), each part 4-byte aligned; `bytes` in all.
struct QuantLayout {
  uint32_t absmax_at = 0, nested_at = 0, code_at = 0, bytes = 0;
};
QuantLayout quant_layout(size_t packed_bytes, size_t absmax_bytes, size_t nested_bytes,
                         size_t code_floats);
// The layout of `numel` values quantized to `spec` (the sizes quantize_4bit produces).
QuantLayout quant_layout(int64_t numel, const QuantSpec& spec);

class Quantizer {
 public:
  // `copy_threads` copy each chunk from the mmap; 0: half the hardware threads, at most 8.
  Quantizer(const Context& ctx, Memory& memory, Pipelines& pipelines, unsigned copy_threads = 0);
  ~Quantizer();  // after the device is idle
  Quantizer(const Quantizer&) = delete;
  Quantizer& operator=(const Quantizer&) = delete;

  // Whether the GPU path takes `w` to `spec`: F32/F16/BF16 values, a power-of-two blocksize of
  // 64..4096 (QuantConfig's range) and fewer than 2^31 elements. The rest is quantized on the host.
  static bool supports(const HostWeight& w, const QuantSpec& spec);

  // Starts quantizing `w` into `dst`, laid out as quant_layout(numel, spec). Returns once its
  // values are staged (`w.data` is not read after). With double quantization, `set_offset`
  // receives the offset before finish() returns.
  void quantize(const HostWeight& w, const QuantSpec& spec, const Allocation& dst,
                std::function<void(float)> set_offset);
  // Waits for every weight, reports the first inf/NaN as the CPU quantizer does (naming the
  // tensor and element), and frees the staging ring, scratch memory and copy threads.
  void finish();

 private:
  struct Slot;
  struct Record;

  void start();
  Slot& acquire();  // the next ring slot, once its last submission is done; recording begun
  void submit(Slot& s);
  void wait(Slot& s);
  bool done(uint64_t submission);      // without waiting
  void wait_for(uint64_t submission);  // until done
  Record& free_record();
  // Completes the weights whose pass 1 is done (all, or all but the newest): checks for inf/NaN
  // and, with double quantization, takes the mean and submits the nested pass.
  void retire(bool keep_newest);
  void ensure_scratch(Record& r, VkDeviceSize bytes);
  void record_pass1(Record& r, VkCommandBuffer cmd, const Slot& s, int64_t first, int64_t count);
  void record_sum(Record& r, VkCommandBuffer cmd);
  void fail_non_finite(const Record& r, uint32_t status);
  void release();  // every staging and scratch allocation, the copy threads

  const Context& ctx_;
  Memory& memory_;
  Pipelines& pipelines_;
  VkCommandPool pool_ = VK_NULL_HANDLE;
  std::vector<Slot> slots_;
  std::vector<Record> records_;
  size_t next_slot_ = 0;
  uint64_t submitted_ = 0, sequence_ = 0;
  unsigned copy_threads_;
  bool started_ = false;
  Allocation staging_, constants_;
  std::unique_ptr<ParallelCopy> copier_;
};

}  // namespace nibble::vk
