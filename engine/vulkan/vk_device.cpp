#include "engine/vulkan/vk_device.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <sstream>

#include "engine/error.h"
#include "engine/vulkan/vk_check.h"

namespace nibble::vk {

namespace {

void load_loader() {
  static std::once_flag once;
  static VkResult result = VK_SUCCESS;
  std::call_once(once, [] { result = volkInitialize(); });
  if (result != VK_SUCCESS)
    fail(
        "no Vulkan loader found (libvulkan.so.1); install one (e.g. Debian's libvulkan1) and a "
        "driver");
}

// The process's one VkInstance, created on first use and never destroyed: destroying the last
// instance unloads the driver, and NVIDIA's driver fails to load again after some dozens of such
// cycles in one process (vkCreateInstance returns VK_ERROR_INCOMPATIBLE_DRIVER).
VkInstance create_instance() {
  load_loader();
  if (volkGetInstanceVersion() < VK_API_VERSION_1_2)
    fail("the Vulkan loader is older than Vulkan 1.2");
  VkApplicationInfo app{VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "nibble";
  app.apiVersion = VK_API_VERSION_1_2;
  VkInstanceCreateInfo ci{VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  ci.pApplicationInfo = &app;
  VkInstance instance = VK_NULL_HANDLE;
  check(vkCreateInstance(&ci, nullptr, &instance), "vkCreateInstance");
  // Instance-level loading only: device calls go through the loader's trampolines, so several
  // backends on different devices can live in one process.
  volkLoadInstance(instance);
  return instance;
}

VkInstance shared_instance() {
  static std::mutex mutex;
  static VkInstance instance = VK_NULL_HANDLE;
  std::lock_guard lock(mutex);
  if (!instance) instance = create_instance();
  return instance;
}

std::string version_string(uint32_t v) {
  return std::to_string(VK_API_VERSION_MAJOR(v)) + "." + std::to_string(VK_API_VERSION_MINOR(v)) +
         "." + std::to_string(VK_API_VERSION_PATCH(v));
}

bool has_extension(const std::vector<VkExtensionProperties>& exts, const char* name) {
  return std::any_of(exts.begin(), exts.end(), [&](const VkExtensionProperties& e) {
    return std::strcmp(e.extensionName, name) == 0;
  });
}

std::vector<VkExtensionProperties> device_extensions(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, nullptr);
  std::vector<VkExtensionProperties> exts(n);
  vkEnumerateDeviceExtensionProperties(pd, nullptr, &n, exts.data());
  return exts;
}

int compute_queue_family(VkPhysicalDevice pd) {
  uint32_t n = 0;
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
  std::vector<VkQueueFamilyProperties> families(n);
  vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, families.data());
  for (uint32_t i = 0; i < n; ++i)
    if (families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) return int(i);
  return -1;
}

DeviceInfo query(VkPhysicalDevice pd, int index) {
  DeviceInfo d;
  d.index = index;
  VkPhysicalDeviceVulkan11Properties p11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_PROPERTIES};
  VkPhysicalDeviceVulkan12Properties p12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_PROPERTIES};
  VkPhysicalDeviceProperties2 props{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2};
  vkGetPhysicalDeviceProperties(pd, &props.properties);
  const VkPhysicalDeviceProperties& p = props.properties;
  d.name = p.deviceName;
  d.api_version = version_string(p.apiVersion);
  switch (p.deviceType) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU:
      d.type = "discrete GPU", d.type_rank = 0;
      break;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU:
      d.type = "integrated GPU", d.type_rank = 1;
      break;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU:
      d.type = "virtual GPU", d.type_rank = 2;
      break;
    case VK_PHYSICAL_DEVICE_TYPE_CPU:
      d.type = "CPU", d.type_rank = 3;
      break;
    default:
      d.type = "other", d.type_rank = 4;
  }
  d.max_storage_buffer_range = p.limits.maxStorageBufferRange;
  d.shared_memory = p.limits.maxComputeSharedMemorySize;
  d.timestamp_period_ns = p.limits.timestampPeriod;

  VkPhysicalDeviceMemoryProperties mem;
  vkGetPhysicalDeviceMemoryProperties(pd, &mem);
  for (uint32_t i = 0; i < mem.memoryHeapCount; ++i)
    d.heaps.push_back({mem.memoryHeaps[i].size,
                       (mem.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT) != 0});

  if (p.apiVersion < VK_API_VERSION_1_2) {
    d.unusable = "Vulkan " + d.api_version + " < 1.2";
    d.driver = "?";
    return d;
  }
  p11.pNext = &p12;
  props.pNext = &p11;
  vkGetPhysicalDeviceProperties2(pd, &props);
  d.driver = std::string(p12.driverName) + " " + p12.driverInfo;
  d.subgroup_size = p11.subgroupSize;
  const bool compute_subgroups = p11.subgroupSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT;
  d.subgroup_arithmetic =
      compute_subgroups && (p11.subgroupSupportedOperations & VK_SUBGROUP_FEATURE_ARITHMETIC_BIT);
  d.subgroup_shuffle =
      compute_subgroups && (p11.subgroupSupportedOperations & VK_SUBGROUP_FEATURE_SHUFFLE_BIT);

  VkPhysicalDeviceMaintenance3Properties m3{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MAINTENANCE_3_PROPERTIES};
  VkPhysicalDeviceProperties2 props_m3{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &m3};
  vkGetPhysicalDeviceProperties2(pd, &props_m3);
  d.max_allocation = m3.maxMemoryAllocationSize;

  VkPhysicalDeviceVulkan11Features f11{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES};
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  f11.pNext = &f12;
  VkPhysicalDeviceFeatures2 features{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &f11};
  vkGetPhysicalDeviceFeatures2(pd, &features);
  d.fp16_arithmetic = f12.shaderFloat16;
  d.storage_8bit = f12.storageBuffer8BitAccess;
  d.storage_16bit = f11.storageBuffer16BitAccess;
  d.buffer_device_address = f12.bufferDeviceAddress;

  const auto exts = device_extensions(pd);
  d.memory_budget = has_extension(exts, VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  d.cooperative_matrix = has_extension(exts, "VK_KHR_cooperative_matrix") ||
                         has_extension(exts, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);

  const int family = compute_queue_family(pd);
  if (family >= 0) {
    uint32_t n = 0;
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, nullptr);
    std::vector<VkQueueFamilyProperties> families(n);
    vkGetPhysicalDeviceQueueFamilyProperties(pd, &n, families.data());
    d.timestamps = families[size_t(family)].timestampValidBits > 0 && d.timestamp_period_ns > 0;
  }
  if (family < 0)
    d.unusable = "no compute queue";
  else if (!d.buffer_device_address)
    d.unusable = "no bufferDeviceAddress";
  return d;
}

std::vector<VkPhysicalDevice> physical_devices(VkInstance instance) {
  uint32_t n = 0;
  check(vkEnumeratePhysicalDevices(instance, &n, nullptr), "vkEnumeratePhysicalDevices");
  std::vector<VkPhysicalDevice> pds(n);
  check(vkEnumeratePhysicalDevices(instance, &n, pds.data()), "vkEnumeratePhysicalDevices");
  return pds;
}

std::string mib(uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB";
}

}  // namespace

std::string DeviceInfo::describe() const {
  std::ostringstream s;
  auto yes = [](bool b) { return b ? "yes" : "no"; };
  s << "[" << index << "] " << name << " (" << type << ")"
    << (unusable.empty() ? "" : "  UNUSABLE: " + unusable) << "\n    driver: " << driver
    << ", Vulkan " << api_version << "\n    heaps:";
  for (const Heap& h : heaps)
    s << " " << mib(h.size) << (h.device_local ? " (device-local)" : " (host)");
  s << "\n    subgroup size " << subgroup_size << " (arithmetic " << yes(subgroup_arithmetic)
    << ", shuffle " << yes(subgroup_shuffle) << "), shared memory " << shared_memory / 1024
    << " KiB"
    << "\n    fp16 arithmetic " << yes(fp16_arithmetic) << ", 8-bit storage " << yes(storage_8bit)
    << ", 16-bit storage " << yes(storage_16bit) << ", buffer device address "
    << yes(buffer_device_address) << "\n    max storage buffer range "
    << mib(max_storage_buffer_range) << ", max allocation " << mib(max_allocation)
    << "\n    timestamps " << yes(timestamps) << ", memory budget " << yes(memory_budget)
    << ", cooperative matrix " << yes(cooperative_matrix) << "\n";
  return s.str();
}

bool loader_present() {
  try {
    load_loader();
    return true;
  } catch (const Error&) {
    return false;
  }
}

std::vector<DeviceInfo> list_devices() {
  const auto pds = physical_devices(shared_instance());
  std::vector<DeviceInfo> out;
  for (size_t i = 0; i < pds.size(); ++i) out.push_back(query(pds[i], int(i)));
  return out;
}

Context::Context(int device_index) {
  instance = shared_instance();
  const auto pds = physical_devices(instance);
  if (pds.empty()) fail("no Vulkan device found (is a Vulkan driver installed?)");
  int chosen = -1;
  if (device_index >= 0) {
    if (device_index >= int(pds.size()))
      fail("Vulkan device " + std::to_string(device_index) + " does not exist (there are " +
           std::to_string(pds.size()) + "; see nibble devices)");
    info = query(pds[size_t(device_index)], device_index);
    if (!info.unusable.empty())
      fail("Vulkan device " + std::to_string(device_index) + " (" + info.name +
           ") cannot run nibble: " + info.unusable);
    chosen = device_index;
  } else {
    for (size_t i = 0; i < pds.size(); ++i) {
      DeviceInfo d = query(pds[i], int(i));
      if (d.unusable.empty() && (chosen < 0 || d.type_rank < info.type_rank)) {
        info = d;
        chosen = int(i);
      }
    }
    if (chosen < 0) fail("no usable Vulkan device (see nibble devices)");
  }
  physical = pds[size_t(chosen)];
  queue_family = uint32_t(compute_queue_family(physical));
  vkGetPhysicalDeviceMemoryProperties(physical, &memory_properties);

  const float priority = 1.0f;
  VkDeviceQueueCreateInfo qci{VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  qci.queueFamilyIndex = queue_family;
  qci.queueCount = 1;
  qci.pQueuePriorities = &priority;
  VkPhysicalDeviceVulkan12Features f12{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES};
  f12.bufferDeviceAddress = VK_TRUE;
  std::vector<const char*> extensions;
  if (info.memory_budget) extensions.push_back(VK_EXT_MEMORY_BUDGET_EXTENSION_NAME);
  VkDeviceCreateInfo dci{VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, &f12};
  dci.queueCreateInfoCount = 1;
  dci.pQueueCreateInfos = &qci;
  dci.enabledExtensionCount = uint32_t(extensions.size());
  dci.ppEnabledExtensionNames = extensions.data();
  check(vkCreateDevice(physical, &dci, nullptr, &device), "vkCreateDevice");
  vkGetDeviceQueue(device, queue_family, 0, &queue);
}

Context::~Context() {
  vkDestroyDevice(device, nullptr);
}

}  // namespace nibble::vk
