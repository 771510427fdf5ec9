// Layers split over backends (device_map="auto"): the placement follows the memory budget and the
// logits do not change.
#include <doctest/doctest.h>

#include "engine/cpu/cpu_backend.h"
#include "loader/folder_weights.h"
#include "loader/placement.h"
#include "tests/random_model.h"

using namespace nibble;

namespace {

// A CPU backend that pretends to be a device with `budget` bytes, so placement can be tested
// without a GPU.
class SmallDevice final : public CpuBackend {
 public:
  explicit SmallDevice(uint64_t budget) : CpuBackend(1), budget_(budget) {}
  std::string name() const override { return "small-device"; }
  std::string device_name() const override {
    return "a device of " + std::to_string(budget_) + " bytes";
  }
  MemoryInfo memory() const override {
    MemoryInfo m = CpuBackend::memory();
    m.device_budget = budget_;
    m.device_used = m.total();
    return m;
  }

 private:
  uint64_t budget_;
};

std::vector<float> run_logits(const std::vector<Stage>& stages, const ModelConfig& c,
                              WeightSource& weights, const ModelOptions& options) {
  Model model(stages, c, weights, options);
  const std::vector<int> ids{0, 5, 17, 42, 7, 3, 9, 12};
  model.forward(ids, 0, true);
  return model.logits();
}

const ModelOptions kOptions{.context = 64, .max_batch = 16, .all_logits = true};

}  // namespace

TEST_CASE("placement: a model split over two backends gives the same logits as one") {
  const ModelConfig c = test::tiny_config(4, 64, 4, 2, 96, 97);
  test::RandomWeights weights(11);
  CpuBackend a(1), b(1), c1(1), only(1);
  const auto reference = run_logits({{&only, 4}}, c, weights, kOptions);
  for (int split : {1, 2, 3}) {
    CAPTURE(split);
    CpuBackend first(1), second(1);
    CHECK(test::rel_error(run_logits({{&first, split}, {&second, 4 - split}}, c, weights, kOptions),
                          reference) < 1e-6);
  }
  CHECK(test::rel_error(run_logits({{&a, 1}, {&b, 2}, {&c1, 1}}, c, weights, kOptions), reference) <
        1e-6);
  CpuBackend x(1);
  CHECK_THROWS_AS(Model({{&x, 3}}, c, weights, kOptions), Error);  // stages must hold every layer
}

TEST_CASE("placement: auto keeps as many layers on the device as its budget holds") {
  const ModelFolder folder = ModelFolder::open(std::string(NIBBLE_SOURCE_DIR) + "/models/kjv-tiny");
  const int layers = folder.config().num_hidden_layers;
  QuantConfig quant;  // nf4 + double quant
  FolderWeights weights(folder, quant);

  // Measure what the whole model takes, then offer a device with room for about half of it.
  CpuBackend probe(1);
  Model(probe, folder.config(), weights, kOptions);
  const uint64_t whole = probe.memory().total();
  for (double share : {0.6, 0.8, 2.0}) {
    CAPTURE(share);
    SmallDevice device(uint64_t(double(whole) * share));
    CpuBackend cpu(1);
    const std::vector<Stage> stages = place_layers(folder, quant, kOptions, {&device, &cpu});
    REQUIRE(!stages.empty());
    if (share >= 1.0) {
      CHECK(stages.size() == 1);
      CHECK(stages[0].backend == &device);
    } else {
      REQUIRE(stages.size() == 2);
      CHECK(stages[0].backend == &device);
      CHECK(stages[0].layers > 0);
      CHECK(stages[0].layers < layers);
    }
    Model model(stages, folder.config(), weights, kOptions);
    CHECK(device.memory().total() <= uint64_t(double(whole) * share));  // the plan held
    CHECK(describe_placement(stages).find("small-device") != std::string::npos);
  }
}

TEST_CASE("placement: --gpu-layers forces the split; a model that fits nowhere is an error") {
  const ModelFolder folder = ModelFolder::open(std::string(NIBBLE_SOURCE_DIR) + "/models/kjv-tiny");
  QuantConfig quant;
  SmallDevice big(1ull << 40);
  CpuBackend cpu(1);
  const auto forced = place_layers(folder, quant, kOptions, {&big, &cpu}, 3);
  REQUIRE(forced.size() == 2);
  CHECK(forced[0].layers == 3);
  CHECK(forced[1].layers == folder.config().num_hidden_layers - 3);
  SmallDevice tiny(1 << 20), also_tiny(1 << 20);
  CHECK_THROWS_WITH_AS(place_layers(folder, quant, kOptions, {&tiny}), doctest::Contains("needs"),
                       Error);
  CHECK_THROWS_AS(place_layers(folder, quant, kOptions, {&big}, 3), Error);  // nowhere for the rest
}
