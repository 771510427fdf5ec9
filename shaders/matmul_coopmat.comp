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
// Operands are exactly those of the scalar path (half_operand.glsl, which also says how bfloat16
// values are held in float16 fragments).
// Written for VK_NV_cooperative_matrix (what Debian 12's glslang emits) with 32-wide subgroups;
// the host checks both.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 3;
layout(constant_id = 1) const uint ROUND = 1;
// VEC: k % 32 == 0, and x and w are float16 operands already (matmul_coopmat_x.comp and
// matmul_coopmat_w.comp, which dequantize each weight once per matmul instead of once per BM
// activation rows: the in-GEMM decoding bound the multiplies, see docs/VULKAN.md), so staging is
// 16-byte copies. Otherwise every value is loaded, bounds-checked, decoded and converted here.
layout(constant_id = 2) const bool VEC = false;
layout(constant_id = 3) const uint BM = 128;  // 64 or 128 activation rows per workgroup

const uint BN = 128, BK = 32;
const uint WG = 256;            // 8 subgroups: 2 along m x 4 along n
const uint FM = BM / 32, FN = 2;  // 16x16 fragments per subgroup
const uint ROW = BK / 8 + 1;    // uvec4 per staged row: BK halves + 16 bytes against bank conflicts
const uint STAGE = 128 * ROW;   // uvec4 per buffer
layout(local_size_x = WG) in;

shared float code[16];
shared float nested_code[256];
#define CODE_AT(w, q) code[q]
#define NESTED_CODE_AT(w, q) nested_code[q]
#include "weight.glsl"

layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4s { uvec4 v[]; };

layout(push_constant) uniform Push {
  Weight w;     // !VEC
  Floats out_;  // column 0 of this dispatch's output columns
  Floats x;     // !VEC
  UVec4s x16;   // VEC: x as float16 operands, 8 per uvec4
  UVec4s w16;   // VEC: weight rows [0, n) as float16 operands
  uint rows;    // activation rows (M)
  uint n;       // weight rows (output columns) of this dispatch
  uint k;
  uint out_stride;  // floats per output row
} p;

#include "half_operand.glsl"

shared uvec4 xs[2 * STAGE];  // [buffer][row][k]: float16 bits; after the loop, the output staging
shared uvec4 ws[2 * STAGE];

// An invocation's share of a k slice (VEC), 16 bytes each: uvec4 `t + WG * j` of the x tile
// (BM rows x 4) and of the weight tile (128 rows x 4) is row (t + WG * j) / 4, part % 4.
struct Fetch {
  uvec4 x[2];  // BM / 64 of them
  uvec4 w[2];
};

Fetch fetch(uint k0, uint m0, uint n0) {
  Fetch f;
  if (!VEC) return f;
  const uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < 2; ++j) {
    const uint i = t + WG * j, m = m0 + i / 4, n = n0 + i / 4;
    if (j < BM / 64) f.x[j] = m < p.rows ? p.x16.v[(m * p.k + k0) / 8 + i % 4] : uvec4(0);
    f.w[j] = n < p.n ? p.w16.v[(n * p.k + k0) / 8 + i % 4] : uvec4(0);
  }
  return f;
}

void stage(Fetch f, uint buf, uint k0, uint m0, uint n0) {
  const uint t = gl_LocalInvocationID.x;
  if (VEC) {
    [[unroll]] for (uint j = 0; j < 2; ++j) {
      const uint i = t + WG * j, at = buf * STAGE + (i / 4) * ROW + i % 4;
      if (j < BM / 64) xs[at] = f.x[j];
      ws[at] = f.w[j];
    }
    return;
  }
  // 16 consecutive k of x row and weight row t / 2, from k0 + 16 * (t % 2).
  const uint r = t / 2, h = t % 2, at = buf * STAGE + r * ROW + 2 * h, m = m0 + r, n = n0 + r;
  uint xb[8], wb[8];
  [[unroll]] for (uint i = 0; i < 8; ++i) {
    float xv[2], wv[2];
    [[unroll]] for (uint j = 0; j < 2; ++j) {
      const uint k = k0 + 16 * h + 2 * i + j;
      xv[j] = r < BM && m < p.rows && k < p.k ? x_operand(p.x.v[m * p.k + k]) : 0.0;
      wv[j] = n < p.n && k < p.k ? w_operand(weight_value(p.w, n * p.k + k)) : 0.0;
    }
    xb[i] = half2_bits(xv[0], xv[1]);
    wb[i] = half2_bits(wv[0], wv[1]);
  }
  if (r < BM) {
    xs[at] = uvec4(xb[0], xb[1], xb[2], xb[3]);
    xs[at + 1] = uvec4(xb[4], xb[5], xb[6], xb[7]);
  }
  ws[at] = uvec4(wb[0], wb[1], wb[2], wb[3]);
  ws[at + 1] = uvec4(wb[4], wb[5], wb[6], wb[7]);
}

void main() {
  const uint t = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
  const uint wm = sg / 4, wn = sg % 4;
  const uint n0 = gl_WorkGroupID.x * BN, m0 = gl_WorkGroupID.y * BM;
  if (!VEC) {
    if (WKIND >= 3 && t < 16) code[t] = uintBitsToFloat(p.w.data.v[p.w.code + t]);
    if (WKIND == 4) nested_code[t] = uintBitsToFloat(p.w.data.v[p.w.code + 16 + t]);
    barrier();
  }

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
          p.out_.v[om * p.out_stride + on] =
              uintBitsToFloat(xs[staging + row * 4 + col / 4][col % 4]) / W_SCALE;
      }
      subgroupBarrier();
    }
}
