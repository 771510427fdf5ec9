#include "engine/vulkan/vk_step_commands.h"

#include <cstring>

#include "engine/error.h"

namespace nibble::vk {

namespace {

constexpr VkPipelineStageFlags kWorkStages =
    VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;

void memory_barrier(VkCommandBuffer cmd, VkAccessFlags dst_access,
                    VkPipelineStageFlags dst_stages) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = dst_access;
  vkCmdPipelineBarrier(cmd, kWorkStages, dst_stages, 0, 1, &mb, 0, nullptr, 0, nullptr);
}

}  // namespace

void StepCommands::clear() {
  commands_.clear();
  push_.clear();
  dispatches_ = barriers_ = 0;
}

void StepCommands::dispatch(VkPipeline pipeline, const void* push, uint32_t push_bytes,
                            uint32_t groups_x, uint32_t groups_y) {
  Command c{.kind = Kind::Dispatch, .pipeline = pipeline};
  c.push_at = uint32_t(push_.size());
  c.push_bytes = push_bytes;
  c.groups_x = groups_x;
  c.groups_y = groups_y;
  const auto* bytes = static_cast<const uint8_t*>(push);
  push_.insert(push_.end(), bytes, bytes + push_bytes);
  commands_.push_back(c);
  ++dispatches_;
}

size_t StepCommands::last_dispatch() const {
  for (size_t i = commands_.size(); i-- > 0;)
    if (commands_[i].kind == Kind::Dispatch) return i;
  fail("internal error: StepCommands::last_dispatch without a dispatch");
}

void StepCommands::replace_dispatch(size_t index, VkPipeline pipeline, const void* push,
                                    uint32_t push_bytes) {
  Command& c = commands_.at(index);
  if (c.kind != Kind::Dispatch || c.push_bytes != push_bytes)
    fail("internal error: StepCommands::replace_dispatch of another kind of command");
  c.pipeline = pipeline;
  std::memcpy(push_.data() + c.push_at, push, push_bytes);
}

void StepCommands::barrier() {
  commands_.push_back({.kind = Kind::Barrier});
  ++barriers_;
}

void StepCommands::host_barrier() {
  commands_.push_back({.kind = Kind::HostBarrier});
  ++barriers_;
}

void StepCommands::copy(VkBuffer src, VkBuffer dst, const VkBufferCopy& region) {
  Command c{.kind = Kind::Copy, .src = src, .dst = dst};
  c.src_offset = region.srcOffset;
  c.dst_offset = region.dstOffset;
  c.bytes = region.size;
  commands_.push_back(c);
}

void StepCommands::zero(VkBuffer dst, VkDeviceSize offset, VkDeviceSize bytes) {
  commands_.push_back({.kind = Kind::Zero, .dst = dst, .dst_offset = offset, .bytes = bytes});
}

void StepCommands::reset_queries(VkQueryPool pool, uint32_t count) {
  commands_.push_back({.kind = Kind::ResetQueries, .pool = pool, .query = count});
}

void StepCommands::timestamp(VkQueryPool pool, uint32_t query) {
  commands_.push_back({.kind = Kind::Timestamp, .pool = pool, .query = query});
}

void StepCommands::emit(VkCommandBuffer cmd, VkPipelineLayout layout) const {
  for (const Command& c : commands_) {
    switch (c.kind) {
      case Kind::Dispatch:
        vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, c.pipeline);
        vkCmdPushConstants(cmd, layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, c.push_bytes,
                           push_.data() + c.push_at);
        vkCmdDispatch(cmd, c.groups_x, c.groups_y, 1);
        break;
      case Kind::Barrier:
        memory_barrier(cmd,
                       VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                           VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
                       kWorkStages);
        break;
      case Kind::HostBarrier:
        memory_barrier(cmd, VK_ACCESS_HOST_READ_BIT, VK_PIPELINE_STAGE_HOST_BIT);
        break;
      case Kind::Copy: {
        const VkBufferCopy region{c.src_offset, c.dst_offset, c.bytes};
        vkCmdCopyBuffer(cmd, c.src, c.dst, 1, &region);
        break;
      }
      case Kind::Zero:
        vkCmdFillBuffer(cmd, c.dst, c.dst_offset, c.bytes, 0);
        break;
      case Kind::ResetQueries:
        vkCmdResetQueryPool(cmd, c.pool, 0, c.query);
        break;
      case Kind::Timestamp:
        vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, c.pool, c.query);
        break;
    }
  }
}

}  // namespace nibble::vk
