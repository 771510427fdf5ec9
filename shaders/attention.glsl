// Causal attention over the float16 KV cache, split over the context (flash-decoding), included
// by attention.comp (workgroup reductions through shared memory) and attention_subgroup.comp
// (subgroup arithmetic, which SPIR-V declares module-wide, hence two modules): workgroup
// (split, row * n_heads + head) covers cache positions [split * split_len, (split + 1) * split_len)
// of that row's visible range, WG positions per tile with an online softmax, and writes its
// running max m, sum l and unnormalized output o to `partial`; the last workgroup of a (row,
// head) to finish (counted in `counts`) merges them into the output, which spares a merge
// dispatch and its barrier (H100 tg128, docs/PERF.md "Decode", session 15). With FINAL (a
// single split) there is nothing to merge: the workgroup writes o / l straight to the output.
// GQA: query head h reads KV head h / (n_heads / n_kv_heads).
// ROPE (decode, K_VEC) fuses rope_kv.comp in front, saving its dispatch and barrier: every
// workgroup rotates its own query head; those whose split holds the new position rotate its key
// and round key and value to float16 in shared memory, using them in place of the cache's row,
// and the first query head of each KV head writes that row to the caches. q and k stay as they were.
// OUT16 also writes the output as the next matmul's packed operands (rounded to float16 for 1,
// bfloat16 for 2: shaders/matvec.glsl's X16) to `out16`.
#include "common.glsl"

// HEAD_DIM: even, at most 256. K_VEC: cache rows and heads start on 16-byte boundaries
// (kv_cols and HEAD_DIM multiples of 8, both caches 16-byte aligned), so keys and values are read
// 8 halves per load.
layout(constant_id = 0) const uint HEAD_DIM = 128;
layout(constant_id = 1) const bool K_VEC = false;
layout(constant_id = 2) const bool FINAL = false;
layout(constant_id = 3) const bool ROPE = false;
layout(constant_id = 4) const uint OUT16 = 0;
const uint WG = 128;
const float NO_SCORE = -3.0e38;  // finite, so exp(NO_SCORE - m) is 0 without inf - inf
layout(local_size_x = WG) in;

#include "reduce.glsl"
#include "rope.glsl"

layout(push_constant) uniform Push {
  Floats q;
  Words k_cache;
  Words v_cache;
  Floats partial;  // several splits: [row * n_heads + head][split][2 + head_dim]
  StepData step;
  Floats k;         // ROPE: the new position's key and value rows (not yet rotated) and
  Floats v;         // the rotary frequencies
  Floats inv_freq;
  uint q_cols;
  uint kv_cols;
  uint n_heads;
  uint n_kv_heads;
  uint window;    // 0: none
  uint split_len;
  float scale;
  uint out_cols;  // the output's row stride
  Words out16;    // OUT16
  Floats out_;
  Words counts;  // several splits: per row * n_heads + head, its splits done (0 between dispatches)
} p;

// The partials, written and read past the L1 caches: another workgroup merges them.
layout(buffer_reference, std430, buffer_reference_align = 4) coherent buffer Partials {
  float v[];
};

shared float qs[HEAD_DIM];
shared float acc[HEAD_DIM];
shared float probs[WG];
// ROPE: the new position's key (rotated) and value as the caches hold them, float16 pairs.
shared uint new_k[ROPE ? HEAD_DIM / 2 : 1];
shared uint new_v[ROPE ? HEAD_DIM / 2 : 1];
const uint LANES = K_VEC ? HEAD_DIM / 8 : 1;  // invocations per value row (K_VEC)
const uint ROW_GROUPS = WG / LANES;
const uint PREFETCH = !K_VEC ? 1 : LANES < 16 ? LANES : 16;  // value rows per group loaded early
shared float part[K_VEC ? WG * 8 : 1];  // [ROW_GROUPS][HEAD_DIM] partial value sums
shared bool merges;                     // this workgroup is the last of its (row, head)

// 16 bytes (lane's) of the value row of tile position jj, the new position's from shared memory.
uvec4 value_row(uint first, uint jj, uint row_step, uint tile, uint lane, bool holds_new, int pos) {
  if (holds_new && tile + jj == uint(pos))
    return uvec4(new_v[4 * lane], new_v[4 * lane + 1], new_v[4 * lane + 2], new_v[4 * lane + 3]);
  return UVec4s(p.v_cache).v[first + jj * row_step];
}

// Output values [at, at + 2) (a pair per invocation, HEAD_DIM being even, so that OUT16 writes
// whole words), and with OUT16 their operands.
void store_output_pair(uint at, vec2 o) {
  p.out_.v[at] = o.x;
  p.out_.v[at + 1] = o.y;
  if (OUT16 != 0) p.out16.v[at / 2] = operand_pair(o.x, o.y, OUT16);
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint split = gl_WorkGroupID.x, item = gl_WorkGroupID.y;
  const uint row = item / p.n_heads, head = item % p.n_heads;
  const uint kv_head = head / (p.n_heads / p.n_kv_heads);
  const int pos = p.step.pos0 + int(row);
  const int first = p.window > 0 ? max(0, pos - int(p.window) + 1) : 0;
  const uint begin = max(uint(first), split * p.split_len);
  const uint end = min(uint(pos) + 1, (split + 1) * p.split_len);

  const bool holds_new = ROPE && begin <= uint(pos) && uint(pos) < end;  // uniform
  if (ROPE) {
    const uint half_dim = HEAD_DIM / 2, k_base = kv_head * HEAD_DIM, k_row = row * p.kv_cols;
    for (uint i = t; i < half_dim; i += WG) {
      precise float angle = float(pos) * p.inv_freq.v[i];
      const uint q_base = row * p.q_cols + head * HEAD_DIM;
      const vec2 q = rope_pair(p.q.v[q_base + i], p.q.v[q_base + i + half_dim], angle);
      qs[i] = q.x;
      qs[i + half_dim] = q.y;
      if (holds_new) {  // acc[] as scratch for the rotated key
        const vec2 k = rope_pair(p.k.v[k_row + k_base + i], p.k.v[k_row + k_base + i + half_dim], angle);
        acc[i] = k.x;
        acc[i + half_dim] = k.y;
      }
    }
    barrier();
    if (holds_new) {
      const bool writer = head % (p.n_heads / p.n_kv_heads) == 0;
      const uint cache_word = (uint(pos) * p.kv_cols + k_base) / 2;
      for (uint w = t; w < half_dim; w += WG) {
        new_k[w] = f16_pair(acc[2 * w], acc[2 * w + 1]);
        new_v[w] = f16_pair(p.v.v[k_row + k_base + 2 * w], p.v.v[k_row + k_base + 2 * w + 1]);
        if (writer) {
          p.k_cache.v[cache_word + w] = new_k[w];
          p.v_cache.v[cache_word + w] = new_v[w];
        }
      }
    }
    barrier();
    for (uint d = t; d < HEAD_DIM; d += WG) acc[d] = 0.0;
  } else {
    for (uint d = t; d < HEAD_DIM; d += WG) {
      qs[d] = p.q.v[row * p.q_cols + head * HEAD_DIM + d];
      acc[d] = 0.0;
    }
  }
  barrier();

  float m = NO_SCORE, l = 0.0;
  const uint head_base = kv_head * HEAD_DIM;  // in halves from the caches' row 0
  for (uint tile = begin; tile < end; tile += WG) {
    const uint j = tile + t;
    float score = NO_SCORE;
    if (j < end) {
      const uint first_half = head_base + j * p.kv_cols;
      float dot = 0.0;
      if (K_VEC) {
        [[unroll]] for (uint i = 0; i < HEAD_DIM / 8; ++i) {
          uvec4 k;
          if (holds_new && j == uint(pos))
            k = uvec4(new_k[4 * i], new_k[4 * i + 1], new_k[4 * i + 2], new_k[4 * i + 3]);
          else
            k = UVec4s(p.k_cache).v[first_half / 8 + i];
          [[unroll]] for (uint c = 0; c < 4; ++c) {
            const vec2 kk = unpackHalf2x16(k[c]);
            dot += qs[8 * i + 2 * c] * kk.x + qs[8 * i + 2 * c + 1] * kk.y;
          }
        }
      } else {
        [[unroll]] for (uint i = 0; i < HEAD_DIM / 2; ++i) {
          const vec2 k = unpackHalf2x16(p.k_cache.v[first_half / 2 + i]);
          dot += qs[2 * i] * k.x + qs[2 * i + 1] * k.y;
        }
      }
      score = dot * p.scale;
    }
    const uint count = min(WG, end - tile);
    // K_VEC: LANES invocations read a value row 8 halves at a time; the workgroup's ROW_GROUPS
    // such groups take every ROW_GROUPS-th position of the tile and meet in shared memory. The
    // first PREFETCH rows of each group are loaded here, before the softmax they do not depend
    // on, so that their loads overlap its reductions: a 128-position tile of 128-wide heads is
    // one round of value loads.
    const uint lane = t % LANES, group = t / LANES;
    const uint first = (head_base + tile * p.kv_cols) / 8 + lane;  // in 16-byte units
    const uint row_step = p.kv_cols / 8;
    uvec4 ahead[PREFETCH];
    if (K_VEC)
      [[unroll]] for (uint u = 0; u < PREFETCH; ++u) {
        const uint jj = group + u * ROW_GROUPS;
        ahead[u] = group < ROW_GROUPS && jj < count
                       ? value_row(first, jj, row_step, tile, lane, holds_new, pos)
                       : uvec4(0);
      }
    const float new_m = max(m, workgroup_max(score));
    const float prob = j < end ? exp(score - new_m) : 0.0;
    probs[t] = prob;
    const float alpha = exp(m - new_m);
    l = l * alpha + workgroup_sum(prob);  // its barriers also publish probs[]
    if (K_VEC) {
      vec4 lo = vec4(0.0), hi = vec4(0.0);
      if (group < ROW_GROUPS) {
        [[unroll]] for (uint u = 0; u < PREFETCH; ++u) {
          const uint jj = group + u * ROW_GROUPS;
          const float pr = jj < count ? probs[jj] : 0.0;
          lo += pr * vec4(unpackHalf2x16(ahead[u].x), unpackHalf2x16(ahead[u].y));
          hi += pr * vec4(unpackHalf2x16(ahead[u].z), unpackHalf2x16(ahead[u].w));
        }
        uint jj = group + PREFETCH * ROW_GROUPS;
        for (; jj + 3 * ROW_GROUPS < count; jj += 4 * ROW_GROUPS) {
          uvec4 v[4];
          [[unroll]] for (uint u = 0; u < 4; ++u)
            v[u] = value_row(first, jj + u * ROW_GROUPS, row_step, tile, lane, holds_new, pos);
          [[unroll]] for (uint u = 0; u < 4; ++u) {
            const float pr = probs[jj + u * ROW_GROUPS];
            lo += pr * vec4(unpackHalf2x16(v[u].x), unpackHalf2x16(v[u].y));
            hi += pr * vec4(unpackHalf2x16(v[u].z), unpackHalf2x16(v[u].w));
          }
        }
        for (; jj < count; jj += ROW_GROUPS) {
          const uvec4 v = value_row(first, jj, row_step, tile, lane, holds_new, pos);
          lo += probs[jj] * vec4(unpackHalf2x16(v.x), unpackHalf2x16(v.y));
          hi += probs[jj] * vec4(unpackHalf2x16(v.z), unpackHalf2x16(v.w));
        }
        [[unroll]] for (uint i = 0; i < 4; ++i) {
          part[group * HEAD_DIM + 8 * lane + i] = lo[i];
          part[group * HEAD_DIM + 8 * lane + 4 + i] = hi[i];
        }
      }
      barrier();
      for (uint d = t; d < HEAD_DIM; d += WG) {
        float o = 0.0;
        for (uint g = 0; g < ROW_GROUPS; ++g) o += part[g * HEAD_DIM + d];
        acc[d] = acc[d] * alpha + o;
      }
    } else {
      for (uint d = t; d < HEAD_DIM; d += WG) {
        // Four independent sums keep four value loads in flight.
        vec4 o = vec4(acc[d] * alpha, 0.0, 0.0, 0.0);
        const uint base = head_base + tile * p.kv_cols + d;
        uint jj = 0;
        for (; jj + 4 <= count; jj += 4)
          o += vec4(probs[jj], probs[jj + 1], probs[jj + 2], probs[jj + 3]) *
               vec4(f16_at(p.v_cache, base + jj * p.kv_cols), f16_at(p.v_cache, base + (jj + 1) * p.kv_cols),
                    f16_at(p.v_cache, base + (jj + 2) * p.kv_cols), f16_at(p.v_cache, base + (jj + 3) * p.kv_cols));
        for (; jj < count; ++jj) o.x += probs[jj] * f16_at(p.v_cache, base + jj * p.kv_cols);
        acc[d] = (o.x + o.y) + (o.z + o.w);
      }
    }
    m = new_m;
    barrier();
  }

  const uint out_base = row * p.out_cols + head * HEAD_DIM;
  if (FINAL) {
    for (uint d = 2 * t; d < HEAD_DIM; d += 2 * WG)
      store_output_pair(out_base + d, vec2(acc[d], acc[d + 1]) / l);
    return;
  }
  const uint splits = gl_NumWorkGroups.x, stride = 2 + HEAD_DIM, first_part = item * splits * stride;
  Partials parts = Partials(p.partial);
  const uint mine = first_part + split * stride;
  if (t == 0) {
    parts.v[mine] = m;
    parts.v[mine + 1] = l;
  }
  for (uint d = t; d < HEAD_DIM; d += WG) parts.v[mine + 2 + d] = acc[d];
  // The partial before the count; the last to count merges every split's (those past a row's
  // position hold m = NO_SCORE, l = 0) and leaves the count at 0 for the next dispatch.
  memoryBarrierBuffer();
  barrier();
  if (t == 0) merges = atomicAdd(p.counts.v[item], 1u) == splits - 1;
  barrier();
  if (!merges) return;
  memoryBarrierBuffer();
  float m_all = NO_SCORE;
  for (uint s = 0; s < splits; ++s) m_all = max(m_all, parts.v[first_part + s * stride]);
  float l_all = 0.0;
  for (uint s = 0; s < splits; ++s)
    l_all += parts.v[first_part + s * stride + 1] * exp(parts.v[first_part + s * stride] - m_all);
  for (uint d = 2 * t; d < HEAD_DIM; d += 2 * WG) {
    vec2 o = vec2(0.0);
    for (uint s = 0; s < splits; ++s) {
      const uint at = first_part + s * stride;
      o += vec2(parts.v[at + 2 + d], parts.v[at + 3 + d]) * exp(parts.v[at] - m_all);
    }
    store_output_pair(out_base + d, o / l_all);
  }
  if (t == 0) p.counts.v[item] = 0;
}
