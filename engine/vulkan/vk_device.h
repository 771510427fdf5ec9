// Vulkan instance, device discovery and the one logical device a backend runs on.
#pragma once
#include <volk.h>

#include <cstdint>
#include <string>
#include <vector>

namespace nibble::vk {

// Shared memory of shaders/matmul_coopmat.comp: 128x64 float16 x and weight tiles (rows padded by
// 16 bytes) and the 4-bit code tables.
constexpr uint32_t kCoopMatSharedBytes = 2 * 128 * 144 + (16 + 256) * 4;

struct Heap {
  uint64_t size = 0;
  bool device_local = false;
};

// What `nibble devices` prints and what the backend adapts to.
struct DeviceInfo {
  int index = 0;
  std::string name, type, driver, api_version;
  std::vector<Heap> heaps;
  std::string unusable;  // why nibble cannot run on it; empty when it can
  bool fp16_arithmetic = false, storage_8bit = false, storage_16bit = false;
  bool buffer_device_address = false, subgroup_arithmetic = false, subgroup_shuffle = false;
  bool timestamps = false, memory_budget = false;
  // Cooperative matrices (matrix units): any extension for them, each subgroup-scope shape and
  // type the device lists ("f16 16x16x16 -> f32 (KHR)"), whether it offers bfloat16 ones
  // (VK_KHR_shader_bfloat16), and whether the prefill GEMM's configuration is usable and enabled:
  // VK_NV_cooperative_matrix (the form Debian 12's glslang emits), float16 16x16x16 with float32
  // accumulation, subgroup size 32.
  bool cooperative_matrix = false, shader_bfloat16 = false, coopmat_f16 = false;
  std::vector<std::string> cooperative_matrix_shapes;
  uint32_t subgroup_size = 0, shared_memory = 0;
  uint32_t max_workgroup = 0;  // invocations of a 1-D workgroup at most
  // Streaming multiprocessors (VK_NV_shader_sm_builtins); 0 where the device does not say. The
  // prompt GEMM sizes its last wave by it.
  uint32_t multiprocessors = 0;
  uint64_t max_storage_buffer_range = 0, max_allocation = 0;
  float timestamp_period_ns = 0;
  int type_rank = 0;  // discrete 0 < integrated 1 < virtual 2 < CPU 3 < other 4

  std::string describe() const;  // multi-line, for `nibble devices`
};

// Whether a Vulkan loader (libvulkan.so.1) can be loaded at all.
bool loader_present();
// Every physical device of the loader. Throws nibble::Error when there is no Vulkan loader.
std::vector<DeviceInfo> list_devices();

// A logical device with one compute queue on the process-wide instance. Non-copyable; owns the
// device.
class Context {
 public:
  explicit Context(int device_index);  // -1: the best usable device
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  VkInstance instance = VK_NULL_HANDLE;
  VkPhysicalDevice physical = VK_NULL_HANDLE;
  VkDevice device = VK_NULL_HANDLE;
  VkQueue queue = VK_NULL_HANDLE;
  uint32_t queue_family = 0;
  DeviceInfo info;
  VkPhysicalDeviceMemoryProperties memory_properties{};
  // NIBBLE_VK_PIPELINE_STATS=1 on a driver with VK_KHR_pipeline_executable_properties: every
  // pipeline's compiled statistics (registers, shared memory, ...) are printed to stderr.
  bool pipeline_statistics = false;
};

}  // namespace nibble::vk
