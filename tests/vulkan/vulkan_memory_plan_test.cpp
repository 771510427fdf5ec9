// The memory plan on Vulkan: the model's tensors plus Backend::scratch_bytes, the work buffers the
// ops use (reserved when the model is made), are what a long prompt and decode really hold.
#include "loader/folder_weights.h"
#include "loader/load_model.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

TEST_CASE("vulkan: the memory plan with the ops' scratch covers a long prompt and decode") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  const ModelFolder folder = ModelFolder::open(std::string(NIBBLE_SOURCE_DIR) + "/models/kjv-tiny");
  const ModelConfig& c = folder.config();
  QuantConfig quant;  // nf4 + double quant, bf16 compute
  const ModelOptions options{.context = 400, .max_batch = 32};
  const MemoryPlan plan = plan_memory(folder, quant, options, gpu->kv_dtype());
  const uint64_t scratch = gpu->scratch_bytes(c, options.context, options.max_batch);
  FolderWeights weights(folder, quant);
  Model model(*gpu, c, weights, options);

  // 300 prompt tokens in chunks of 32 (the last of 12 rows: few rows x heads, so the attention
  // splits its 300 positions) and one decode step after them.
  std::vector<int> prompt(300);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = int(i * 7 % size_t(c.vocab_size));
  model.forward(prompt, 0);
  const int next = model.pick();
  model.forward(std::span<const int>(&next, 1), int(prompt.size()));
  model.pick();

  const MemoryInfo m = gpu->memory();
  CHECK(scratch > 0);  // this context makes the attention split
  CHECK(m.kv_cache == plan.kv_cache);
  // Reserved when the model was made (the plan's few bytes of token ids live in host memory
  // here), and nothing more but the tensors' 256-byte alignment.
  CHECK(m.activations + 1024 >= plan.activations + scratch);
  CHECK(m.activations <= plan.activations + scratch + 64 * 256);
}
