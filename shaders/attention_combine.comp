#version 460
#extension GL_GOOGLE_include_directive : require
// Merges attention's per-split (m, l, o) into out[row, head]: rescale each split to the global
// max, sum, normalize. One workgroup per (row, head).
#include "common.glsl"

const uint WG = 64;
layout(local_size_x = WG) in;

layout(push_constant) uniform Push {
  Floats out_;
  Floats partial;
  uint items;  // rows * n_heads
  uint n_heads;
  uint head_dim;
  uint out_cols;
  uint n_splits;
} p;

void main() {
  const uint item = group_index();
  if (item >= p.items) return;
  const uint stride = 2 + p.head_dim, first = item * p.n_splits * stride;
  float m = -3.0e38;
  for (uint s = 0; s < p.n_splits; ++s) m = max(m, p.partial.v[first + s * stride]);
  float l = 0.0;
  for (uint s = 0; s < p.n_splits; ++s)
    l += p.partial.v[first + s * stride + 1] * exp(p.partial.v[first + s * stride] - m);
  const uint row = item / p.n_heads, head = item % p.n_heads;
  for (uint d = gl_LocalInvocationID.x; d < p.head_dim; d += WG) {
    float o = 0.0;
    for (uint s = 0; s < p.n_splits; ++s)
      o += p.partial.v[first + s * stride + 2 + d] * exp(p.partial.v[first + s * stride] - m);
    p.out_.v[row * p.out_cols + head * p.head_dim + d] = o / l;
  }
}
