// The compute shaders of shaders/*.comp, compiled to SPIR-V at build time and embedded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace nibble::shaders {

struct Spirv {
  const uint32_t* words = nullptr;
  size_t count = 0;  // words, 0 when the shader does not exist
};

// The shader compiled from shaders/<name>.comp.
Spirv find(std::string_view name);

}  // namespace nibble::shaders
