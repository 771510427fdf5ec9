// Per-dispatch GPU times for finding where a step's time goes, behind NIBBLE_VK_OP_TIMES=1:
// a timestamp after every dispatch, summed per label over all steps, printed to stderr when the
// backend is destroyed. Diagnostic only; the per-layer timing of --stats is Backend::step_times.
#pragma once
#include <volk.h>

#include <map>
#include <string>
#include <vector>

#include "engine/vulkan/vk_device.h"
#include "engine/vulkan/vk_step_commands.h"

namespace nibble::vk {

class OpTimer {
 public:
  explicit OpTimer(const Context& ctx);
  ~OpTimer();
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

  bool enabled() const { return pool_ != VK_NULL_HANDLE; }
  // Timestamps go into the step's command list, so a replayed step times itself again.
  void begin_step(StepCommands& step);
  void after(StepCommands& step, const std::string& label);  // after a dispatch
  // The last timed dispatch, recorded again as another (a decode norm folded into it).
  void relabel_last(const std::string& label);
  void collect();  // once the step's fence has signalled

 private:
  struct Total {
    double ms = 0;
    long calls = 0;
  };
  const Context& ctx_;
  VkQueryPool pool_ = VK_NULL_HANDLE;
  std::vector<std::string> labels_;  // of the recorded step
  std::map<std::string, Total> totals_;
  long steps_ = 0;
};

}  // namespace nibble::vk
