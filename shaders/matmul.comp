#version 460
#extension GL_GOOGLE_include_directive : require
// out = round(x) · wᵀ for a prompt: 64x64 output tiles, the x and dequantized w tiles staged in
// shared memory 16 k-values at a time (each weight value is dequantized once per 64 prompt
// rows); each invocation accumulates a 4x4 block of outputs in float32. 4-bit weights whose rows
// are whole words of 8 codes in one block are staged a word at a time (one absmax per 8 values,
// the code tables in shared memory), the rest value by value.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
const uint TILE = 64, TILE_K = 16;
layout(local_size_x = 256) in;

#define SHARED_CODES
#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight w;
  Floats out_;
  Floats x;
  uint rows;  // activation rows (M)
  uint n;     // weight rows (N)
  uint k;
} p;

shared float xs[TILE_K][TILE + 1];  // [k][row]: the inner loop reads 4 rows at one k
shared float ws[TILE_K][TILE + 1];

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint tx = t % 16, ty = t / 16;
  const uint n0 = gl_WorkGroupID.x * TILE, m0 = gl_WorkGroupID.y * TILE;
  if (WKIND >= 3) stage_codes(p.w);
  const bool words = WKIND >= 3 && p.k % 8 == 0 && p.w.blocksize % 8 == 0;  // uniform
  float acc[4][4];
  [[unroll]] for (uint i = 0; i < 4; ++i)
    [[unroll]] for (uint j = 0; j < 4; ++j) acc[i][j] = 0.0;
  for (uint k0 = 0; k0 < p.k; k0 += TILE_K) {
    // 64 rows x 16 k of each operand: 4 values per invocation, consecutive k in a row.
    [[unroll]] for (uint i = 0; i < 4; ++i) {
      const uint l = t + 256 * i, row = l / TILE_K, kk = l % TILE_K, k = k0 + kk;
      const bool in_k = k < p.k;
      xs[kk][row] = in_k && m0 + row < p.rows ? round_operand(p.x.v[(m0 + row) * p.k + k]) : 0.0;
      if (!words)
        ws[kk][row] = in_k && n0 + row < p.n ? weight_value(p.w, (n0 + row) * p.k + k) : 0.0;
    }
    // A word of 8 codes per invocation: row t / 2, k from k0 + 8 * (t % 2); byte b holds
    // elements 2b (high nibble) and 2b + 1 (low nibble). The same values as weight_value().
    if (words && t < 2 * TILE) {
      const uint row = t / 2, kk = 8 * (t % 2), e0 = (n0 + row) * p.k + k0 + kk;
      const bool inside = k0 + kk < p.k && n0 + row < p.n;
      const uint word = inside ? p.w.data.v[p.w.values + e0 / 8] : 0u;
      const float absmax = inside ? block_absmax(p.w, e0 / p.w.blocksize) : 0.0;
      [[unroll]] for (uint b = 0; b < 4; ++b) {
        const float hi = q4_value(p.w, word, 8 * b + 4, absmax);
        const float lo = q4_value(p.w, word, 8 * b, absmax);
        ws[kk + 2 * b][row] = round_dequantized(hi);
        ws[kk + 2 * b + 1][row] = round_dequantized(lo);
      }
    }
    barrier();
    [[unroll]] for (uint kk = 0; kk < TILE_K; ++kk) {
      float a[4], b[4];
      [[unroll]] for (uint i = 0; i < 4; ++i) a[i] = xs[kk][ty + 16 * i];
      [[unroll]] for (uint j = 0; j < 4; ++j) b[j] = ws[kk][tx + 16 * j];
      [[unroll]] for (uint i = 0; i < 4; ++i)
        [[unroll]] for (uint j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
    barrier();
  }
  [[unroll]] for (uint i = 0; i < 4; ++i)
    [[unroll]] for (uint j = 0; j < 4; ++j) {
      const uint m = m0 + ty + 16 * i, n = n0 + tx + 16 * j;
      if (m < p.rows && n < p.n) p.out_.v[m * p.n + n] = acc[i][j];
    }
}
