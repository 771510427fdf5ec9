// VkResult checking: every failure becomes a nibble::Error naming the call, so a lost device or
// an exhausted heap ends the run with a message instead of a crash or a hang.
#pragma once
#include <volk.h>

#include <string>

namespace nibble::vk {

std::string result_name(VkResult r);
void check(VkResult r, const char* what);

// Fault injection, for tests: no device can be made to fail on demand, so a backend created while
// NIBBLE_VK_SIMULATE_DEVICE_LOSS=n is set reports VK_ERROR_DEVICE_LOST from its n-th wait for a
// submitted step on, and from every wait (step or transfer) after it, as a lost device does. The
// work itself still runs and is waited for, so nothing is torn down while the GPU uses it.
class SimulatedDeviceLoss {
 public:
  SimulatedDeviceLoss();  // reads the variable; a value that is not a positive integer is an error

  // What a fence wait returns as seen by the backend: `r` as the driver gave it, or
  // VK_ERROR_DEVICE_LOST once the simulated loss has happened. `step`: the wait was for a step.
  VkResult after_wait(VkResult r, bool step);

 private:
  long lose_at_ = 0;  // the step wait that loses the device; 0: never
  long step_waits_ = 0;
  bool lost_ = false;
};

}  // namespace nibble::vk
