#include "engine/weights.h"

#include "engine/error.h"
#include "loader/memory_estimate.h"

namespace nibble {

float HostWeight::at(int64_t i) const {
  switch (dtype) {
    case DType::F32: {
      float f;
      std::memcpy(&f, data + i * 4, 4);
      return f;
    }
    case DType::F16:
      return f16_to_f32(uint16_t(data[2 * i] | (data[2 * i + 1] << 8)));
    case DType::BF16:
      return bf16_to_f32(uint16_t(data[2 * i] | (data[2 * i + 1] << 8)));
    default:
      fail("weight " + name + ": element access needs a 16/32-bit dtype");
  }
}

uint64_t stored_bytes(const HostWeight& w) {
  if (const auto& q = w.quantize_to)
    return quantized_weight_bytes(w.rows * w.cols, q->blocksize, q->double_quant);
  uint64_t bytes = w.nbytes;
  if (const QuantState* q = w.quant.get()) {
    bytes += sizeof(q->code);
    if (q->nested)
      bytes += q->absmax_q.size() + q->nested_absmax.size() * 4 + sizeof(q->nested_code) + 4;
    else
      bytes += q->absmax.size() * 4;
  }
  return bytes;
}

}  // namespace nibble
