#version 460
#extension GL_GOOGLE_include_directive : require
// OP 0: a += b (residual add). OP 1: out = silu(a) * b (SwiGLU).
// GEMM_OPERANDS 1 / 2: every invocation takes a pair of values (n is even) and also writes them
// as the prompt GEMM's float16 operands to x16 (common.glsl gemm_operand_pair), sparing the GEMM
// that reads out next its conversion.
#include "common.glsl"

layout(constant_id = 0) const uint OP = 0;
layout(constant_id = 1) const uint GEMM_OPERANDS = 0;
layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Floats out_;
  Floats a;
  Floats b;
  uint n;
  uint pad;
  Words x16;  // GEMM_OPERANDS only
} p;

float result(uint i) {
  const float a = p.a.v[i], b = p.b.v[i];
  return OP == 0 ? a + b : a / (1.0 + exp(-a)) * b;
}

void main() {
  const uint i = group_index() * 256 + gl_LocalInvocationID.x;
  if (GEMM_OPERANDS == 0) {
    if (i < p.n) p.out_.v[i] = result(i);
    return;
  }
  if (2 * i >= p.n) return;
  const float lo = result(2 * i), hi = result(2 * i + 1);
  p.out_.v[2 * i] = lo;
  p.out_.v[2 * i + 1] = hi;
  p.x16.v[i] = gemm_operand_pair(lo, hi, GEMM_OPERANDS);
}
