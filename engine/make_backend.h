// Creates a backend by name, falling back to the CPU when no GPU can be used (and saying so).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/backend.h"

namespace nibble {

struct BackendOptions {
  std::string name = "auto";  // auto, cpu, vulkan, cuda
  int device = -1;            // GPU index; -1: the best one
  int threads = 0;            // CPU threads; 0: all
  bool profile = false;       // per-layer timing
};

// Backends compiled into this build, in order of preference for "auto".
std::vector<std::string> available_backends();

// "auto" tries the GPU backends and falls back to the CPU with a note on stderr; a backend
// named explicitly that cannot start is an error.
std::unique_ptr<Backend> make_backend(const BackendOptions& options);

}  // namespace nibble
