#include "engine/vulkan/vk_memory.h"

#include <algorithm>

#include "engine/error.h"
#include "engine/vulkan/vk_check.h"

namespace nibble::vk {

namespace {
constexpr VkDeviceSize kAlignment = 256;  // >= every device's minStorageBufferOffsetAlignment
constexpr VkDeviceSize kBlockSize = VkDeviceSize(256) << 20;

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB";
}
}  // namespace

Memory::Memory(const Context& ctx) : ctx_(ctx) {
  device_type_ = find_type(VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0);
  host_type_ = find_type(VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
                         VK_MEMORY_PROPERTY_HOST_CACHED_BIT);
  block_size_ = std::min<VkDeviceSize>(kBlockSize, ctx.info.max_allocation);
}

Memory::~Memory() {
  for (auto* blocks : {&device_blocks_, &host_blocks_, &temporary_blocks_})
    for (const Block& b : *blocks) destroy(b);
}

void Memory::destroy(const Block& b) {
  vkDestroyBuffer(ctx_.device, b.buffer, nullptr);
  vkFreeMemory(ctx_.device, b.memory, nullptr);
}

uint32_t Memory::find_type(VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred) const {
  const VkPhysicalDeviceMemoryProperties& m = ctx_.memory_properties;
  int found = -1;
  for (uint32_t i = 0; i < m.memoryTypeCount; ++i) {
    const VkMemoryPropertyFlags f = m.memoryTypes[i].propertyFlags;
    if ((f & required) != required) continue;
    if ((f & preferred) == preferred) return i;
    if (found < 0) found = int(i);
  }
  if (found < 0) fail("the Vulkan device " + ctx_.info.name + " has no suitable memory type");
  return uint32_t(found);
}

Memory::Block Memory::create_block(uint32_t type, VkDeviceSize bytes, const std::string& what) {
  const uint32_t heap = ctx_.memory_properties.memoryTypes[type].heapIndex;
  const uint64_t heap_size = ctx_.memory_properties.memoryHeaps[heap].size;
  const bool device_local = type == device_type_;
  auto out_of_memory = [&](const std::string& why) {
    fail("out of device memory: " + what + " needs " + mib(bytes) + " more, but " + why +
         " (heap " + std::to_string(heap) + " holds " + mib(heap_size) + ", nibble already uses " +
         mib(device_block_bytes_) + ")");
  };
  if (bytes > ctx_.info.max_allocation)
    out_of_memory("the device allocates at most " + mib(ctx_.info.max_allocation) + " at once");
  if (device_local && device_block_bytes_ + bytes > heap_size) out_of_memory("the heap is full");

  Block b;
  b.size = bytes;
  VkBufferCreateInfo bci{VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  bci.size = bytes;
  bci.usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
              VK_BUFFER_USAGE_TRANSFER_DST_BIT | VK_BUFFER_USAGE_SHADER_DEVICE_ADDRESS_BIT;
  bci.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  check(vkCreateBuffer(ctx_.device, &bci, nullptr, &b.buffer), "vkCreateBuffer");
  VkMemoryRequirements req;
  vkGetBufferMemoryRequirements(ctx_.device, b.buffer, &req);
  VkMemoryAllocateFlagsInfo flags{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_FLAGS_INFO};
  flags.flags = VK_MEMORY_ALLOCATE_DEVICE_ADDRESS_BIT;
  VkMemoryAllocateInfo ai{VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, &flags};
  ai.allocationSize = req.size;
  ai.memoryTypeIndex = type;
  const VkResult r = vkAllocateMemory(ctx_.device, &ai, nullptr, &b.memory);
  if (r != VK_SUCCESS) {
    vkDestroyBuffer(ctx_.device, b.buffer, nullptr);
    if (r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY)
      out_of_memory("the driver refused (" + result_name(r) + ")");
    check(r, "vkAllocateMemory");
  }
  check(vkBindBufferMemory(ctx_.device, b.buffer, b.memory, 0), "vkBindBufferMemory");
  if (!device_local || (ctx_.memory_properties.memoryTypes[type].propertyFlags &
                        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT)) {
    void* p = nullptr;
    check(vkMapMemory(ctx_.device, b.memory, 0, VK_WHOLE_SIZE, 0, &p), "vkMapMemory");
    b.mapped = static_cast<uint8_t*>(p);
  }
  VkBufferDeviceAddressInfo bda{VK_STRUCTURE_TYPE_BUFFER_DEVICE_ADDRESS_INFO};
  bda.buffer = b.buffer;
  b.address = vkGetBufferDeviceAddress(ctx_.device, &bda);
  b.device_bytes = device_local ? req.size : 0;
  device_block_bytes_ += b.device_bytes;
  return b;
}

Allocation Memory::suballocate(std::vector<Block>& blocks, uint32_t type, VkDeviceSize bytes,
                               const std::string& what) {
  bytes = std::max<VkDeviceSize>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  Block* block = nullptr;
  for (Block& b : blocks)
    if (b.size - b.used >= bytes) {
      block = &b;
      break;
    }
  if (!block) {
    // Large tensors get a block of their own so the shared blocks stay dense.
    blocks.push_back(create_block(type, bytes > block_size_ / 4 ? bytes : block_size_, what));
    block = &blocks.back();
  }
  Allocation a{block->buffer, block->used, bytes, block->address + block->used,
               block->mapped ? block->mapped + block->used : nullptr};
  block->used += bytes;
  return a;
}

Allocation Memory::device(VkDeviceSize bytes, Usage usage, const std::string& what) {
  Allocation a = suballocate(device_blocks_, device_type_, bytes, what);
  (usage == Usage::Weights   ? tally_.weights
   : usage == Usage::KvCache ? tally_.kv_cache
                             : tally_.activations) += a.size;
  return a;
}

Allocation Memory::host(VkDeviceSize bytes) {
  return suballocate(host_blocks_, host_type_, bytes, "a staging buffer");
}

Allocation Memory::temporary(VkDeviceSize bytes, bool device_local, const std::string& what) {
  bytes = std::max<VkDeviceSize>(kAlignment, (bytes + kAlignment - 1) / kAlignment * kAlignment);
  const Block b = create_block(device_local ? device_type_ : host_type_, bytes, what);
  temporary_blocks_.push_back(b);
  return Allocation{b.buffer, 0, bytes, b.address, b.mapped};
}

void Memory::release(const Allocation& a) {
  auto it = std::find_if(temporary_blocks_.begin(), temporary_blocks_.end(),
                         [&](const Block& b) { return b.buffer == a.buffer; });
  if (it == temporary_blocks_.end()) return;
  device_block_bytes_ -= it->device_bytes;
  destroy(*it);
  temporary_blocks_.erase(it);
}

MemoryInfo Memory::info() const {
  MemoryInfo m = tally_;
  const VkPhysicalDeviceMemoryProperties& props = ctx_.memory_properties;
  const uint32_t heap = props.memoryTypes[device_type_].heapIndex;
  if (ctx_.info.memory_budget) {
    VkPhysicalDeviceMemoryBudgetPropertiesEXT budget{
        VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_BUDGET_PROPERTIES_EXT};
    VkPhysicalDeviceMemoryProperties2 p2{VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_MEMORY_PROPERTIES_2,
                                         &budget};
    vkGetPhysicalDeviceMemoryProperties2(ctx_.physical, &p2);
    m.device_used = budget.heapUsage[heap];
    m.device_budget = budget.heapBudget[heap];
  } else {
    m.device_used = device_block_bytes_;
    m.device_budget = props.memoryHeaps[heap].size;
  }
  return m;
}

}  // namespace nibble::vk
