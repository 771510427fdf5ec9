// A lost Vulkan device, simulated (NIBBLE_VK_SIMULATE_DEVICE_LOSS: no device can be made to fail on
// demand): generation through Model and Generator fails with one nibble::Error that says the
// device was lost, and the backend then keeps failing cleanly, every step and transfer, as a real
// lost device does, until it is destroyed. Loading the model again on a new backend recovers.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/generator.h"
#include "engine/vulkan/device_lost.h"
#include "loader/load_model.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;

namespace {

constexpr const char* kVariable = "NIBBLE_VK_SIMULATE_DEVICE_LOSS";
constexpr const char* kLost = "the Vulkan device was lost";

// Sets the variable for the backends created while it lives.
class ScopedVariable {
 public:
  explicit ScopedVariable(const char* value) { setenv(kVariable, value, 1); }
  ~ScopedVariable() { unsetenv(kVariable); }
  ScopedVariable(const ScopedVariable&) = delete;
  ScopedVariable& operator=(const ScopedVariable&) = delete;
};

// The message of the nibble::DeviceLost `f` throws ("no error" if none; any other exception
// fails the test).
template <class F>
std::string lost_error(F f) {
  try {
    f();
  } catch (const DeviceLost& e) {
    return e.what();
  }
  return "no error";
}

const std::filesystem::path kSource = NIBBLE_SOURCE_DIR;

}  // namespace

TEST_CASE("vulkan: a lost device fails generation with one clear error, and keeps failing") {
  if (!test::vulkan_or_skip()) return;
  // The bundled model's prompt and greedy tokens, as Hugging Face transformers writes them (and
  // the 16-bit model on Vulkan does: cli.default_model_greedy).
  std::ifstream in(kSource / "tests/fixtures/models/kjv-tiny-greedy.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  const auto prompt = fixture.at("prompt_ids").get<std::vector<int>>();
  const auto healthy = fixture.at("output_ids").get<std::vector<int>>();
  GenerationSettings settings;
  settings.sampling.temperature = 0;
  settings.max_new_tokens = 8;

  // Lost at the process's 4th step wait (no other test sets the variable): loading waits for
  // transfers only, so the prefill and two decode steps finish first.
  ScopedVariable lose_at("4");
  auto backend = make_vulkan_backend(-1);
  QuantConfig no_quant;
  no_quant.enabled = false;
  const ModelOptions options{.context = 32};
  const std::filesystem::path dir = kSource / "models/kjv-tiny";
  LoadedModel m = load_model(dir, *backend, no_quant, options);
  Generator g(*m.model, *m.tokenizer);
  std::string streamed;
  const std::string error =
      lost_error([&] { g.generate(prompt, settings, [&](std::string_view t) { streamed += t; }); });
  INFO("error: " << error);
  CHECK(error.find(kLost) != std::string::npos);
  CHECK(error.find("during a step") != std::string::npos);
  // The tokens before the loss are the healthy device's, and were streamed.
  const std::vector<int> before = g.last_output();
  REQUIRE(before.size() == 3);
  CHECK(std::equal(before.begin(), before.end(), healthy.begin()));
  CHECK(streamed == m.tokenizer->decode(before));

  // Lost for good: a new answer, a bare forward pass, the step timings and a transfer all fail
  // with the same error, and nothing hangs or crashes.
  g.reset();
  CHECK(lost_error([&] { g.generate(prompt, settings, nullptr); }).find(kLost) !=
        std::string::npos);
  CHECK(lost_error([&] { m.model->forward(prompt, 0); }).find(kLost) != std::string::npos);
  CHECK(lost_error([&] { m.model->step_times(); }).find(kLost) != std::string::npos);
  const Tensor t = backend->alloc(DType::F32, 1, 4, Usage::Activations);
  const float values[4] = {1, 2, 3, 4};
  const std::string transfer = lost_error([&] { backend->write(t, values); });
  CHECK(transfer.find(kLost) != std::string::npos);
  CHECK(transfer.find("during a transfer") != std::string::npos);

  // Loading the model again, on a new backend (as after a driver reset), recovers: the whole
  // healthy answer. The lost model and backend are then freed as usual (ASan checks that nothing
  // leaks).
  auto fresh = make_vulkan_backend(-1);
  LoadedModel again = load_model(dir, *fresh, no_quant, options);
  Generator recovered(*again.model, *again.tokenizer);
  recovered.generate(prompt, settings, nullptr);
  CHECK(recovered.last_output() ==
        std::vector<int>(healthy.begin(), healthy.begin() + settings.max_new_tokens));
}

TEST_CASE("vulkan: NIBBLE_VK_SIMULATE_DEVICE_LOSS must be a positive integer") {
  if (!test::vulkan_or_skip()) return;
  for (const char* bad : {"0", "-2", "two", "3steps"}) {
    CAPTURE(bad);
    ScopedVariable variable(bad);
    std::string error = "no error";
    try {
      make_vulkan_backend(-1);
    } catch (const Error& e) {
      error = e.what();
    }
    CHECK(error.find("NIBBLE_VK_SIMULATE_DEVICE_LOSS must be a positive integer") !=
          std::string::npos);
    CHECK(error.find(std::string("'") + bad + "'") != std::string::npos);
  }
}
