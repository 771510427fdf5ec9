#version 460
#extension GL_GOOGLE_include_directive : require
// out = round(x) · wᵀ for a prompt: 32x32 output tiles, the x and dequantized w tiles staged in
// shared memory 32 k-values at a time; each invocation accumulates 2x2 outputs in float32.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
const uint TILE = 32;
layout(local_size_x = 256) in;

#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight w;
  Floats out_;
  Floats x;
  uint rows;  // activation rows (M)
  uint n;     // weight rows (N)
  uint k;
} p;

shared float xs[TILE][TILE + 1];
shared float ws[TILE][TILE + 1];

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint tx = t % 16, ty = t / 16;
  const uint n0 = gl_WorkGroupID.x * TILE, m0 = gl_WorkGroupID.y * TILE;
  float acc[2][2] = {{0.0, 0.0}, {0.0, 0.0}};
  for (uint k0 = 0; k0 < p.k; k0 += TILE) {
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      const uint l = t + 256 * i, row = l / TILE, kk = l % TILE, k = k0 + kk;
      const bool in_k = k < p.k;
      xs[row][kk] = in_k && m0 + row < p.rows ? round_operand(p.x.v[(m0 + row) * p.k + k]) : 0.0;
      ws[row][kk] = in_k && n0 + row < p.n ? weight_value(p.w, (n0 + row) * p.k + k) : 0.0;
    }
    barrier();
    for (uint kk = 0; kk < TILE; ++kk)
      [[unroll]] for (uint i = 0; i < 2; ++i)
        [[unroll]] for (uint j = 0; j < 2; ++j)
          acc[i][j] += xs[ty + 16 * i][kk] * ws[tx + 16 * j][kk];
    barrier();
  }
  [[unroll]] for (uint i = 0; i < 2; ++i)
    [[unroll]] for (uint j = 0; j < 2; ++j) {
      const uint m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < p.rows && n < p.n) p.out_.v[m * p.n + n] = acc[i][j];
    }
}
