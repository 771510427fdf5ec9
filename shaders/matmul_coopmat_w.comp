#version 460
#extension GL_GOOGLE_include_directive : require
// The prompt GEMM's 4-bit weight rows [n0, n0 + count * 32 / k) dequantized once per matmul
// (rather than once per 128 activation rows) into float16 operands: w16[4i .. 4i + 3] = 32
// consecutive values. k and the blocksize are multiples of 32, so 32 values are one 16-byte load
// of packed codes in one absmax block.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 3;
layout(constant_id = 1) const uint ROUND = 1;
const uint WG = 256;
layout(local_size_x = WG) in;

shared float code[16];
shared float nested_code[256];
#define CODE_AT(w, q) code[q]
#define NESTED_CODE_AT(w, q) nested_code[q]
#include "weight.glsl"

layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4s { uvec4 v[]; };

layout(push_constant) uniform Push {
  Weight w;
  UVec4s w16;
  uint n0;
  uint count;  // groups of 32 values
  uint k;
} p;

#include "half_operand.glsl"

void main() {
  const uint t = gl_LocalInvocationID.x, i = group_index() * WG + t;
  if (t < 16) code[t] = uintBitsToFloat(p.w.data.v[p.w.code + t]);
  if (WKIND == 4) nested_code[t] = uintBitsToFloat(p.w.data.v[p.w.code + 16 + t]);
  barrier();
  if (i >= p.count) return;
  const uint e0 = p.n0 * p.k + 32 * i;
  const uvec4 words = UVec4s(p.w.data).v[p.w.values / 4 + e0 / 32];
  const float absmax = block_absmax(p.w, e0 / p.w.blocksize);
  // Byte b of a word holds elements 2b (high nibble) and 2b + 1 (low nibble).
  [[unroll]] for (uint c = 0; c < 4; ++c) {
    uvec4 out16;
    [[unroll]] for (uint b = 0; b < 4; ++b)
      out16[b] = half2_bits(q4_operand(words[c], 8 * b + 4, absmax),
                            q4_operand(words[c], 8 * b, absmax));
    p.w16.v[4 * i + c] = out16;
  }
}
