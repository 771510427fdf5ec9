#version 460
#extension GL_GOOGLE_include_directive : require
// rope.comp on q and k and kv_store.comp in one dispatch (the decode step's attention prologue):
// q and k are rotated in place, k's rotated rows and v's rows are appended to the float16 caches
// at rows pos0... Each item rotates two neighbouring pairs (i, i + 1 with i + half, i + 1 + half)
// so that it writes whole words of the cache: head_dim must be a multiple of 4.
#include "common.glsl"
#include "rope.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Floats q;
  Floats k;
  Floats v;
  Words k_cache;
  Words v_cache;
  Floats inv_freq;
  StepData step;
  uint rows;
  uint q_cols;   // q's row stride
  uint kv_cols;  // k's, v's and the caches' row stride
  uint n_heads;
  uint n_kv_heads;
  uint head_dim;
} p;

// Rotates pair i of the head starting at `base` of row r.
vec2 rotate(Floats x, uint base, uint i, uint r) {
  precise float angle = float(p.step.pos0 + int(r)) * p.inv_freq.v[i];
  return rope_rotate(x, base + i, base + i + p.head_dim / 2, angle);
}

void main() {
  const uint quarter = p.head_dim / 4;
  const uint q_items = p.n_heads * quarter, k_items = p.n_kv_heads * quarter;
  const uint per_row = q_items + k_items + p.kv_cols / 2;
  uint e = group_index() * 256 + gl_LocalInvocationID.x;
  if (e >= p.rows * per_row) return;
  const uint r = e / per_row;
  e %= per_row;
  const uint cache_row = (uint(p.step.pos0) + r) * p.kv_cols;
  if (e < q_items) {
    const uint base = r * p.q_cols + (e / quarter) * p.head_dim, i = 2 * (e % quarter);
    rotate(p.q, base, i, r);
    rotate(p.q, base, i + 1, r);
  } else if (e < q_items + k_items) {
    e -= q_items;
    const uint head = (e / quarter) * p.head_dim, i = 2 * (e % quarter);
    const vec2 a = rotate(p.k, r * p.kv_cols + head, i, r);
    const vec2 b = rotate(p.k, r * p.kv_cols + head, i + 1, r);
    p.k_cache.v[(cache_row + head + i) / 2] = f16_pair(a.x, b.x);
    p.k_cache.v[(cache_row + head + i + p.head_dim / 2) / 2] = f16_pair(a.y, b.y);
  } else {
    const uint pair = e - q_items - k_items;
    const uint src = r * p.kv_cols + 2 * pair;
    p.v_cache.v[cache_row / 2 + pair] = f16_pair(p.v.v[src], p.v.v[src + 1]);
  }
}
