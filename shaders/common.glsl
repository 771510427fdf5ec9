// Shared by every shader: device-address buffer types, 16-bit and byte access through 32-bit
// words (so no 8/16-bit storage feature is needed), exact float rounding, and the linear id of a
// workgroup in a 2-D grid (grids wider than 65535 groups are folded into y by the host).
#extension GL_EXT_buffer_reference : require
#extension GL_EXT_control_flow_attributes : enable

layout(buffer_reference, std430, buffer_reference_align = 4) buffer Floats { float v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer Ints { int v[]; };
layout(buffer_reference, std430, buffer_reference_align = 4) buffer Words { uint v[]; };
// 16-byte (and 8-byte) loads and stores, where the host has checked the alignment.
layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4s { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer UVec2s { uvec2 v[]; };
// Per-step state written by begin_step, read by position-dependent shaders so that a recorded
// step does not bake the position into its commands.
layout(buffer_reference, std430, buffer_reference_align = 4) buffer StepData {
  int pos0;
  int n_tokens;
  float u;  // the draw of the step's sample op (shaders/sample.comp)
};

uint group_index() { return gl_WorkGroupID.y * gl_NumWorkGroups.x + gl_WorkGroupID.x; }

// Half `i` (counted from the start of `w`) of 16-bit data stored two per word, low half first.
float f16_at(Words w, uint i) {
  const uint word = w.v[i >> 1];
  return unpackHalf2x16((i & 1u) != 0u ? word >> 16 : word).x;
}
float bf16_at(Words w, uint i) {
  const uint word = w.v[i >> 1];
  return uintBitsToFloat((i & 1u) != 0u ? word & 0xffff0000u : word << 16);
}
uint byte_at(Words w, uint i) { return (w.v[i >> 2] >> (8u * (i & 3u))) & 0xffu; }

// float32 -> float16 bits, round to nearest even, like the host's _Float16 conversion. Integer
// arithmetic so the result does not depend on the driver's conversion rounding mode.
uint f32_to_f16_bits(float f) {
  const uint u = floatBitsToUint(f);
  const uint sign = (u >> 16) & 0x8000u;
  uint a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (a >= 0x477ff000u) return sign | 0x7c00u;  // rounds to infinity
  if (a >= 0x38800000u) {                       // a normal half
    a += 0xfffu + ((a >> 13) & 1u);
    return sign | ((a - 0x38000000u) >> 13);
  }
  // A subnormal half: count units of 2^-24 (exact scaling), rounded to even.
  return sign | uint(roundEven(uintBitsToFloat(a) * 16777216.0));
}
float round_f16(float f) { return unpackHalf2x16(f32_to_f16_bits(f)).x; }
// Two floats as the float16 pair of one word, `lo` in the low half.
uint f16_pair(float lo, float hi) { return f32_to_f16_bits(lo) | (f32_to_f16_bits(hi) << 16); }

// float32 -> bfloat16 -> float32, round to nearest even, exactly as engine/dtype.h f32_to_bf16.
float round_bf16(float f) {
  uint u = floatBitsToUint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return f;
  u += 0x7fffu + ((u >> 16) & 1u);
  return uintBitsToFloat(u & 0xffff0000u);
}

// v as a 16-bit matmul operand: rounded to float16 (round 1) or bfloat16 (round 2), the bits
// that shaders/matvec.glsl's X16 reads.
uint operand_bits(float v, uint round) {
  return round == 1 ? f32_to_f16_bits(v) : floatBitsToUint(round_bf16(v)) >> 16;
}
// Two of them as X16 packs them in a word, `lo` in the low half.
uint operand_pair(float lo, float hi, uint round) {
  return operand_bits(lo, round) | (operand_bits(hi, round) << 16);
}

// Two values as the prompt GEMM's float16 operands (matmul_coopmat.comp's x16, as
// matmul_coopmat_x.comp writes them), `lo` in the low half: rounded to float16 (round 1), or to
// bfloat16, which float16 holds exactly in the range half_operand.glsl states (round 2).
uint gemm_operand_pair(float lo, float hi, uint round) {
  if (round == 1) return f16_pair(lo, hi);
  return packHalf2x16(vec2(round_bf16(lo), round_bf16(hi)));
}
