#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// out = round(x) · wᵀ for a prompt on the matrix units (cooperative matrices): 128x128 output
// tiles, each from 8 subgroups that multiply-accumulate a 64x32 block in float32 16x16x16
// fragments (6 fragment loads per 8 multiply-adds). Each 64-wide k slice of x and of the
// weight is staged in shared memory as float16 bits (36 KiB: vk_device.h kCoopMatSharedBytes,
// which the host checks against the device's limit); the global loads of slice s + 1 are issued
// into registers before the multiplies of slice s. One stage of 64-wide slices beat two of
// 32-wide ones (two barriers per 64 k instead of one per 32, but half the slices):
// docs/PERF.md "Prefill", session 3. 8 subgroups of 64x32 (172 registers: two subgroups per
// SM quarter, one's loads overlapping the other's multiplies) beat 4 of 64x64 (255 registers,
// one per quarter: 7B pp512 +40 %), 8 of 32x64, 16 of 32x32, and 32-wide slices:
// docs/PERF.md "Prefill", session 6.
//
// Operands are exactly those of the scalar path (half_operand.glsl, which also says how bfloat16
// values are held in float16 fragments).
// Written for VK_NV_cooperative_matrix (what Debian 12's glslang emits) with 32-wide subgroups;
// the host checks both.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 3;
layout(constant_id = 1) const uint ROUND = 1;
// VEC: x and w are float16 operands already (matmul_coopmat_x.comp and matmul_coopmat_w.comp,
// which dequantize each weight once per matmul instead of once per BM activation rows: the
// in-GEMM decoding bound the multiplies, see docs/VULKAN.md), so staging is 16-byte copies.
// Otherwise every value is loaded, bounds-checked, decoded and converted here.
layout(constant_id = 2) const bool VEC = false;
const uint BM = 128, BN = 128;         // output rows (activations) and columns per workgroup
const uint SGM = 2, SGN = 4;           // subgroups along m and n
const uint BK = 64;                    // k per slice
const uint WG = 32 * SGM * SGN;
const uint FM = BM / SGM / 16, FN = BN / SGN / 16;  // 16x16 fragments per subgroup
const uint CH = BK / 8;                             // uvec4 (8 float16) per staged row
const uint ROW = CH + 1;  // uvec4 per staged row: BK halves + 16 bytes against bank conflicts
const uint XF = BM * CH / WG, WF = BN * CH / WG;  // uvec4 of a slice per invocation
layout(local_size_x = WG) in;

#define SHARED_CODES
#include "weight.glsl"

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
  uint k_stride;    // VEC: operands per row of x16 and w16 (k: a part of their k range)
} p;

#include "half_operand.glsl"

// [row][k]: float16 bits; after the loop, the output staging
shared uvec4 xs[BM * ROW];
shared uvec4 ws[BN * ROW];

// 8 operands from k0, 16 bytes: x row r, or weight row r (is_w), zero outside the matrix.
uvec4 operands(bool is_w, uint r, uint k0) {
  if (r >= (is_w ? p.n : p.rows) || k0 >= p.k) return uvec4(0);
  if (VEC) {
    if (is_w) return p.w16.v[(r * p.k_stride + k0) / 8];
    return p.x16.v[(r * p.k_stride + k0) / 8];
  }
  uvec4 bits;
  [[unroll]] for (uint i = 0; i < 4; ++i) {
    float v[2];
    [[unroll]] for (uint j = 0; j < 2; ++j) {
      const uint k = k0 + 2 * i + j;
      v[j] = 0.0;
      if (k < p.k) {
        if (is_w)
          v[j] = w_operand(weight_value(p.w, r * p.k + k));
        else
          v[j] = x_operand(p.x.v[r * p.k + k]);
      }
    }
    bits[i] = half2_bits(v[0], v[1]);
  }
  return bits;
}

// An invocation's share of the next k slice: uvec4 `t + WG * j` of the x tile (BM rows x CH) and
// of the weight tile (BN rows x CH) is row (t + WG * j) / CH, part (t + WG * j) % CH.
uvec4 next_x[XF], next_w[WF];

void fetch(uint k0, uint m0, uint n0) {
  const uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < XF; ++j) {
    const uint i = t + WG * j;
    next_x[j] = operands(false, m0 + i / CH, k0 + 8 * (i % CH));
  }
  [[unroll]] for (uint j = 0; j < WF; ++j) {
    const uint i = t + WG * j;
    next_w[j] = operands(true, n0 + i / CH, k0 + 8 * (i % CH));
  }
}

void stage() {
  const uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < XF; ++j) {
    const uint i = t + WG * j;
    xs[(i / CH) * ROW + i % CH] = next_x[j];
  }
  [[unroll]] for (uint j = 0; j < WF; ++j) {
    const uint i = t + WG * j;
    ws[(i / CH) * ROW + i % CH] = next_w[j];
  }
}

void main() {
  const uint t = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
  const uint wm = sg / SGN, wn = sg % SGN;
  // Consecutive workgroups take the row tiles of one column tile, so that its weight rows are
  // read from memory once while they run (the large weights exceed the L2 cache).
  const uint m0 = gl_WorkGroupID.x * BM, n0 = gl_WorkGroupID.y * BN;
  if (!VEC && WKIND >= 3) stage_codes(p.w);

  fcoopmatNV<32, gl_ScopeSubgroup, 16, 16> acc[FM][FN];
  [[unroll]] for (uint i = 0; i < FM; ++i)
    [[unroll]] for (uint j = 0; j < FN; ++j) acc[i][j] = fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>(0.0);

  const uint slices = (p.k + BK - 1) / BK;
  fetch(0, m0, n0);
  stage();
  barrier();
  for (uint s = 0; s < slices; ++s) {
    if (s + 1 < slices) fetch((s + 1) * BK, m0, n0);
    [[unroll]] for (uint kk = 0; kk < BK; kk += 16) {
      fcoopmatNV<16, gl_ScopeSubgroup, 16, 16> a[FM], b[FN];
      [[unroll]] for (uint i = 0; i < FM; ++i)
        coopMatLoadNV(a[i], xs, (wm * (BM / SGM) + 16 * i) * ROW + kk / 8, ROW, false);
      // wᵀ: the staged weight rows are the columns of the B fragment.
      [[unroll]] for (uint j = 0; j < FN; ++j)
        coopMatLoadNV(b[j], ws, (wn * (BN / SGN) + 16 * j) * ROW + kk / 8, ROW, true);
      [[unroll]] for (uint i = 0; i < FM; ++i)
        [[unroll]] for (uint j = 0; j < FN; ++j) acc[i][j] = coopMatMulAddNV(a[i], b[j], acc[i][j]);
    }
    // Both barriers unconditional: the form measured fastest on the H100 (ffa42d0, with the
    // second one inside the condition, measured 20 % slower; docs/PERF.md "Prefill", session 3).
    barrier();  // every subgroup is done with slice s
    if (s + 1 < slices) stage();
    barrier();
  }

  // Each subgroup writes its fragments through 16x16 floats of shared memory (the staging
  // buffer is free now), so that edge tiles store only the rows and columns that exist.
  const uint staging = sg * 64;  // 16 rows of 4 uvec4
  [[unroll]] for (uint i = 0; i < FM; ++i)
    [[unroll]] for (uint j = 0; j < FN; ++j) {
      coopMatStoreNV(acc[i][j], xs, staging, 4, false);
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      [[unroll]] for (uint e = 0; e < 8; ++e) {
        const uint idx = lane + 32 * e, row = idx / 16, col = idx % 16;
        const uint om = m0 + wm * (BM / SGM) + 16 * i + row;
        const uint on = n0 + wn * (BN / SGN) + 16 * j + col;
        if (om < p.rows && on < p.n)
          p.out_.v[om * p.out_stride + on] =
              uintBitsToFloat(xs[staging + row * 4 + col / 4][col % 4]) / W_SCALE;
      }
      subgroupBarrier();
    }
}
