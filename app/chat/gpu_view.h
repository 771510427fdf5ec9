// The right column, what the device is doing: its name, a memory gauge (model, KV cache, the
// rest, against the budget), the per-layer time of the last step (attention and MLP), and
// tokens/s, live and per answer.
#pragma once
#include <cstdint>
#include <string>

#include "app/chat/renderer.h"
#include "app/chat/session.h"

namespace nibble::chat {

class GpuView {
 public:
  GpuView(std::string window_device, uint64_t window_device_memory)
      : window_device_(std::move(window_device)), window_device_memory_(window_device_memory) {}
  void draw(const Session& session, const Fonts& fonts);

 private:
  void draw_memory(const Session& session);
  void draw_layers(const Session& session);
  void draw_speed(const Session& session);

  std::string window_device_;
  uint64_t window_device_memory_ = 0;
};

}  // namespace nibble::chat
