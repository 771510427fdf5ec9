// Layers split between a Vulkan device and the CPU, and between two Vulkan backends on one device
// (lavapipe in CI: two "devices"): only the hidden state crosses, so the logits do not change.
#include "engine/model.h"
#include "loader/folder_weights.h"
#include "loader/placement.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;

namespace {

const ModelOptions kOptions{.context = 64, .max_batch = 16, .all_logits = true};
const std::vector<int> kIds{0, 1146, 262, 2081, 272, 262, 344, 475};

std::vector<float> logits_of(const std::vector<Stage>& stages, const ModelFolder& folder,
                             WeightSource& weights) {
  Model model(stages, folder.config(), weights, kOptions);
  model.forward(kIds, 0, true);
  std::vector<float> out = model.logits();
  // One more decode step through the split KV caches.
  const int next = model.pick();
  model.forward(std::span<const int>(&next, 1), int(kIds.size()));
  const std::vector<float> step = model.logits();
  out.insert(out.end(), step.begin(), step.end());
  return out;
}

}  // namespace

TEST_CASE(
    "vulkan: a model split over Vulkan and the CPU, or two Vulkan backends, keeps its logits") {
  auto gpu = test::vulkan_or_skip();
  if (!gpu) return;
  auto second_gpu = make_vulkan_backend(-1);
  const ModelFolder folder = ModelFolder::open(std::string(NIBBLE_SOURCE_DIR) + "/models/kjv-tiny");
  const int layers = folder.config().num_hidden_layers;
  QuantConfig quant;  // the seed's nf4 + double quant, bf16 compute
  FolderWeights weights(folder, quant);

  const auto all_gpu = logits_of({{gpu.get(), layers}}, folder, weights);
  CpuBackend cpu(2);
  const auto all_cpu = logits_of({{&cpu, layers}}, folder, weights);

  // --gpu-layers 3: three on the device, the rest on the CPU.
  CpuBackend cpu_rest(2);
  const auto stages = place_layers(folder, quant, kOptions, {gpu.get(), &cpu_rest}, 3);
  REQUIRE(stages.size() == 2);
  CHECK(stages[0].layers == 3);
  const auto split = logits_of(stages, folder, weights);
  // Float16 KV cache on the device against float32 on the CPU, bf16 roundings: as the Vulkan
  // model tests' tolerance.
  CHECK(test::rel_error(split, all_cpu) < 1e-2);
  CHECK(test::rel_error(split, all_gpu) < 1e-2);

  // Two Vulkan backends sharing the layers (auto, by free memory): the same numbers as one, since
  // both run the same shaders, but for the decode step's rms_norm at the boundary, which one
  // backend folds into the residual product before it where it can (the norm's input rounded
  // to bfloat16 before its scale rather than after: lavapipe 1.5e-4).
  const auto two = place_layers(folder, quant, kOptions, {gpu.get(), second_gpu.get()});
  REQUIRE(two.size() == 2);
  CHECK(two[0].layers + two[1].layers == layers);
  MESSAGE("two Vulkan backends: " << describe_placement(two));
  const auto two_logits = logits_of(two, folder, weights);
  const size_t prompt = all_gpu.size() - size_t(folder.config().vocab_size);
  auto part = [](const std::vector<float>& v, size_t from, size_t to) {
    return std::vector<float>(v.begin() + std::ptrdiff_t(from), v.begin() + std::ptrdiff_t(to));
  };
  CHECK(test::rel_error(part(two_logits, 0, prompt), part(all_gpu, 0, prompt)) < 1e-5);
  CHECK(test::rel_error(part(two_logits, prompt, all_gpu.size()),
                        part(all_gpu, prompt, all_gpu.size())) < 1e-3);
}
