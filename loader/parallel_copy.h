// memcpy over several threads, for the GPU quantizers (engine/vulkan/vk_quantizer.h,
// engine/cuda/quantizer.h) copying a weight from the mmap'd safetensors into staging memory: one
// thread reading the page cache through the mmap moves a fraction of what the machine can, and
// that copy is the load's critical path.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace nibble {

class ParallelCopy {
 public:
  // `threads` copy each call's bytes (the caller's included): threads - 1 workers wait between
  // calls. 0 counts as 1.
  explicit ParallelCopy(unsigned threads);
  ~ParallelCopy();
  ParallelCopy(const ParallelCopy&) = delete;
  ParallelCopy& operator=(const ParallelCopy&) = delete;

  // std::memcpy(dst, src, bytes), split into page-sized pieces, one per thread; returns when
  // every piece is copied. One call at a time.
  void copy(uint8_t* dst, const uint8_t* src, size_t bytes);

 private:
  void copy_piece(size_t i);
  void work(size_t index);

  std::vector<std::thread> workers_;
  std::mutex m_;
  std::condition_variable start_, done_;
  uint64_t generation_ = 0;
  size_t pending_ = 0;
  bool stop_ = false;
  uint8_t* dst_ = nullptr;
  const uint8_t* src_ = nullptr;
  size_t bytes_ = 0, piece_ = 0;
};

}  // namespace nibble
