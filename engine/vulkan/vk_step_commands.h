// A step's commands as plain data. The backend's ops append records here instead of calling
// vkCmd* themselves; `emit` turns the list into commands. Keeping the list lets the backend notice
// that a step repeats the previous one byte for byte (decode: positions come from the step data,
// not from the commands) and submit the command buffer recorded for that one again, unchanged.
#pragma once
#include <volk.h>

#include <cstdint>
#include <vector>

namespace nibble::vk {

class StepCommands {
 public:
  void clear();

  // Binds `pipeline`, pushes `push_bytes` bytes at `push` (copied), dispatches the grid.
  void dispatch(VkPipeline pipeline, const void* push, uint32_t push_bytes, uint32_t groups_x,
                uint32_t groups_y);
  // The index of the last dispatch, and that dispatch given another pipeline and push constants
  // of the same size.
  size_t last_dispatch() const;
  void replace_dispatch(size_t index, VkPipeline pipeline, const void* push, uint32_t push_bytes);
  // Compute and transfer writes before it, visible to compute and transfer commands after it.
  void barrier();
  // Compute and transfer writes before it, visible to the host once the submission's fence has
  // signalled.
  void host_barrier();
  void copy(VkBuffer src, VkBuffer dst, const VkBufferCopy& region);
  void zero(VkBuffer dst, VkDeviceSize offset, VkDeviceSize bytes);  // bytes: a multiple of 4
  void reset_queries(VkQueryPool pool, uint32_t count);              // queries [0, count)
  void timestamp(VkQueryPool pool, uint32_t query);  // once the commands before it are done

  // Records the list into `cmd`, which the caller has begun and ends.
  void emit(VkCommandBuffer cmd, VkPipelineLayout layout) const;

  uint32_t dispatches() const { return dispatches_; }
  uint32_t barriers() const { return barriers_; }  // host_barrier included
  bool operator==(const StepCommands&) const = default;

 private:
  enum class Kind : uint32_t {
    Dispatch,
    Barrier,
    HostBarrier,
    Copy,
    Zero,
    ResetQueries,
    Timestamp
  };
  // One record; the fields its kind does not use stay zero.
  struct Command {
    Kind kind{};
    VkPipeline pipeline = VK_NULL_HANDLE;                 // Dispatch
    uint32_t push_at = 0, push_bytes = 0;                 // Dispatch: its push constants in push_
    uint32_t groups_x = 0, groups_y = 0;                  // Dispatch
    VkBuffer src = VK_NULL_HANDLE, dst = VK_NULL_HANDLE;  // Copy
    VkDeviceSize src_offset = 0, dst_offset = 0, bytes = 0;  // Copy; Zero: dst's
    VkQueryPool pool = VK_NULL_HANDLE;                       // ResetQueries, Timestamp
    uint32_t query = 0;                                      // Timestamp: the query;
                                                             // ResetQueries: their count
    bool operator==(const Command&) const = default;
  };

  std::vector<Command> commands_;
  std::vector<uint8_t> push_;  // every dispatch's push constants, back to back
  uint32_t dispatches_ = 0, barriers_ = 0;
};

}  // namespace nibble::vk
