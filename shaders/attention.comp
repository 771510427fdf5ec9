#version 460
#extension GL_GOOGLE_include_directive : require
// Causal attention over the float16 KV cache, split over the context (flash-decoding): workgroup
// (split, row * n_heads + head) covers cache positions [split * split_len, (split + 1) * split_len)
// of that row's visible range, WG positions per tile with an online softmax, and writes its
// running max m, sum l and unnormalized output o to `partial`; attention_combine merges splits.
// GQA: query head h reads KV head h / (n_heads / n_kv_heads).
#include "common.glsl"

const uint WG = 128;
const uint MAX_HEAD_DIM = 256;
const float NO_SCORE = -3.0e38;  // finite, so exp(NO_SCORE - m) is 0 without inf - inf
layout(local_size_x = WG) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
  Floats q;
  Words k_cache;
  Words v_cache;
  Floats partial;  // [row * n_heads + head][split][2 + head_dim]
  StepData step;
  uint q_cols;
  uint kv_cols;
  uint n_heads;
  uint n_kv_heads;
  uint head_dim;  // even, at most MAX_HEAD_DIM
  uint window;    // 0: none
  uint split_len;
  float scale;
} p;

shared float qs[MAX_HEAD_DIM];
shared float acc[MAX_HEAD_DIM];
shared float probs[WG];

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint split = gl_WorkGroupID.x, item = gl_WorkGroupID.y;
  const uint row = item / p.n_heads, head = item % p.n_heads;
  const uint kv_head = head / (p.n_heads / p.n_kv_heads);
  const int pos = p.step.pos0 + int(row);
  const int first = p.window > 0 ? max(0, pos - int(p.window) + 1) : 0;
  const uint begin = max(uint(first), split * p.split_len);
  const uint end = min(uint(pos) + 1, (split + 1) * p.split_len);

  for (uint d = t; d < p.head_dim; d += WG) {
    qs[d] = p.q.v[row * p.q_cols + head * p.head_dim + d];
    acc[d] = 0.0;
  }
  barrier();

  float m = NO_SCORE, l = 0.0;
  const uint head_base = kv_head * p.head_dim;  // in halves from the caches' row 0
  for (uint tile = begin; tile < end; tile += WG) {
    const uint j = tile + t;
    float score = NO_SCORE;
    if (j < end) {
      const uint word = (head_base + j * p.kv_cols) / 2;
      float dot = 0.0;
      for (uint i = 0; i < p.head_dim / 2; ++i) {
        const vec2 k = unpackHalf2x16(p.k_cache.v[word + i]);
        dot += qs[2 * i] * k.x + qs[2 * i + 1] * k.y;
      }
      score = dot * p.scale;
    }
    const float new_m = max(m, workgroup_max(score));
    const float prob = j < end ? exp(score - new_m) : 0.0;
    probs[t] = prob;
    const float alpha = exp(m - new_m);
    l = l * alpha + workgroup_sum(prob);  // its barriers also publish probs[]
    const uint count = min(WG, end - tile);
    for (uint d = t; d < p.head_dim; d += WG) {
      float o = acc[d] * alpha;
      for (uint jj = 0; jj < count; ++jj)
        o += probs[jj] * f16_at(p.v_cache, head_base + (tile + jj) * p.kv_cols + d);
      acc[d] = o;
    }
    m = new_m;
    barrier();
  }

  const uint base = (item * gl_NumWorkGroups.x + split) * (2 + p.head_dim);
  if (t == 0) {
    p.partial.v[base] = m;
    p.partial.v[base + 1] = l;
  }
  for (uint d = t; d < p.head_dim; d += WG) p.partial.v[base + 2 + d] = acc[d];
}
