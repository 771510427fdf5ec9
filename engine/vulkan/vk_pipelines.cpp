#include "engine/vulkan/vk_pipelines.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "engine/vulkan/vk_check.h"
#include "shaders/spirv.h"

namespace nibble::vk {

Pipelines::Pipelines(VkDevice device, bool statistics) : device_(device), statistics_(statistics) {
  VkPushConstantRange range{VK_SHADER_STAGE_COMPUTE_BIT, 0, kPushConstantBytes};
  VkPipelineLayoutCreateInfo ci{VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
  ci.pushConstantRangeCount = 1;
  ci.pPushConstantRanges = &range;
  check(vkCreatePipelineLayout(device_, &ci, nullptr, &layout_), "vkCreatePipelineLayout");
}

Pipelines::~Pipelines() {
  for (const Entry& e : pipelines_) vkDestroyPipeline(device_, e.pipeline, nullptr);
  for (auto& [name, m] : modules_) vkDestroyShaderModule(device_, m, nullptr);
  vkDestroyPipelineLayout(device_, layout_, nullptr);
}

VkShaderModule Pipelines::module(const std::string& shader) {
  auto it = modules_.find(shader);
  if (it != modules_.end()) return it->second;
  const shaders::Spirv spirv = shaders::find(shader);
  if (!spirv.count) fail("internal error: no shader named " + shader);
  VkShaderModuleCreateInfo ci{VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  ci.codeSize = spirv.count * 4;
  ci.pCode = spirv.words;
  VkShaderModule m = VK_NULL_HANDLE;
  check(vkCreateShaderModule(device_, &ci, nullptr, &m), "vkCreateShaderModule");
  modules_[shader] = m;
  return m;
}

VkPipeline Pipelines::get(std::string_view shader, std::span<const uint32_t> spec) {
  for (const Entry& e : pipelines_)
    if (e.shader == shader && std::equal(e.spec.begin(), e.spec.end(), spec.begin(), spec.end()))
      return e.pipeline;
  std::vector<VkSpecializationMapEntry> entries;
  for (uint32_t i = 0; i < spec.size(); ++i) entries.push_back({i, i * 4, 4});
  VkSpecializationInfo si{uint32_t(entries.size()), entries.data(), spec.size() * 4, spec.data()};
  VkComputePipelineCreateInfo ci{VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO};
  ci.stage = {VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO};
  ci.stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
  ci.stage.module = module(std::string(shader));
  ci.stage.pName = "main";
  ci.stage.pSpecializationInfo = spec.empty() ? nullptr : &si;
  ci.layout = layout_;
  if (statistics_) ci.flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR;
  VkPipeline p = VK_NULL_HANDLE;
  check(vkCreateComputePipelines(device_, VK_NULL_HANDLE, 1, &ci, nullptr, &p),
        ("creating the pipeline of " + std::string(shader)).c_str());
  if (statistics_) print_statistics(shader, spec, p);
  pipelines_.push_back({std::string(shader), std::vector<uint32_t>(spec.begin(), spec.end()), p});
  return p;
}

// One line per executable: "pipeline matvec_subgroup [4,2,1,...]: Register Count 40, ...".
void Pipelines::print_statistics(std::string_view shader, std::span<const uint32_t> spec,
                                 VkPipeline p) {
  VkPipelineInfoKHR pi{VK_STRUCTURE_TYPE_PIPELINE_INFO_KHR};
  pi.pipeline = p;
  uint32_t n = 0;
  vkGetPipelineExecutablePropertiesKHR(device_, &pi, &n, nullptr);
  for (uint32_t e = 0; e < n; ++e) {
    VkPipelineExecutableInfoKHR ei{VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR};
    ei.pipeline = p;
    ei.executableIndex = e;
    uint32_t count = 0;
    vkGetPipelineExecutableStatisticsKHR(device_, &ei, &count, nullptr);
    std::vector<VkPipelineExecutableStatisticKHR> stats(
        count, {VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR});
    vkGetPipelineExecutableStatisticsKHR(device_, &ei, &count, stats.data());
    std::string line = "pipeline " + std::string(shader) + " [";
    for (size_t i = 0; i < spec.size(); ++i) line += (i ? "," : "") + std::to_string(spec[i]);
    line += "]:";
    for (uint32_t i = 0; i < count; ++i) {
      const VkPipelineExecutableStatisticKHR& s = stats[i];
      line += std::string(i ? ", " : " ") + s.name + " ";
      switch (s.format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
          line += s.value.b32 ? "yes" : "no";
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
          line += std::to_string(s.value.i64);
          break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
          line += std::to_string(s.value.u64);
          break;
        default:
          line += std::to_string(s.value.f64);
      }
    }
    std::fprintf(stderr, "%s\n", line.c_str());
  }
}

}  // namespace nibble::vk
