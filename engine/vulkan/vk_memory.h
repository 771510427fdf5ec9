// Buffers for tensors: large VkDeviceMemory blocks (each one VkBuffer with a device address),
// suballocated by bumping, since the backend never frees a tensor before it is destroyed. No block
// exceeds maxMemoryAllocationSize, and shaders reach tensors by device address, so
// maxStorageBufferRange never limits a tensor.
#pragma once
#include <volk.h>

#include <cstdint>
#include <vector>

#include "engine/backend.h"
#include "engine/vulkan/vk_device.h"

namespace nibble::vk {

struct Allocation {
  VkBuffer buffer = VK_NULL_HANDLE;
  VkDeviceSize offset = 0, size = 0;  // inside `buffer`
  VkDeviceAddress address = 0;        // of the first byte
  uint8_t* mapped = nullptr;          // host pointer for host-visible memory
};

class Memory {
 public:
  explicit Memory(const Context& ctx);
  ~Memory();
  Memory(const Memory&) = delete;
  Memory& operator=(const Memory&) = delete;

  // Device-local memory, counted under `usage`. `what` names it in errors.
  Allocation device(VkDeviceSize bytes, Usage usage, const std::string& what);
  // Host-visible, coherent memory for staging and readback (not counted).
  Allocation host(VkDeviceSize bytes);
  // Memory of its own, device-local or host-visible, not counted under any usage and given back
  // by release(): what only loading needs (the GPU quantizer's staging ring and scratch).
  Allocation temporary(VkDeviceSize bytes, bool device_local, const std::string& what);
  void release(const Allocation& a);
  MemoryInfo info() const;

 private:
  struct Block {
    VkDeviceMemory memory = VK_NULL_HANDLE;
    VkBuffer buffer = VK_NULL_HANDLE;
    VkDeviceSize size = 0, used = 0;
    VkDeviceAddress address = 0;
    uint8_t* mapped = nullptr;
    VkDeviceSize device_bytes = 0;  // its share of device_block_bytes_
  };
  Allocation suballocate(std::vector<Block>& blocks, uint32_t type, VkDeviceSize bytes,
                         const std::string& what);
  Block create_block(uint32_t type, VkDeviceSize bytes, const std::string& what);
  uint32_t find_type(VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred) const;

  const Context& ctx_;
  uint32_t device_type_ = 0, host_type_ = 0;
  VkDeviceSize block_size_ = 0;
  void destroy(const Block& b);

  std::vector<Block> device_blocks_, host_blocks_, temporary_blocks_;
  uint64_t device_block_bytes_ = 0;  // all device-local blocks together
  MemoryInfo tally_;
};

}  // namespace nibble::vk
