// Compute pipelines of the embedded shaders, created on first use per (shader, specialization
// constants). All share one layout: no descriptor sets, only push constants holding buffer
// device addresses and sizes.
#pragma once
#include <volk.h>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nibble::vk {

constexpr uint32_t kPushConstantBytes = 128;  // the minimum every Vulkan device supports

class Pipelines {
 public:
  // `statistics`: print each pipeline's compiled statistics to stderr (Context's
  // pipeline_statistics).
  Pipelines(VkDevice device, bool statistics);
  ~Pipelines();
  Pipelines(const Pipelines&) = delete;
  Pipelines& operator=(const Pipelines&) = delete;

  // `spec[i]` is specialization constant i (constant_id = i) of shaders/<shader>.comp. Called
  // for every dispatch, so the lookup allocates nothing.
  VkPipeline get(std::string_view shader, std::span<const uint32_t> spec);
  VkPipelineLayout layout() const { return layout_; }

 private:
  struct Entry {
    std::string shader;
    std::vector<uint32_t> spec;
    VkPipeline pipeline;
  };
  VkShaderModule module(const std::string& shader);
  void print_statistics(std::string_view shader, std::span<const uint32_t> spec, VkPipeline p);

  VkDevice device_;
  bool statistics_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  std::map<std::string, VkShaderModule> modules_;
  std::vector<Entry> pipelines_;  // a few dozen: a linear search beats hashing a key
};

}  // namespace nibble::vk
