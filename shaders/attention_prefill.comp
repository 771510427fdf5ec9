#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_shuffle : require
// Causal attention for a prompt (flash-style): workgroup (row block, head) runs QUERIES query rows
// of one head over the float16 KV cache, TILE positions at a time staged in shared memory and
// shared by all of its queries, with an online softmax per CHUNK positions; float32 arithmetic
// throughout, like the reference. Each query belongs to a quad of 4 adjacent invocations, each
// holding the q and output values of every 4th dimension pair, so that their reads of a staged
// key or value row hit 4 different banks; the quad sums its partial dot products with
// subgroupShuffleXor. GQA: query head h reads KV head h / (n_heads / n_kv_heads).
#include "common.glsl"

// HEAD_DIM: a multiple of 8, at most 128 (the host checks; attention.comp covers the rest).
layout(constant_id = 0) const uint HEAD_DIM = 128;
const uint WG = 256, QUERIES = WG / 4, TILE = 32, CHUNK = 16;
const uint PAIRS = HEAD_DIM / 8;       // dimension pairs per invocation
const uint ROW_WORDS = HEAD_DIM / 2;   // a staged key or value row, float16 pairs
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

shared uint ks[TILE * ROW_WORDS];
shared uint vs[TILE * ROW_WORDS];

// Visible cache positions of a prompt row: [first, pos].
int first_visible(int pos) { return p.window > 0 ? max(0, pos - int(p.window) + 1) : 0; }

void main() {
  const uint t = gl_LocalInvocationID.x, part = t % 4;
  const uint head = gl_WorkGroupID.y, kv_head = head / (p.n_heads / p.n_kv_heads);
  const uint row0 = gl_WorkGroupID.x * QUERIES, row = row0 + t / 4;
  const uint last_row = min(row0 + QUERIES, p.rows) - 1;
  const bool live = row < p.rows;
  const int pos = p.step.pos0 + int(row);

  vec2 q[PAIRS], o[PAIRS];
  [[unroll]] for (uint i = 0; i < PAIRS; ++i) {
    const uint d = head * HEAD_DIM + 2 * (part + 4 * i);
    q[i] = live ? vec2(p.q.v[row * p.q_cols + d], p.q.v[row * p.q_cols + d + 1]) : vec2(0.0);
    o[i] = vec2(0.0);
  }
  float m = NO_SCORE, l = 0.0;

  // Positions any query of the block sees, in whole tiles.
  const uint begin = uint(first_visible(p.step.pos0 + int(row0))) / TILE * TILE;
  const uint end = uint(p.step.pos0 + int(last_row)) + 1;
  const uint head_word = kv_head * HEAD_DIM / 2;
  for (uint tile = begin; tile < end; tile += TILE) {
    for (uint i = t; i < TILE * ROW_WORDS; i += WG) {
      const uint j = tile + i / ROW_WORDS, at = j * (p.kv_cols / 2) + head_word + i % ROW_WORDS;
      ks[i] = j < end ? p.k_cache.v[at] : 0u;
      vs[i] = j < end ? p.v_cache.v[at] : 0u;
    }
    barrier();
    for (uint c = 0; c < TILE; c += CHUNK) {
      float s[CHUNK];
      float chunk_max = NO_SCORE;
      [[unroll]] for (uint jj = 0; jj < CHUNK; ++jj) {
        float score = 0.0;
        [[unroll]] for (uint i = 0; i < PAIRS; ++i)
          score += dot(q[i], unpackHalf2x16(ks[(c + jj) * ROW_WORDS + part + 4 * i]));
        score += subgroupShuffleXor(score, 1);
        score += subgroupShuffleXor(score, 2);
        const int j = int(tile + c + jj);
        s[jj] = live && j >= first_visible(pos) && j <= pos ? score * p.scale : NO_SCORE;
        chunk_max = max(chunk_max, s[jj]);
      }
      const float new_m = max(m, chunk_max);
      const float alpha = exp(m - new_m);
      l *= alpha;
      [[unroll]] for (uint i = 0; i < PAIRS; ++i) o[i] *= alpha;
      [[unroll]] for (uint jj = 0; jj < CHUNK; ++jj) {
        const float prob = s[jj] > NO_SCORE ? exp(s[jj] - new_m) : 0.0;
        l += prob;
        [[unroll]] for (uint i = 0; i < PAIRS; ++i)
          o[i] += prob * unpackHalf2x16(vs[(c + jj) * ROW_WORDS + part + 4 * i]);
      }
      m = new_m;
    }
    barrier();
  }

  if (!live) return;
  [[unroll]] for (uint i = 0; i < PAIRS; ++i) {
    const uint d = head * HEAD_DIM + 2 * (part + 4 * i);
    p.out_.v[row * p.out_cols + d] = o[i].x / l;
    p.out_.v[row * p.out_cols + d + 1] = o[i].y / l;
  }
}
