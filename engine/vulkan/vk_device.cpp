#include "engine/vulkan/vk_device.h"

#include <algorithm>
#include <cstdlib>
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

// VK_KHR_cooperative_matrix postdates Debian 12's Vulkan headers (1.3.239): its properties
// struct and query, as the specification defines them.
constexpr auto kCoopMatPropertiesKHR = VkStructureType(1000506001);
constexpr uint32_t kComponentBFloat16 = 1000141000;  // VK_COMPONENT_TYPE_BFLOAT16_KHR
struct CoopMatPropertiesKHR {
  VkStructureType sType;
  void* pNext;
  uint32_t MSize, NSize, KSize;
  uint32_t AType, BType, CType, ResultType;
  VkBool32 saturatingAccumulation;
  uint32_t scope;
};
using GetCoopMatPropertiesKHR = VkResult(VKAPI_PTR*)(VkPhysicalDevice, uint32_t*,
                                                     CoopMatPropertiesKHR*);

std::string component_name(uint32_t type) {
  static const char* const names[] = {"f16", "f32", "f64", "s8",  "s16", "s32",
                                      "s64", "u8",  "u16", "u32", "u64"};
  if (type == kComponentBFloat16) return "bf16";
  return type < 11 ? names[type] : "type " + std::to_string(type);
}

std::string shape_name(uint32_t a, uint32_t b, uint32_t c, uint32_t result, uint32_t m, uint32_t n,
                       uint32_t k, const char* ext) {
  return component_name(a) + "*" + component_name(b) + "+" + component_name(c) + "->" +
         component_name(result) + " " + std::to_string(m) + "x" + std::to_string(n) + "x" +
         std::to_string(k) + " (" + ext + ")";
}

// Lists the subgroup-scope cooperative matrix configurations of both extensions into `d`, and
// sets d.coopmat_f16 when the prefill GEMM (shaders/matmul_coopmat.comp) can run.
void query_cooperative_matrix(VkPhysicalDevice pd, const std::vector<VkExtensionProperties>& exts,
                              const VkPhysicalDeviceVulkan12Features& f12, DeviceInfo& d) {
  const bool khr = has_extension(exts, "VK_KHR_cooperative_matrix");
  const bool nv = has_extension(exts, VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
  d.cooperative_matrix = khr || nv;
  d.shader_bfloat16 = has_extension(exts, "VK_KHR_shader_bfloat16");
  if (khr) {
    const auto get = reinterpret_cast<GetCoopMatPropertiesKHR>(vkGetInstanceProcAddr(
        shared_instance(), "vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR"));
    uint32_t n = 0;
    if (get && get(pd, &n, nullptr) == VK_SUCCESS) {
      std::vector<CoopMatPropertiesKHR> props(n, {kCoopMatPropertiesKHR});
      get(pd, &n, props.data());
      for (const auto& p : props)
        if (p.scope == VK_SCOPE_SUBGROUP_NV)
          d.cooperative_matrix_shapes.push_back(shape_name(p.AType, p.BType, p.CType, p.ResultType,
                                                           p.MSize, p.NSize, p.KSize, "KHR"));
    }
  }
  if (!nv || !vkGetPhysicalDeviceCooperativeMatrixPropertiesNV) return;
  uint32_t n = 0;
  vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, nullptr);
  std::vector<VkCooperativeMatrixPropertiesNV> props(
      n, {VK_STRUCTURE_TYPE_COOPERATIVE_MATRIX_PROPERTIES_NV});
  vkGetPhysicalDeviceCooperativeMatrixPropertiesNV(pd, &n, props.data());
  bool f16_16x16x16 = false;
  for (const auto& p : props) {
    if (p.scope != VK_SCOPE_SUBGROUP_NV) continue;
    d.cooperative_matrix_shapes.push_back(
        shape_name(p.AType, p.BType, p.CType, p.DType, p.MSize, p.NSize, p.KSize, "NV"));
    f16_16x16x16 |=
        p.MSize == 16 && p.NSize == 16 && p.KSize == 16 &&
        p.AType == VK_COMPONENT_TYPE_FLOAT16_NV && p.BType == VK_COMPONENT_TYPE_FLOAT16_NV &&
        p.CType == VK_COMPONENT_TYPE_FLOAT32_NV && p.DType == VK_COMPONENT_TYPE_FLOAT32_NV;
  }
  VkPhysicalDeviceCooperativeMatrixFeaturesNV features{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  VkPhysicalDeviceFeatures2 f2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, &features};
  vkGetPhysicalDeviceFeatures2(pd, &f2);
  VkPhysicalDeviceCooperativeMatrixPropertiesNV stages{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_PROPERTIES_NV};
  VkPhysicalDeviceProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &stages};
  vkGetPhysicalDeviceProperties2(pd, &p2);
  // NIBBLE_VK_NO_COOPMAT=1 keeps the tiled float32 fallback (tests, and chasing driver bugs).
  const char* off = std::getenv("NIBBLE_VK_NO_COOPMAT");
  d.coopmat_f16 = !(off && *off == '1') && f16_16x16x16 && features.cooperativeMatrix &&
                  f12.shaderFloat16 && f12.vulkanMemoryModel && d.subgroup_size == 32 &&
                  (stages.cooperativeMatrixSupportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
                  d.shared_memory >= kCoopMatSharedBytes;
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
  d.max_workgroup =
      std::min(p.limits.maxComputeWorkGroupInvocations, p.limits.maxComputeWorkGroupSize[0]);
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
  if (has_extension(exts, VK_NV_SHADER_SM_BUILTINS_EXTENSION_NAME)) {
    VkPhysicalDeviceShaderSMBuiltinsPropertiesNV sm{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_SM_BUILTINS_PROPERTIES_NV};
    VkPhysicalDeviceProperties2 props_sm{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, &sm};
    vkGetPhysicalDeviceProperties2(pd, &props_sm);
    d.multiprocessors = sm.shaderSMCount;
  }
  query_cooperative_matrix(pd, exts, f12, d);

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
    << (multiprocessors ? ", " + std::to_string(multiprocessors) + " multiprocessors" : "")
    << "\n    fp16 arithmetic " << yes(fp16_arithmetic) << ", 8-bit storage " << yes(storage_8bit)
    << ", 16-bit storage " << yes(storage_16bit) << ", buffer device address "
    << yes(buffer_device_address) << "\n    max storage buffer range "
    << mib(max_storage_buffer_range) << ", max allocation " << mib(max_allocation)
    << "\n    timestamps " << yes(timestamps) << ", memory budget " << yes(memory_budget)
    << ", cooperative matrix " << yes(cooperative_matrix) << ", bfloat16 shaders "
    << yes(shader_bfloat16) << "\n";
  if (!cooperative_matrix_shapes.empty()) {
    s << "    cooperative matrix shapes (A*B+C->D MxNxK):";
    for (size_t i = 0; i < cooperative_matrix_shapes.size(); ++i)
      s << (i % 4 ? ", " : "\n      ") << cooperative_matrix_shapes[i];
    s << "\n";
  }
  s << "    prefill matmul: "
    << (coopmat_f16 ? "cooperative matrix (float16 16x16x16, float32 accumulation)"
                    : "tiled float32 shader")
    << "\n";
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
  // The prefill GEMM's SPIR-V: float16 matrix components, the Vulkan memory model (its scopes).
  VkPhysicalDeviceCooperativeMatrixFeaturesNV coopmat{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_COOPERATIVE_MATRIX_FEATURES_NV};
  if (info.coopmat_f16) {
    coopmat.cooperativeMatrix = VK_TRUE;
    f12.pNext = &coopmat;
    f12.shaderFloat16 = VK_TRUE;
    f12.vulkanMemoryModel = VK_TRUE;
    extensions.push_back(VK_NV_COOPERATIVE_MATRIX_EXTENSION_NAME);
  }
  // A diagnostic: what the driver compiled (the register count bounds a kernel's occupancy).
  VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR executables{
      VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR};
  const char* stats = std::getenv("NIBBLE_VK_PIPELINE_STATS");
  if (stats && *stats == '1' &&
      has_extension(device_extensions(physical),
                    VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME)) {
    executables.pipelineExecutableInfo = VK_TRUE;
    executables.pNext = f12.pNext;
    f12.pNext = &executables;
    extensions.push_back(VK_KHR_PIPELINE_EXECUTABLE_PROPERTIES_EXTENSION_NAME);
    pipeline_statistics = true;
  }
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
