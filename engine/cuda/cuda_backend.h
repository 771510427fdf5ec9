// The CUDA backend: the Backend ops as CUDA kernels on one stream, the decode step replayed as a
// CUDA graph. Throws nibble::Error("no CUDA device: ...") when no NVIDIA GPU or driver is present.
#pragma once
#include <memory>

#include "engine/backend.h"

namespace nibble {

// `device` is the CUDA device index; -1 picks device 0.
std::unique_ptr<Backend> make_cuda_backend(int device);

}  // namespace nibble
