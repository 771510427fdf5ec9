// The bitsandbytes encoder of loader/quantize.cpp, operation for operation in float32, for the GPU
// quantizer (quantize_4bit.comp, quantize_nested.comp): same bytes on every device, whether it
// flushes subnormals or not, because every subnormal the host would flush is flushed here
// explicitly and no result depends on the device's division or fused multiply-add.

// The host's tables (loader/quantize.h four_bit_thresholds, bnb_reciprocal_table,
// dynamic_map_signed), uploaded once; engine/vulkan/vk_quantizer.cpp mirrors this layout.
layout(buffer_reference, std430, buffer_reference_align = 4) buffer QuantConstants {
  uint rcp_table[32];
  float nf4[15];
  float fp4[7];
  uint fp4_index[8];
  float nested_code[256];
};

const float kMinNormal = 1.17549435e-38;  // FLT_MIN

// bitsandbytes' kernel is built with --use_fast_math: its operands and products are flushed.
float flush_subnormal(float v) { return abs(v) < kMinNormal ? 0.0 : v; }

bool non_finite(float v) { return (floatBitsToUint(v) & 0x7f800000u) == 0x7f800000u; }

// float16 bits -> float32 in integer arithmetic, exact for subnormal halves on any device.
float f16_bits_to_f32(uint h) {
  const uint sign = (h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 31u) return uintBitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  if (exponent != 0u) return uintBitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
  const float v = float(mantissa) * uintBitsToFloat(103u << 23);  // mantissa * 2^-24, normal
  return (sign != 0u) ? -v : v;
}

// bnb_reciprocal (loader/quantize.cpp): 1/absmax as rcp.approx.ftz.f32 gives it. The correctly
// rounded 1/significand comes from an integer long division (a shader's division is not correctly
// rounded), then the table's other neighbour where it says so, then the exponent.
float bnb_reciprocal(float absmax, QuantConstants k) {
  const uint bits = floatBitsToUint(absmax);
  const int exponent = int((bits >> 23) & 0xffu);
  if (exponent == 0) return uintBitsToFloat(0x7f800000u);  // ftz: 1/0
  const uint fraction = bits & 0x7fffffu;
  uint unit_bits = 0x3f800000u;  // 1/1 (the table's bit 0 is clear)
  if (fraction != 0u) {
    // 2^23 / m for the 24-bit significand m in (2^23, 2^24): q = floor(2^47 / m) in (2^23, 2^24).
    const uint m = 0x800000u | fraction;
    uint q = 0u, r = 0x800000u;
    for (int i = 0; i < 24; ++i) {
      r <<= 1;
      q <<= 1;
      if (r >= m) {
        r -= m;
        q |= 1u;
      }
    }
    const bool up = 2u * r > m;  // never a tie: m is no power of two
    if (up) q += 1u;
    if ((fraction & 0x1fffu) == 0u) {
      const uint entry = fraction >> 13;
      if (((k.rcp_table[entry >> 5] >> (entry & 31u)) & 1u) != 0u) q = up ? q - 1u : q + 1u;
    }
    unit_bits = (126u << 23) | (q - 0x800000u);  // q * 2^-24
  }
  const int scaled_exponent = int(unit_bits >> 23) - (exponent - 127);
  if (scaled_exponent <= 0) return 0.0;  // ftz: a subnormal result is +0
  return uintBitsToFloat((uint(scaled_exponent) << 23) | (unit_bits & 0x7fffffu));
}

// bitsandbytes' `value * (1/absmax)` with ftz.
float scale_value(float x, float scale) {
  precise float v = x * scale;
  return flush_subnormal(v);
}

// quantize_8bit_index (loader/quantize_index.h, which GLSL cannot include): dQuantize<0>'s
// binary search over the signed dynamic map, then the midpoint towards the neighbour on x's side.
uint quantize_8bit_index(float x, QuantConstants k) {
  uint pivot = 127u, upper_pivot = 255u, lower_pivot = 0u;
  float lower = -1.0, upper = 1.0;
  float val = k.nested_code[pivot];
  for (uint step = 64u; step > 0u; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = k.nested_code[pivot];
  }
  if (upper_pivot == 255u) upper = k.nested_code[255];
  if (lower_pivot == 0u) lower = k.nested_code[0];
  precise float up_mid = (upper + val) * 0.5;
  precise float low_mid = (lower + val) * 0.5;
  if (x > val) return x > up_mid ? upper_pivot : pivot;
  return x < low_mid ? lower_pivot : pivot;
}
