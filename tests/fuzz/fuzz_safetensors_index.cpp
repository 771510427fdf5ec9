// Fuzzes the model.safetensors.index.json parser: a weight_map, or nibble::Error; never a shard
// name that leaves the model folder.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/error.h"
#include "loader/model_folder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto map = nibble::parse_safetensors_index(
        std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/index.json");
    for (const auto& [tensor, shard] : map)
      if (shard.empty() || shard.find('/') != std::string::npos || shard == "..") std::abort();
  } catch (const nibble::Error&) {
  }
  return 0;
}
