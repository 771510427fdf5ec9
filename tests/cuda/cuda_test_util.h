// Helpers of the CUDA tests: the skip when there is no NVIDIA GPU. Random inputs and weights
// (4-bit ones included) come from tests/random_model.h, shared with the Vulkan tests.
#pragma once
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include "engine/cuda/cuda_backend.h"
#include "engine/error.h"
#include "tests/random_model.h"

namespace nibble::test {

// The CUDA backend, or null (after saying why) on machines without an NVIDIA GPU or driver.
inline std::unique_ptr<Backend> cuda_or_skip() {
  try {
    return make_cuda_backend(0);
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.rfind("no CUDA device", 0) != 0) throw;
    MESSAGE("skipped, this machine cannot run CUDA: " << what);
    return nullptr;
  }
}

}  // namespace nibble::test
