#version 460
#extension GL_GOOGLE_include_directive : require
// OP 0: a += b (residual add). OP 1: out = silu(a) * b (SwiGLU).
#include "common.glsl"

layout(constant_id = 0) const uint OP = 0;
layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Floats out_;
  Floats a;
  Floats b;
  uint n;
} p;

void main() {
  const uint i = group_index() * 256 + gl_LocalInvocationID.x;
  if (i >= p.n) return;
  const float a = p.a.v[i], b = p.b.v[i];
  p.out_.v[i] = OP == 0 ? a + b : a / (1.0 + exp(-a)) * b;
}
