// The memory plan, computed before allocating, matches what loading then allocates.
#include <doctest/doctest.h>

#include "engine/cpu/cpu_backend.h"
#include "loader/folder_weights.h"
#include "loader/load_model.h"

using namespace nibble;

namespace {

double relative_gap(uint64_t planned, uint64_t actual) {
  return std::abs(double(planned) - double(actual)) / double(actual);
}

}  // namespace

TEST_CASE("memory plan: within 3% of what loading allocates, for 16-bit and 4-bit settings") {
  const std::string root = std::string(NIBBLE_SOURCE_DIR) + "/";
  for (const char* dir : {"models/kjv-tiny", "tests/fixtures/models/mistral-swa"}) {
    for (bool quantize : {false, true}) {
      for (bool dq : {false, true}) {
        CAPTURE(dir);
        CAPTURE(quantize);
        CAPTURE(dq);
        QuantConfig quant;
        quant.enabled = quantize;
        quant.double_quant = dq;
        const ModelOptions options{.context = 96, .max_batch = 32};
        const ModelFolder folder = ModelFolder::open(root + dir);
        CpuBackend backend(1);
        const MemoryPlan plan = plan_memory(folder, quant, options, backend.kv_dtype());
        FolderWeights weights(folder, quant);
        Model model(backend, folder.config(), weights, options);
        const MemoryInfo m = backend.memory();
        CHECK(relative_gap(plan.weights, m.weights) < 0.03);
        CHECK(plan.kv_cache == m.kv_cache);
        CHECK(plan.activations == m.activations);
      }
    }
  }
}
