#version 460
#extension GL_GOOGLE_include_directive : require
// The prompt GEMM's activations as float16 operands, once per matmul rather than once per
// column tile: x16[i] = 8 values of x (16-byte aligned, a multiple of 8 values) as 4 words.
#include "common.glsl"

layout(constant_id = 0) const uint ROUND = 1;
layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Vec4s x;
  UVec4s x16;
  uint count;  // groups of 8 values
} p;

void main() {
  const uint i = group_index() * 256 + gl_LocalInvocationID.x;
  if (i >= p.count) return;
  const vec4 a = p.x.v[2 * i], b = p.x.v[2 * i + 1];
  p.x16.v[i] = uvec4(gemm_operand_pair(a.x, a.y, ROUND), gemm_operand_pair(a.z, a.w, ROUND),
                     gemm_operand_pair(b.x, b.y, ROUND), gemm_operand_pair(b.z, b.w, ROUND));
}
