// nibble devices: every device nibble can run on, with the features the Vulkan backend adapts to.
#include <iostream>

#include "app/nibble/command.h"
#include "engine/error.h"
#include "engine/make_backend.h"
#ifdef NIBBLE_HAVE_VULKAN
#include "engine/vulkan/vk_device.h"
#endif

namespace nibble::cli {
namespace {

int run_devices(Args& args) {
  args.finish();
  std::cout << "backends built in:";
  for (const std::string& name : available_backends()) std::cout << " " << name;
  std::cout << "\n";
#ifdef NIBBLE_HAVE_VULKAN
  std::vector<vk::DeviceInfo> devices;
  try {
    devices = vk::list_devices();
  } catch (const Error& e) {
    std::cout << "\nvulkan: " << e.what() << "\n";
    return 0;
  }
  std::cout << "\nvulkan devices (--device N picks one; default: discrete > integrated > CPU):\n";
  if (devices.empty()) std::cout << "  none (is a Vulkan driver installed?)\n";
  for (const vk::DeviceInfo& d : devices) std::cout << d.describe();
#endif
  return 0;
}

const RegisterCommand reg(
    {"devices", "list the GPUs and backends nibble can use",
     "usage: nibble devices\n\n"
     "Lists the backends built into this nibble and every Vulkan device with\n"
     "its type, driver, memory heaps and the features nibble uses.\n",
     run_devices});

}  // namespace
}  // namespace nibble::cli
