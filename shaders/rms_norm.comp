#version 460
#extension GL_GOOGLE_include_directive : require
// out[r] = g * (x[r] / sqrt(mean(x[r]²) + eps)): one workgroup per row.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
const uint WG = 256;
layout(local_size_x = WG) in;

#include "reduce.glsl"
#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight g;
  Floats out_;
  Floats x;
  uint rows;
  uint cols;
  float eps;
} p;

void main() {
  const uint r = group_index();
  if (r >= p.rows) return;
  float ss = 0.0;
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG) {
    const float v = p.x.v[r * p.cols + i];
    ss += v * v;
  }
  ss = workgroup_sum(ss);
  const float scale = 1.0 / sqrt(ss / float(p.cols) + p.eps);
  for (uint i = gl_LocalInvocationID.x; i < p.cols; i += WG)
    p.out_.v[r * p.cols + i] = weight_value(p.g, i) * (p.x.v[r * p.cols + i] * scale);
}
