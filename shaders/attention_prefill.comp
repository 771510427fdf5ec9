#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Causal attention for a prompt (flash-style): workgroup (row block, head) runs QUERIES query rows
// of one head over the float16 KV cache, TILE positions at a time staged in shared memory and
// shared by all of its queries, with an online softmax per CHUNK positions; float32 arithmetic
// throughout, like the reference. Each query belongs to a quad of 4 adjacent invocations, each
// holding the q and output values of every 4th 16-byte chunk of the head (8 dimensions), so that
// the quad reads a staged key or value row 16 bytes per invocation from 64 contiguous bytes
// (no bank conflict; the quads of a subgroup read the same row: a broadcast), and sums its
// partial dot products with subgroupShuffleXor. (Reading 16 bytes per access instead of 4: H100
// 7B 242 -> 219 us per layer, TinyLlama 135 -> 121; docs/PERF.md "Prefill", session 6.) The
// tiles are loaded 16 bytes at a time too (the host checks the caches' alignment).
// 32 queries per workgroup (147 registers, 3 workgroups per SM) beat 64 (127, 2): H100 7B
// 219 -> 203 us per layer, TinyLlama 122 -> 106 (docs/PERF.md "Prefill", session 6).
// GQA: query head h reads KV head h / (n_heads / n_kv_heads).
#include "common.glsl"

// HEAD_DIM: a multiple of 8, at most 128 (the host checks; attention.comp covers the rest).
layout(constant_id = 0) const uint HEAD_DIM = 128;
const uint WG = 128, QUERIES = WG / 4, TILE = 32, CHUNK = 16;
const uint CHUNKS = HEAD_DIM / 8;          // 16-byte chunks of a key or value row
const uint KV_ROW = CHUNKS;                // uvec4 per staged row
const uint PER_PART = (CHUNKS + 3) / 4;    // chunks part, part + 4, ... of an invocation
const float NO_SCORE = -3.0e38;        // finite, so exp(NO_SCORE - m) is 0 without inf - inf
layout(local_size_x = WG) in;

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
} p;

shared uvec4 ks[TILE * CHUNKS];
shared uvec4 vs[TILE * CHUNKS];

#include "kv_tile.glsl"

// Visible cache positions of a prompt row: [first, pos].
int first_visible(int pos) { return p.window > 0 ? max(0, pos - int(p.window) + 1) : 0; }

void main() {
  const uint t = gl_LocalInvocationID.x, part = t % 4;
  // The grid is (row blocks, heads). Workgroups take the last row blocks of every head first:
  // causal rows see more positions the later they come, so the longest ones start first and the
  // short ones fill in behind (GPUs start workgroups roughly in order of their linear index;
  // H100 7B: 203 -> 150 us per layer, TinyLlama 106 -> 86; docs/PERF.md "Prefill", session 6).
  const uint id = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  const uint head = id % gl_NumWorkGroups.y, kv_head = head / (p.n_heads / p.n_kv_heads);
  const uint row_block = gl_NumWorkGroups.x - 1 - id / gl_NumWorkGroups.y;
  const uint row0 = row_block * QUERIES, row = row0 + t / 4;
  const uint last_row = min(row0 + QUERIES, p.rows) - 1;
  const bool live = row < p.rows;
  const int pos = p.step.pos0 + int(row);

  // Pair w of chunk part + 4 i: q[4 i + w], o[4 i + w]; zero beyond the head (HEAD_DIM 8..24).
  vec2 q[4 * PER_PART], o[4 * PER_PART];
  [[unroll]] for (uint i = 0; i < PER_PART; ++i)
    [[unroll]] for (uint w = 0; w < 4; ++w) {
      const uint d = head * HEAD_DIM + 8 * (part + 4 * i) + 2 * w;
      q[4 * i + w] = live && part + 4 * i < CHUNKS
                         ? vec2(p.q.v[row * p.q_cols + d], p.q.v[row * p.q_cols + d + 1])
                         : vec2(0.0);
      o[4 * i + w] = vec2(0.0);
    }
  float m = NO_SCORE, l = 0.0;

  // Positions any query of the block sees, in whole tiles.
  const uint begin = uint(first_visible(p.step.pos0 + int(row0))) / TILE * TILE;
  const uint end = uint(p.step.pos0 + int(last_row)) + 1;
  const uint head_chunk = kv_head * CHUNKS;
  kv_tile_load(begin, end, head_chunk);
  for (uint tile = begin; tile < end; tile += TILE) {
    kv_tile_store();
    barrier();
    if (tile + TILE < end) kv_tile_load(tile + TILE, end, head_chunk);
    for (uint c = 0; c < TILE; c += CHUNK) {
      float s[CHUNK];
      float chunk_max = NO_SCORE;
      [[unroll]] for (uint jj = 0; jj < CHUNK; ++jj) {
        float score = 0.0;
        [[unroll]] for (uint i = 0; i < PER_PART; ++i)
          if (part + 4 * i < CHUNKS) {
            const uvec4 key = ks[(c + jj) * CHUNKS + part + 4 * i];
            [[unroll]] for (uint w = 0; w < 4; ++w)
              score += dot(q[4 * i + w], unpackHalf2x16(key[w]));
          }
        score += subgroupShuffleXor(score, 1);
        score += subgroupShuffleXor(score, 2);
        const int j = int(tile + c + jj);
        s[jj] = live && j >= first_visible(pos) && j <= pos ? score * p.scale : NO_SCORE;
        chunk_max = max(chunk_max, s[jj]);
      }
      const float new_m = max(m, chunk_max);
      const float alpha = exp(m - new_m);
      l *= alpha;
      [[unroll]] for (uint i = 0; i < 4 * PER_PART; ++i) o[i] *= alpha;
      [[unroll]] for (uint jj = 0; jj < CHUNK; ++jj) {
        const float prob = s[jj] > NO_SCORE ? exp(s[jj] - new_m) : 0.0;
        l += prob;
        [[unroll]] for (uint i = 0; i < PER_PART; ++i)
          if (part + 4 * i < CHUNKS) {
            const uvec4 value = vs[(c + jj) * CHUNKS + part + 4 * i];
            [[unroll]] for (uint w = 0; w < 4; ++w)
              o[4 * i + w] += prob * unpackHalf2x16(value[w]);
          }
      }
      m = new_m;
    }
    barrier();
  }

  if (!live) return;
  [[unroll]] for (uint i = 0; i < PER_PART; ++i)
    if (part + 4 * i < CHUNKS)
      [[unroll]] for (uint w = 0; w < 4; ++w) {
        const uint d = head * HEAD_DIM + 8 * (part + 4 * i) + 2 * w;
        p.out_.v[row * p.out_cols + d] = o[4 * i + w].x / l;
        p.out_.v[row * p.out_cols + d + 1] = o[4 * i + w].y / l;
      }
}
