#version 460
#extension GL_GOOGLE_include_directive : require
// The prompt GEMM's split-k partial sums (matmul_coopmat.comp) added in split order into the
// output: out[row][column] = sum over s of partial[s][row][column].
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Floats out_;
  Floats partial;
  uint rows;
  uint n;           // columns
  uint out_stride;  // floats per output row
  uint splits;
} p;

void main() {
  const uint i = group_index() * 256 + gl_LocalInvocationID.x;
  if (i >= p.rows * p.n) return;
  float sum = p.partial.v[i];
  for (uint s = 1; s < p.splits; ++s) sum += p.partial.v[s * p.rows * p.n + i];
  p.out_.v[(i / p.n) * p.out_stride + i % p.n] = sum;
}
