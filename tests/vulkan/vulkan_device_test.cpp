// Device discovery, selection errors, and the device facts `nibble devices` prints.
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

TEST_CASE("vulkan: devices are listed with the features the backend adapts to") {
  if (!vulkan_or_skip()) return;
  const auto devices = vk::list_devices();
  REQUIRE(!devices.empty());
  for (const vk::DeviceInfo& d : devices) {
    CAPTURE(d.name);
    CHECK(!d.name.empty());
    CHECK(!d.heaps.empty());
    const std::string text = d.describe();
    CHECK(text.find(d.name) != std::string::npos);
    CHECK(text.find("subgroup size") != std::string::npos);
    if (d.unusable.empty()) {
      CHECK(d.subgroup_size > 0);
      CHECK(d.max_allocation > 0);
      CHECK(d.shared_memory >= 16384);
    }
  }
}

TEST_CASE("vulkan: a device index that does not exist is a clear error") {
  if (!vulkan_or_skip()) return;
  CHECK_THROWS_WITH_AS(make_vulkan_backend(99), doctest::Contains("does not exist"), Error);
}

TEST_CASE("vulkan: a tensor larger than the device can allocate is a clear error") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  const vk::DeviceInfo d = vk::list_devices().front();
  // More than the device allows in one allocation (and more than any heap here): refused before
  // the driver is asked, with the sizes in the message.
  const int64_t rows = int64_t(std::max<uint64_t>(d.max_allocation, uint64_t(1) << 40) / 4096) * 2;
  CHECK_THROWS_WITH_AS(gpu->alloc(DType::F32, rows, 1024, Usage::Activations),
                       doctest::Contains("out of device memory"), Error);
}

TEST_CASE("vulkan: the copy bandwidth is measured with timestamps") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  if (!vk::list_devices().front().timestamps) return;
  const double gbs = gpu->measure_bandwidth();
  MESSAGE("copy bandwidth " << gbs << " GB/s");
  CHECK(gbs > 0.01);
  CHECK(gbs < 100000);
}
