#include "engine/vulkan/vk_check.h"

#include <atomic>
#include <cstdlib>

#include "engine/error.h"
#include "engine/vulkan/device_lost.h"

namespace nibble::vk {

std::string result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS:
      return "VK_SUCCESS";
    case VK_TIMEOUT:
      return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY:
      return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY:
      return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED:
      return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST:
      return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED:
      return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT:
      return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT:
      return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT:
      return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER:
      return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS:
      return "VK_ERROR_TOO_MANY_OBJECTS";
    default:
      return "VkResult " + std::to_string(int(r));
  }
}

void check(VkResult r, const char* what) {
  if (r == VK_SUCCESS) return;
  if (r == VK_ERROR_DEVICE_LOST)
    throw DeviceLost(std::string("the Vulkan device was lost during ") + what +
                     " (GPU fault, driver reset or timeout); load the model again, or use the "
                     "CPU backend (--backend cpu)");
  if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
    fail(std::string("out of memory in ") + what + " (" + result_name(r) + ")");
  fail(std::string("Vulkan error in ") + what + ": " + result_name(r));
}

SimulatedDeviceLoss::SimulatedDeviceLoss() {
  const char* value = std::getenv("NIBBLE_VK_SIMULATE_DEVICE_LOSS");
  if (!value || !*value) return;
  char* end = nullptr;
  lose_at_ = std::strtol(value, &end, 10);
  if (*end != '\0' || lose_at_ < 1)
    fail(std::string("NIBBLE_VK_SIMULATE_DEVICE_LOSS must be a positive integer (the step wait "
                     "that loses the device), got '") +
         value + "'");
}

VkResult SimulatedDeviceLoss::after_wait(VkResult r, bool step) {
  // Counted over the process, so that the backend made by loading the model again (as after a
  // driver reset) is past the loss and healthy.
  static std::atomic<long> step_waits{0};
  if (r != VK_SUCCESS) return r;  // a real failure is reported as it is
  if (step && lose_at_ > 0 && ++step_waits == lose_at_) lost_ = true;
  return lost_ ? VK_ERROR_DEVICE_LOST : VK_SUCCESS;
}

}  // namespace nibble::vk
