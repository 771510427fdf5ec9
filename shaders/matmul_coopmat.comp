#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// out = round(x) · wᵀ for a prompt on the matrix units (cooperative matrices): BM x 128 output
// tiles; each 32-wide k slice of x and of the dequantized weight is staged in shared memory as
// float16 bits, double-buffered, with the global loads of slice s + 2 issued before the
// multiplies of slice s; 8 subgroups each multiply-accumulate a (BM / 2) x 32 block in float32
// 16x16x16 fragments.
//
// Operands are exactly those of the scalar path (half_operand.glsl). For bfloat16 compute the
// weight enters scaled by 2^8 and the sum leaves scaled by 2^-8 (both exact), so that weights of
// magnitude [2^-25, 256] stay exact in float16.
// Written for VK_NV_cooperative_matrix (what Debian 12's glslang emits) with 32-wide subgroups;
// the host checks both.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 3;
layout(constant_id = 1) const uint ROUND = 1;
// VEC: k % 32 == 0, x already float16 (matmul_coopmat_x.comp) and 4-bit blocks a multiple of 16
// values: an invocation's 16 weights of a row are one 8-byte load in one absmax block. Otherwise
// every value is loaded, bounds-checked and converted on its own.
layout(constant_id = 2) const bool VEC = false;
layout(constant_id = 3) const uint BM = 128;  // 64 or 128 activation rows per workgroup

const uint BN = 128, BK = 32;
const uint WG = 256;            // 8 subgroups: 2 along m x 4 along n
const uint FM = BM / 32, FN = 2;  // 16x16 fragments per subgroup
const uint ROW = BK / 8 + 1;    // uvec4 per staged row: BK halves + 16 bytes against bank conflicts
const uint STAGE = 128 * ROW;   // uvec4 per buffer
const float W_SCALE = ROUND == 2 ? 256.0 : 1.0;
layout(local_size_x = WG) in;

shared float code[16];
shared float nested_code[256];
#define CODE_AT(w, q) code[q]
#define NESTED_CODE_AT(w, q) nested_code[q]
#include "weight.glsl"
#include "half_operand.glsl"

layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4s { uvec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 8) buffer UVec2s { uvec2 v[]; };

layout(push_constant) uniform Push {
  Weight w;
  Floats out_;
  Floats x;
  UVec4s x16;  // VEC: x as float16 operands, 8 per uvec4
  uint rows;   // activation rows (M)
  uint n;      // weight rows (N)
  uint k;
} p;

shared uvec4 xs[2 * STAGE];  // [buffer][row][k]: float16 bits; after the loop, the output staging
shared uvec4 ws[2 * STAGE];

// One dequantized 4-bit value, rounded like weight_value(), scaled by W_SCALE.
float q4_operand(uint word, uint shift, float absmax) {
  precise float v = CODE_AT(p.w, bitfieldExtract(word, int(shift), 4)) * absmax;
  return ROUND == 2 ? round_dequantized(v) * W_SCALE : v;
}

// An invocation's share of a k slice (VEC): BM x 4 uvec4 of x (uvec4 `t + WG * j` is row
// (t + WG * j) / 4, part % 4) and 16 packed weights of row t / 2 from k = 16 * (t % 2).
struct Fetch {
  uvec4 x[2];  // BM / 64 of them
  uvec2 w;
};

Fetch fetch(uint k0, uint m0, uint n0) {
  Fetch f;
  if (!VEC) return f;
  const uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < BM / 64; ++j) {
    const uint i = t + WG * j, m = m0 + i / 4;
    f.x[j] = m < p.rows ? p.x16.v[(m * p.k + k0) / 8 + i % 4] : uvec4(0);
  }
  const uint n = n0 + t / 2;
  f.w = n < p.n ? UVec2s(p.w.data).v[p.w.values / 2 + (n * p.k + k0 + 16 * (t % 2)) / 16]
                : uvec2(0);
  return f;
}

void stage(Fetch f, uint buf, uint k0, uint m0, uint n0) {
  const uint t = gl_LocalInvocationID.x, r = t / 2, h = t % 2, at = buf * STAGE + r * ROW + 2 * h;
  const uint m = m0 + r, n = n0 + r;
  uint wb[8];
  if (VEC) {
    [[unroll]] for (uint j = 0; j < BM / 64; ++j) {
      const uint i = t + WG * j;
      xs[buf * STAGE + (i / 4) * ROW + i % 4] = f.x[j];
    }
    const uint e0 = n * p.k + k0 + 16 * h;
    const float absmax = n < p.n ? block_absmax(p.w, e0 / p.w.blocksize) : 0.0;
    // Byte b of the 8 holds elements 2b (high nibble) and 2b + 1 (low nibble).
    [[unroll]] for (uint b = 0; b < 8; ++b) {
      const uint word = b < 4 ? f.w.x : f.w.y, shift = 8 * (b % 4);
      wb[b] = half2_bits(q4_operand(word, shift + 4, absmax), q4_operand(word, shift, absmax));
    }
  } else {
    uint xb[8];
    [[unroll]] for (uint i = 0; i < 8; ++i) {
      float xv[2], wv[2];
      [[unroll]] for (uint j = 0; j < 2; ++j) {
        const uint k = k0 + 16 * h + 2 * i + j;
        xv[j] = r < BM && m < p.rows && k < p.k ? x_operand(p.x.v[m * p.k + k]) : 0.0;
        wv[j] = n < p.n && k < p.k ? weight_value(p.w, n * p.k + k) * W_SCALE : 0.0;
      }
      xb[i] = half2_bits(xv[0], xv[1]);
      wb[i] = half2_bits(wv[0], wv[1]);
    }
    if (r < BM) {
      xs[at] = uvec4(xb[0], xb[1], xb[2], xb[3]);
      xs[at + 1] = uvec4(xb[4], xb[5], xb[6], xb[7]);
    }
  }
  ws[at] = uvec4(wb[0], wb[1], wb[2], wb[3]);
  ws[at + 1] = uvec4(wb[4], wb[5], wb[6], wb[7]);
}

void main() {
  const uint t = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
  const uint wm = sg / 4, wn = sg % 4;
  const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
  if (WKIND >= 3 && t < 16) code[t] = uintBitsToFloat(p.w.data.v[p.w.code + t]);
  if (WKIND == 4) nested_code[t] = uintBitsToFloat(p.w.data.v[p.w.code + 16 + t]);
  barrier();

  fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[FM][FN];
  [[unroll]] for (uint i = 0; i < FM; ++i)
    [[unroll]] for (uint j = 0; j < FN; ++j) acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

  const uint slices = (p.k + BK - 1) / BK;
  stage(fetch(0, m0, n0), 0, 0, m0, n0);
  Fetch next;  // slice s + 1, in flight
  if (slices > 1) next = fetch(BK, m0, n0);
  barrier();
  for (uint s = 0; s < slices; ++s) {
    const uint buf = s % 2;
    Fetch after;
    if (s + 2 < slices) after = fetch((s + 2) * BK, m0, n0);
    [[unroll]] for (uint kk = 0; kk < BK; kk += 16) {
      fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a[FM], b[FN];
      [[unroll]] for (uint i = 0; i < FM; ++i)
        coopMatLoadNV(a[i], xs, buf * STAGE + (wm * (BM / 2) + 16 * i) * ROW + kk / 8, ROW, false);
      // wᵀ: the staged weight rows are the columns of the B fragment.
      [[unroll]] for (uint j = 0; j < FN; ++j)
        coopMatLoadNV(b[j], ws, buf * STAGE + (wn * 32 + 16 * j) * ROW + kk / 8, ROW, true);
      [[unroll]] for (uint i = 0; i < FM; ++i)
        [[unroll]] for (uint j = 0; j < FN; ++j) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
    }
    if (s + 1 < slices) stage(next, buf ^ 1, (s + 1) * BK, m0, n0);
    next = after;
    barrier();
  }

  // Each subgroup writes its fragments through 16x16 floats of shared memory (the staging
  // buffers are free now), so that edge tiles store only the rows and columns that exist.
  const uint staging = sg * 64;  // 16 rows of 4 uvec4
  [[unroll]] for (uint i = 0; i < FM; ++i)
    [[unroll]] for (uint j = 0; j < FN; ++j) {
      coopMatStoreNV(acc[i][j], xs, staging, 4, false);
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint e = 0; e < 8; ++e) {
        const uint idx = lane + 32 * e, row = idx / 16, col = idx % 16;
        const uint om = m0 + wm * (BM / 2) + 16 * i + row, on = n0 + wn * 32 + 16 * j + col;
        if (om < p.rows && on < p.n)
          p.out_.v[om * p.n + on] = uintBitsToFloat(xs[staging + row * 4 + col / 4][col % 4]) / W_SCALE;
      }
      subgroupBarrier();
    }
}
