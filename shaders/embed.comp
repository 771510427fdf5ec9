#version 460
#extension GL_GOOGLE_include_directive : require
// out[r, c] = table[ids[r], c]: one invocation per output element.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
layout(local_size_x = 256) in;

#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight table;
  Floats out_;
  Ints ids;
  uint rows;
  uint cols;
} p;

void main() {
  const uint e = group_index() * 256 + gl_LocalInvocationID.x;
  if (e >= p.rows * p.cols) return;
  const uint r = e / p.cols, c = e % p.cols;
  p.out_.v[e] = weight_value(p.table, uint(p.ids.v[r]) * p.cols + c);
}
