#version 460
#extension GL_GOOGLE_include_directive : require
// out[r][c] = the sum of parts[j][r][c] over j in order: the prompt GEMM's output columns whose
// k range ran in parts (engine/vulkan/gemm_split.h). Each part is rows x cols floats; out has
// out_stride floats per row.
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Floats out_;
  Floats parts;
  uint rows;
  uint cols;
  uint count;
  uint out_stride;
} p;

void main() {
  const uint i = group_index() * 256 + gl_LocalInvocationID.x, size = p.rows * p.cols;
  if (i >= size) return;
  float s = 0.0;
  for (uint j = 0; j < p.count; ++j) s += p.parts.v[j * size + i];
  p.out_.v[(i / p.cols) * p.out_stride + i % p.cols] = s;
}
