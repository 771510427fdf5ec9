#include "engine/quant.h"

#include <algorithm>
#include <cmath>

namespace nibble {

const std::array<float, 16>& quant_code(QuantType t) {
  static const std::array<float, 16> nf4 = {
      -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
      -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
      0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
      0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};
  // bitsandbytes' FP4: bit 3 is the sign, the low bits index {0, 0.0625, 8, 12, 4, 6, 2, 3} / 12.
  static const std::array<float, 16> fp4 = [] {
    const float mag[8] = {0.0f, 0.0625f, 8.0f, 12.0f, 4.0f, 6.0f, 2.0f, 3.0f};
    std::array<float, 16> c{};
    for (int i = 0; i < 8; ++i) {
      c[i] = mag[i] / 12.0f;
      c[i + 8] = -mag[i] / 12.0f;
    }
    return c;
  }();
  return t == QuantType::NF4 ? nf4 : fp4;
}

// Port of bitsandbytes.functional.create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8).
const std::array<float, 256>& dynamic_map_signed() {
  static const std::array<float, 256> table = [] {
    std::vector<double> data;
    const int max_exponent_bits = 7, total_bits = 8;
    const int non_sign_bits = total_bits - 1;  // signed
    for (int i = 0; i < max_exponent_bits; ++i) {
      const int fraction_items = (1 << (i + non_sign_bits - max_exponent_bits)) + 1;
      // torch.linspace(0.1, 1, fraction_items) in float32
      std::vector<float> boundaries(fraction_items);
      for (int j = 0; j < fraction_items; ++j) {
        const float step = (1.0f - 0.1f) / float(fraction_items - 1);
        boundaries[j] = j < fraction_items / 2 ? 0.1f + step * float(j)
                                               : 1.0f - step * float(fraction_items - 1 - j);
      }
      for (int j = 0; j + 1 < fraction_items; ++j) {
        const float mean = (boundaries[j] + boundaries[j + 1]) / 2.0f;
        const double scale = std::pow(10.0, double(-(max_exponent_bits - 1) + i));
        data.push_back(scale * mean);
        data.push_back(-scale * mean);
      }
    }
    data.push_back(0.0);
    data.push_back(1.0);
    std::sort(data.begin(), data.end());
    std::array<float, 256> t{};
    for (size_t i = 0; i < data.size() && i < 256; ++i) t[i] = float(data[i]);
    return t;
  }();
  return table;
}

int64_t QuantState::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

float QuantState::block_absmax(int64_t block) const {
  if (!nested) return absmax[size_t(block)];
  return nested_code[absmax_q[size_t(block)]] * nested_absmax[size_t(block / nested_blocksize)] +
         offset;
}

void dequantize(const uint8_t* packed, const QuantState& s, int64_t begin, int64_t count,
                float* out) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t e = begin + i;
    const uint8_t byte = packed[e >> 1];
    const int q = (e & 1) ? (byte & 0x0f) : (byte >> 4);  // even element in the high nibble
    out[i] = s.code[q] * s.block_absmax(e / s.blocksize);
  }
}

}  // namespace nibble
