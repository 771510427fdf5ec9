// Element types and the 16-bit float conversions every backend and the loader share.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>

namespace nibble {

enum class DType : uint8_t { F32, F16, BF16, I32, U8, NF4, FP4 };

// The dtype the 4-bit matmul rounds its operands to (bnb_4bit_compute_dtype).
enum class ComputeDType : uint8_t { F32, F16, BF16 };

std::string_view dtype_name(DType t);
std::string_view compute_dtype_name(ComputeDType t);

// Bytes per element; 0 for the packed 4-bit types (two per byte).
inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32:
    case DType::I32:
      return 4;
    case DType::F16:
    case DType::BF16:
      return 2;
    case DType::U8:
      return 1;
    default:
      return 0;
  }
}

inline float bits_to_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline uint32_t f32_to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

inline float bf16_to_f32(uint16_t h) {
  return bits_to_f32(uint32_t(h) << 16);
}

// Round to nearest even, as torch does; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  _Float16 v;
  std::memcpy(&v, &h, 2);
  return float(v);
}
inline uint16_t f32_to_f16(float f) {
  _Float16 v = _Float16(f);
  uint16_t h;
  std::memcpy(&h, &v, 2);
  return h;
}

// Round a float32 to the nearest value of the compute dtype, returned as float32.
inline float round_to(ComputeDType t, float f) {
  switch (t) {
    case ComputeDType::F16:
      return float(_Float16(f));
    case ComputeDType::BF16:
      return bf16_to_f32(f32_to_bf16(f));
    default:
      return f;
  }
}

}  // namespace nibble
