// Sampling on the device (shaders/sample.comp) against draw_token: tests/sample_cases.h.
#include "tests/sample_cases.h"
#include "tests/vulkan/vulkan_test_util.h"

TEST_CASE("vulkan: sampling on the device draws draw_token's token") {
  auto gpu = nibble::test::vulkan_or_skip();
  if (!gpu) return;
  nibble::test::check_device_sampling(*gpu);
}
