// Compute pipelines of the embedded shaders, created on first use per (shader, specialization
// constants). All share one layout: no descriptor sets, only push constants holding buffer
// device addresses and sizes.
#pragma once
#include <volk.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace nibble::vk {

constexpr uint32_t kPushConstantBytes = 128;  // the minimum every Vulkan device supports

class Pipelines {
 public:
  explicit Pipelines(VkDevice device);
  ~Pipelines();
  Pipelines(const Pipelines&) = delete;
  Pipelines& operator=(const Pipelines&) = delete;

  // `spec[i]` is specialization constant i (constant_id = i) of shaders/<shader>.comp.
  VkPipeline get(const std::string& shader, const std::vector<uint32_t>& spec);
  VkPipelineLayout layout() const { return layout_; }

 private:
  VkShaderModule module(const std::string& shader);

  VkDevice device_;
  VkPipelineLayout layout_ = VK_NULL_HANDLE;
  std::map<std::string, VkShaderModule> modules_;
  std::map<std::pair<std::string, std::vector<uint32_t>>, VkPipeline> pipelines_;
};

}  // namespace nibble::vk
