#version 460
#extension GL_GOOGLE_include_directive : require
// Rotary position embedding in place, HF rotate_half layout: for each head, element i pairs with
// i + head_dim/2; the position of row r is the step's pos0 + r.
#include "common.glsl"
#include "rope.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Floats x;
  Floats inv_freq;
  StepData step;
  uint rows;
  uint cols;  // row stride
  uint n_heads;
  uint head_dim;
} p;

void main() {
  const uint half_dim = p.head_dim / 2;
  const uint e = group_index() * 256 + gl_LocalInvocationID.x;
  if (e >= p.rows * p.n_heads * half_dim) return;
  const uint i = e % half_dim, h = (e / half_dim) % p.n_heads, r = e / (half_dim * p.n_heads);
  precise float angle = float(p.step.pos0 + int(r)) * p.inv_freq.v[i];
  const uint a = r * p.cols + h * p.head_dim + i;
  rope_rotate(p.x, a, a + half_dim, angle);
}
