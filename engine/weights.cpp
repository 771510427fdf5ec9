#include "engine/weights.h"

#include "engine/error.h"

namespace nibble {

float HostWeight::at(int64_t i) const {
  switch (dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, data + i * 4, 4);
      return f;
    }
    case DType::F16: return f16_to_f32(uint16_t(data[2 * i] | (data[2 * i + 1] << 8)));
    case DType::BF16: return bf16_to_f32(uint16_t(data[2 * i] | (data[2 * i + 1] << 8)));
    default: fail("weight " + name + ": element access needs a 16/32-bit dtype");
  }
}

}  // namespace nibble
