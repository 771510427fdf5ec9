#include "engine/make_backend.h"

#include <iostream>

#include "engine/cpu/cpu_backend.h"
#include "engine/error.h"
#ifdef NIBBLE_HAVE_VULKAN
#include "engine/vulkan/vulkan_backend.h"
#endif
#ifdef NIBBLE_HAVE_CUDA
#include "engine/cuda/cuda_backend.h"
#endif

namespace nibble {

std::vector<std::string> available_backends() {
  std::vector<std::string> names;
#ifdef NIBBLE_HAVE_VULKAN
  names.push_back("vulkan");
#endif
#ifdef NIBBLE_HAVE_CUDA
  names.push_back("cuda");
#endif
  names.push_back("cpu");
  return names;
}

static std::unique_ptr<Backend> make_named(const std::string& name, const BackendOptions& o) {
  std::unique_ptr<Backend> backend;
  if (name == "cpu") backend = std::make_unique<CpuBackend>(o.threads);
#ifdef NIBBLE_HAVE_VULKAN
  if (name == "vulkan") backend = make_vulkan_backend(o.device);
#endif
#ifdef NIBBLE_HAVE_CUDA
  if (name == "cuda") backend = make_cuda_backend(o.device);
#endif
  if (!backend) fail("backend '" + name + "' is not built into this nibble");
  backend->set_profiling(o.profile);
  return backend;
}

std::unique_ptr<Backend> make_backend(const BackendOptions& options) {
  if (options.name != "auto") return make_named(options.name, options);
  for (const std::string& name : available_backends()) {
    if (name == "cpu" || name == "cuda") continue;  // auto prefers Vulkan, then the CPU
    try {
      return make_named(name, options);
    } catch (const Error& e) {
      std::cerr << "note: " << name << " unavailable (" << e.what() << "); using the CPU backend\n";
    }
  }
  return make_named("cpu", options);
}

}  // namespace nibble
