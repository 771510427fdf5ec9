#version 460
#extension GL_GOOGLE_include_directive : require
// out[r, j] = sum_k round(x[r, k]) * w[j, k] for few activation rows (decode): one workgroup per
// output column j, its invocations striding over k, float32 accumulation.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
const uint WG = 128;
layout(local_size_x = WG) in;

#include "reduce.glsl"
#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight w;
  Floats out_;
  Floats x;
  uint rows;  // activation rows
  uint n;     // output columns = weight rows
  uint k;
} p;

void main() {
  const uint j = group_index();
  if (j >= p.n) return;  // uniform over the workgroup
  for (uint r = 0; r < p.rows; ++r) {
    float acc = 0.0;
    for (uint i = gl_LocalInvocationID.x; i < p.k; i += WG)
      acc += round_operand(p.x.v[r * p.k + i]) * weight_value(p.w, j * p.k + i);
    acc = workgroup_sum(acc);
    if (gl_LocalInvocationID.x == 0) p.out_.v[r * p.n + j] = acc;
  }
}
