#version 460
#extension GL_GOOGLE_include_directive : require
// The prompt GEMM's 4-bit weight rows [n0, n0 + count * 8 / k) dequantized once per matmul
// (rather than once per 128 activation rows) into float16 operands: w16[i] = 8 consecutive
// values as 4 words. k % 32 == 0 and the blocksize a multiple of 16, so 8 values are one word
// of packed codes in one absmax block.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 3;
layout(constant_id = 1) const uint ROUND = 1;
const uint WG = 256;
layout(local_size_x = WG) in;

#define SHARED_CODES
#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight w;
  UVec4s w16;
  uint n0;
  uint count;  // groups of 8 values
  uint k;
} p;

#include "half_operand.glsl"

void main() {
  const uint t = gl_LocalInvocationID.x, i = group_index() * WG + t;
  stage_codes(p.w);
  if (i >= p.count) return;
  const uint e0 = p.n0 * p.k + 8 * i;
  const uint word = p.w.data.v[p.w.values + e0 / 8];
  const float absmax = block_absmax(p.w, e0 / p.w.blocksize);
  // Byte b holds elements 2b (high nibble) and 2b + 1 (low nibble).
  uvec4 out16;
  [[unroll]] for (uint b = 0; b < 4; ++b)
    out16[b] = half2_bits(q4_operand(word, 8 * b + 4, absmax), q4_operand(word, 8 * b, absmax));
  p.w16.v[i] = out16;
}
