// VkResult checking: every failure becomes a nibble::Error naming the call (a lost device a
// nibble::DeviceLost), so a lost device or an exhausted heap ends the run with a message instead
// of a crash or a hang.
#pragma once
#include <volk.h>

#include <string>

namespace nibble::vk {

std::string result_name(VkResult r);
void check(VkResult r, const char* what);

// Fault injection, for tests: no device can be made to fail on demand, so with
// NIBBLE_VK_SIMULATE_DEVICE_LOSS=n set, the process's n-th wait for a submitted step (counted over
// the Vulkan backends created while it is set) reports VK_ERROR_DEVICE_LOST, and that backend's
// every wait after it (step or transfer) does too, as on a lost device. Backends created after the
// loss are healthy, as after a driver reset: loading the model again recovers. The work itself
// still runs and is waited for, so nothing is torn down while the GPU uses it.
class SimulatedDeviceLoss {
 public:
  SimulatedDeviceLoss();  // reads the variable; a value that is not a positive integer is an error

  // What a fence wait returns as seen by the backend: `r` as the driver gave it, or
  // VK_ERROR_DEVICE_LOST once the simulated loss has happened. `step`: the wait was for a step.
  VkResult after_wait(VkResult r, bool step);

 private:
  long lose_at_ = 0;  // the step wait that loses the device; 0: never
  bool lost_ = false;
};

}  // namespace nibble::vk
