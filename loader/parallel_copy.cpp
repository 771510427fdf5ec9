#include "loader/parallel_copy.h"

#include <algorithm>
#include <cstring>

namespace nibble {

ParallelCopy::ParallelCopy(unsigned threads) {
  for (unsigned i = 1; i < threads; ++i) workers_.emplace_back([this, i] { work(i); });
}

ParallelCopy::~ParallelCopy() {
  {
    std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ParallelCopy::copy(uint8_t* dst, const uint8_t* src, size_t bytes) {
  const size_t parts = workers_.size() + 1;
  {
    std::lock_guard<std::mutex> lock(m_);
    dst_ = dst;
    src_ = src;
    bytes_ = bytes;
    piece_ = ((bytes + parts - 1) / parts + 4095) / 4096 * 4096;  // whole pages
    pending_ = workers_.size();
    ++generation_;
  }
  start_.notify_all();
  copy_piece(0);
  std::unique_lock<std::mutex> lock(m_);
  done_.wait(lock, [&] { return pending_ == 0; });
}

void ParallelCopy::copy_piece(size_t i) {
  const size_t begin = std::min(bytes_, i * piece_), end = std::min(bytes_, begin + piece_);
  if (end > begin) std::memcpy(dst_ + begin, src_ + begin, end - begin);
}

void ParallelCopy::work(size_t index) {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m_);
      start_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    copy_piece(index);
    std::lock_guard<std::mutex> lock(m_);
    if (--pending_ == 0) done_.notify_one();
  }
}

}  // namespace nibble
