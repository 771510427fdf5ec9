#version 460
#extension GL_GOOGLE_include_directive : require
// Merges attention's per-split (m, l, o) into out[row, head]: rescale each split to the global
// max, sum, normalize. One workgroup per (row, head). OUT16 also writes the output as packed
// operands to `out16`, as attention.comp's.
#include "common.glsl"

layout(constant_id = 0) const uint OUT16 = 0;
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
  Words out16;  // OUT16
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
  const uint out_base = row * p.out_cols + head * p.head_dim;
  // A pair of values per invocation (head_dim is even), for OUT16's words.
  for (uint d = 2 * gl_LocalInvocationID.x; d < p.head_dim; d += 2 * WG) {
    vec2 o = vec2(0.0);
    for (uint s = 0; s < p.n_splits; ++s)
      o += vec2(p.partial.v[first + s * stride + 2 + d], p.partial.v[first + s * stride + 3 + d]) *
           exp(p.partial.v[first + s * stride] - m);
    p.out_.v[out_base + d] = o.x / l;
    p.out_.v[out_base + d + 1] = o.y / l;
    if (OUT16 != 0)
      p.out16.v[(out_base + d) / 2] =
          operand_pair(o.x / l, o.y / l, OUT16);
  }
}
