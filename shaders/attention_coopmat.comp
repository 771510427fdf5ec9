#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_NV_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
// Causal attention for a prompt on the matrix units (flash-style): workgroup (row block, head)
// runs 16 query rows per subgroup (WG / 32 subgroups: 4 or 8, the host's choice) over the
// float16 KV cache, TILE positions at a time staged in shared memory. Per tile each subgroup
// computes its scores S = q·kᵀ in float32 16x16x16 fragments, takes them through shared memory
// for the online softmax (two lanes per row), and adds P·v to its output fragments after scaling
// their rows by the softmax's correction.
// The operands are float16: q (scaled by 1/sqrt(head_dim) first) and the probabilities are
// rounded to it, as the keys and values already are in the cache; sums are float32. The host
// takes this path only for models whose products compute in a 16-bit dtype (their own rounding
// is coarser); attention_prefill.comp keeps float32 arithmetic for the others.
// Written for VK_NV_cooperative_matrix with 32-wide subgroups (the host checks both), like
// matmul_coopmat.comp. GQA: query head h reads KV head h / (n_heads / n_kv_heads).
// GEMM_OPERANDS 1 / 2 also writes the output as the prompt GEMM's float16 operands to x16
// (common.glsl gemm_operand_pair), sparing the o projection's conversion.
#include "common.glsl"

// HEAD_DIM: a multiple of 16, at most 128 (the host checks).
layout(constant_id = 0) const uint HEAD_DIM = 128;
layout(constant_id = 1) const uint GEMM_OPERANDS = 0;
layout(constant_id = 2) const uint WG = 128;  // 32 * subgroups (16 query rows each)
const uint SUBGROUPS = WG / 32, QUERIES = 16 * SUBGROUPS;
const uint TILE = 32;                    // positions per staged tile
const uint DF = HEAD_DIM / 16, TF = TILE / 16;  // fragments along the head and the tile
const uint CHUNKS = HEAD_DIM / 8;        // 16-byte chunks of a key or value row
const uint KV_ROW = CHUNKS + 1;          // uvec4 per staged key/value row, +16 bytes: no conflicts
const uint P_ROW = TILE / 8 + 1;         // uvec4 per staged probability row
const float NO_SCORE = -3.0e38;          // finite, so exp(NO_SCORE - m) is 0 without inf - inf
layout(local_size_x_id = 2) in;

layout(push_constant) uniform Push {
  Floats q;
  Words k_cache;
  Words v_cache;
  Floats out_;
  StepData step;
  uint rows;
  uint q_cols;
  uint kv_cols;
  uint out_cols;
  uint n_heads;
  uint n_kv_heads;
  uint window;  // 0: none
  float scale;
  Words x16;  // GEMM_OPERANDS only
} p;

shared uvec4 ks[TILE * KV_ROW];
shared uvec4 vs[TILE * KV_ROW];
// Per subgroup: its scores (float32, 16 x TILE), which also stage its q and output fragments
// (16 x 16), its probabilities (float16 bits, 16 x TILE) and each row's correction factor.
shared float scores[SUBGROUPS * 16 * TILE];
shared uvec4 probs[SUBGROUPS * 16 * P_ROW];
shared float row_factor[SUBGROUPS][16];

#include "kv_tile.glsl"

#define ACC fcoopmatNV<32, gl_ScopeSubgroup, 16, 16>
#define OPERAND fcoopmatNV<16, gl_ScopeSubgroup, 16, 16>

// Visible cache positions of a prompt row: [first, pos].
int first_visible(int pos) { return p.window > 0 ? max(0, pos - int(p.window) + 1) : 0; }

void main() {
  const uint t = gl_LocalInvocationID.x, sg = gl_SubgroupID, lane = gl_SubgroupInvocationID;
  // The grid is (row blocks, heads); the last row blocks of every head start first, as in
  // attention_prefill.comp (causal rows see more positions the later they come).
  const uint id = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  const uint head = id % gl_NumWorkGroups.y, kv_head = head / (p.n_heads / p.n_kv_heads);
  const uint row_block = gl_NumWorkGroups.x - 1 - id / gl_NumWorkGroups.y;
  const uint row0 = row_block * QUERIES, sg_row0 = row0 + 16 * sg;
  const uint last_row = min(row0 + QUERIES, p.rows) - 1;
  const uint sc = sg * 16 * TILE, pr = sg * 16 * P_ROW;  // the subgroup's staging

  // Which row of a 16x16 accumulator each of this invocation's elements holds: a fragment of
  // row indices, read back element by element (the layout is the implementation's, and the same
  // for every fragment of the type).
  for (uint i = lane; i < 256; i += 32) scores[sc + i] = float(i / 16);
  subgroupMemoryBarrierShared();
  subgroupBarrier();
  ACC row_of;
  coopMatLoadNV(row_of, scores, sc, 16, false);
  subgroupBarrier();

  // q, scaled and rounded to float16, 16x16 at a time through the probability staging.
  OPERAND qf[DF];
  [[unroll]] for (uint f = 0; f < DF; ++f) {
    const uint r = lane / 2, d0 = head * HEAD_DIM + 16 * f + 8 * (lane % 2);
    const uint row = sg_row0 + r;
    uvec4 bits = uvec4(0);
    if (row < p.rows)
      [[unroll]] for (uint i = 0; i < 4; ++i)
        bits[i] = packHalf2x16(vec2(p.q.v[row * p.q_cols + d0 + 2 * i],
                                    p.q.v[row * p.q_cols + d0 + 2 * i + 1]) * p.scale);
    probs[pr + r * 2 + lane % 2] = bits;
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    coopMatLoadNV(qf[f], probs, pr, 2, false);
    subgroupBarrier();
  }

  ACC o[DF];
  [[unroll]] for (uint f = 0; f < DF; ++f) o[f] = ACC(0.0);
  // Lanes 2r and 2r + 1 keep row r's running max and sum; each takes half of a tile's scores.
  const uint my_row = sg_row0 + lane / 2, half_tile = TILE / 2, c0 = (lane % 2) * half_tile;
  const int pos = p.step.pos0 + int(my_row);
  const bool live = my_row < p.rows;
  float m = NO_SCORE, l = 0.0;

  // Positions any query of the block sees, in whole tiles.
  const uint begin = uint(first_visible(p.step.pos0 + int(row0))) / TILE * TILE;
  const uint end = uint(p.step.pos0 + int(last_row)) + 1;
  const uint head_chunk = kv_head * CHUNKS;
  // The subgroup's own rows see positions up to this one (uniform over the subgroup).
  const uint sg_end = uint(p.step.pos0 + int(min(sg_row0 + 15, p.rows - 1))) + 1;
  kv_tile_load(begin, end, head_chunk);
  for (uint tile = begin; tile < end; tile += TILE) {
    kv_tile_store();
    barrier();
    if (tile + TILE < end) kv_tile_load(tile + TILE, end, head_chunk);
    if (sg_row0 < p.rows && tile < sg_end) {
      // S = q·kᵀ: the staged key rows are the columns of the B fragments.
      [[unroll]] for (uint j = 0; j < TF; ++j) {
        ACC s = ACC(0.0);
        [[unroll]] for (uint f = 0; f < DF; ++f) {
          OPERAND kt;
          coopMatLoadNV(kt, ks, (16 * j) * KV_ROW + 2 * f, KV_ROW, true);
          s = coopMatMulAddNV(qf[f], kt, s);
        }
        coopMatStoreNV(s, scores, sc + 16 * j, TILE, false);
      }
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      // The online softmax of row lane / 2 over this half of the tile.
      float s[TILE / 2];
      float tile_max = NO_SCORE;
      [[unroll]] for (uint c = 0; c < half_tile; ++c) {
        const int j = int(tile + c0 + c);
        s[c] = live && j >= first_visible(pos) && j <= pos ? scores[sc + (lane / 2) * TILE + c0 + c]
                                                            : NO_SCORE;
        tile_max = max(tile_max, s[c]);
      }
      tile_max = max(tile_max, subgroupShuffleXor(tile_max, 1));
      const float new_m = max(m, tile_max);
      const float alpha = exp(m - new_m);
      float sum = 0.0;
      [[unroll]] for (uint c = 0; c < half_tile; c += 8) {
        uvec4 bits;
        [[unroll]] for (uint i = 0; i < 4; ++i) {
          const float a = s[c + 2 * i] > NO_SCORE ? exp(s[c + 2 * i] - new_m) : 0.0;
          const float b = s[c + 2 * i + 1] > NO_SCORE ? exp(s[c + 2 * i + 1] - new_m) : 0.0;
          const vec2 pair = vec2(unpackHalf2x16(packHalf2x16(vec2(a, b))));
          sum += pair.x + pair.y;  // the probabilities as the product takes them
          bits[i] = packHalf2x16(pair);
        }
        probs[pr + (lane / 2) * P_ROW + (c0 + c) / 8] = bits;
      }
      sum += subgroupShuffleXor(sum, 1);
      l = l * alpha + sum;
      m = new_m;
      if (lane % 2 == 0) row_factor[sg][lane / 2] = alpha;
      subgroupMemoryBarrierShared();
      subgroupBarrier();
      // o = o * alpha (per row) + P·v.
      [[unroll]] for (uint e = 0; e < row_of.length(); ++e) {
        const float f = row_factor[sg][uint(row_of[e])];
        [[unroll]] for (uint d = 0; d < DF; ++d) o[d][e] *= f;
      }
      OPERAND pf[TF];
      [[unroll]] for (uint j = 0; j < TF; ++j) coopMatLoadNV(pf[j], probs, pr + 2 * j, P_ROW, false);
      [[unroll]] for (uint d = 0; d < DF; ++d)
        [[unroll]] for (uint j = 0; j < TF; ++j) {
          OPERAND vf;
          coopMatLoadNV(vf, vs, (16 * j) * KV_ROW + 2 * d, KV_ROW, false);
          o[d] = coopMatMulAddNV(pf[j], vf, o[d]);
        }
      subgroupBarrier();
    }
    barrier();
  }

  // o / l, each fragment through the score staging, rows that exist only.
  if (lane % 2 == 0) row_factor[sg][lane / 2] = l > 0.0 ? 1.0 / l : 0.0;
  subgroupMemoryBarrierShared();
  subgroupBarrier();
  [[unroll]] for (uint d = 0; d < DF; ++d) {
    coopMatStoreNV(o[d], scores, sc, 16, false);
    subgroupMemoryBarrierShared();
    subgroupBarrier();
    [[unroll]] for (uint e = 0; e < 4; ++e) {  // pairs of columns
      const uint idx = 2 * (lane + 32 * e), r = idx / 16, row = sg_row0 + r;
      const uint at = row * p.out_cols + head * HEAD_DIM + 16 * d + idx % 16;
      const float lo = scores[sc + idx] * row_factor[sg][r];
      const float hi = scores[sc + idx + 1] * row_factor[sg][r];
      if (row < p.rows) {
        p.out_.v[at] = lo;
        p.out_.v[at + 1] = hi;
        if (GEMM_OPERANDS != 0) p.x16.v[at / 2] = gemm_operand_pair(lo, hi, GEMM_OPERANDS);
      }
    }
    subgroupBarrier();
  }
}
