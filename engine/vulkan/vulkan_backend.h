// The Vulkan compute backend (engine/vulkan/*): the whole forward pass on any Vulkan 1.2 device.
#pragma once
#include <memory>

#include "engine/backend.h"

namespace nibble {

// `device`: index into the list `nibble devices` prints; -1 picks the best (discrete >
// integrated > virtual > CPU). Throws nibble::Error when there is no loader or no usable device.
std::unique_ptr<Backend> make_vulkan_backend(int device);

}  // namespace nibble
