#version 460
#extension GL_GOOGLE_include_directive : require
// ids[0] = the token that the step's draw u picks from one row of logits: engine/sampler.h
// draw_token on the device, so that sampled decoding needs no logits on the host and each step
// can be queued before the host knows the token before it (Model::forward_picked).
// One workgroup. Each cut (top-k's k-th largest weight, top-p's) is the largest weight at which
// a statistic of the weights at or above it (their count, their sum) still reaches its target,
// found by searching the weights' bit patterns (which order non-negative floats as integers):
// every pass tries WAYS - 1 cuts at once and narrows the range WAYS-fold, 11 passes for 32 bits.
// Weights are recomputed from the logits (cached) in every pass rather than stored, BATCH loads
// in flight per invocation (one at a time, the H100 took 373 us for a 32 000-token row).
// The host runs it where workgroups may have WG invocations.
#include "common.glsl"

const uint WG = 512;
const uint WAYS = 8;
const uint BATCH = 8;
layout(local_size_x = WG) in;

layout(push_constant) uniform Push {
  Ints ids;
  Floats logits;
  StepData step;  // u: the draw
  uint cols;
  float inverse_temperature;
  uint top_k;  // 0: off
  float top_p;  // 1: off
  float min_p;  // 0: off
  uint pad;
} p;

shared float partial[WAYS][WG];

float weight_of(float logit, float max_logit) {
  return exp(min((logit - max_logit) * p.inverse_temperature, 0.0));
}

// The weights of the batch of this invocation's values from index i (BATCH of them, WG apart);
// 0 past the row.
void batch_weights(uint i, float max_logit, out float w[BATCH]) {
  float l[BATCH];
  [[unroll]] for (uint b = 0; b < BATCH; ++b)
    l[b] = i + b * WG < p.cols ? p.logits.v[i + b * WG] : 0.0;
  [[unroll]] for (uint b = 0; b < BATCH; ++b)
    w[b] = i + b * WG < p.cols ? weight_of(l[b], max_logit) : 0.0;
}

// Sums each invocation's v[j] over the workgroup into partial[j][0] (all invocations call it).
void reduce(float v[WAYS]) {
  const uint t = gl_LocalInvocationID.x;
  [[unroll]] for (uint j = 0; j < WAYS; ++j) partial[j][t] = v[j];
  barrier();
  [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s)
      [[unroll]] for (uint j = 0; j < WAYS; ++j) partial[j][t] += partial[j][t + s];
    barrier();
  }
}

// The largest weight c >= floor (as bits) with count(w >= c) >= target (by_count) or
// sum(w >= c) >= target; floor itself satisfies it.
uint find_cut(uint floor, bool by_count, float target, float max_logit) {
  const uint t = gl_LocalInvocationID.x;
  uint lo = floor, hi = floatBitsToUint(1.0) + 1;  // it holds at lo, not at hi
  while (hi - lo > 1) {
    const uint step = (hi - lo + WAYS - 1) / WAYS;
    float stat[WAYS];
    [[unroll]] for (uint j = 0; j < WAYS; ++j) stat[j] = 0.0;
    for (uint i = t; i < p.cols; i += BATCH * WG) {
      float w[BATCH];
      batch_weights(i, max_logit, w);
      [[unroll]] for (uint b = 0; b < BATCH; ++b) {
        const uint bits = floatBitsToUint(w[b]);
        [[unroll]] for (uint j = 1; j < WAYS; ++j)
          if (bits >= lo + j * step) stat[j] += by_count ? 1.0 : w[b];
      }
    }
    reduce(stat);
    uint next_lo = lo, next_hi = hi;
    for (uint j = 1; j < WAYS && lo + j * step < hi; ++j) {
      if (partial[j][0] >= target) {
        next_lo = lo + j * step;
      } else {
        next_hi = lo + j * step;
        break;
      }
    }
    barrier();  // partial is written again
    lo = next_lo;
    hi = next_hi;
  }
  return lo;
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  float v[WAYS];
  [[unroll]] for (uint j = 0; j < WAYS; ++j) v[j] = 0.0;
  v[0] = -1.0 / 0.0;
  for (uint i = t; i < p.cols; i += BATCH * WG) {
    float l[BATCH];
    [[unroll]] for (uint b = 0; b < BATCH; ++b)
      l[b] = i + b * WG < p.cols ? p.logits.v[i + b * WG] : -1.0 / 0.0;
    [[unroll]] for (uint b = 0; b < BATCH; ++b) v[0] = max(v[0], l[b]);
  }
  partial[0][t] = v[0];
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) partial[0][t] = max(partial[0][t], partial[0][t + s]);
    barrier();
  }
  const float max_logit = partial[0][0];
  barrier();

  uint cut = 0;  // the kept weights are those >= cut (as bits)
  if (p.top_k > 0 && p.top_k < p.cols) cut = find_cut(0, true, float(p.top_k), max_logit);
  if (p.top_p < 1.0) {
    v[0] = 0.0;
    for (uint i = t; i < p.cols; i += BATCH * WG) {
      float w[BATCH];
      batch_weights(i, max_logit, w);
      [[unroll]] for (uint b = 0; b < BATCH; ++b)
        if (floatBitsToUint(w[b]) >= cut) v[0] += w[b];
    }
    reduce(v);
    const float target = p.top_p * partial[0][0];
    barrier();
    cut = find_cut(cut, false, target, max_logit);
  }
  cut = max(cut, floatBitsToUint(p.min_p));

  // The draw, over contiguous ranges of the vocabulary in order: each invocation sums its range,
  // the ranges' sums are summed in order, and the one whose interval holds u times the sum walks
  // its range.
  const uint per = (p.cols + WG - 1) / WG, begin = min(t * per, p.cols), end = min(begin + per, p.cols);
  float own = 0.0;
  for (uint i = begin; i < end; i += BATCH) {
    float l[BATCH];
    [[unroll]] for (uint b = 0; b < BATCH; ++b) l[b] = i + b < end ? p.logits.v[i + b] : 0.0;
    [[unroll]] for (uint b = 0; b < BATCH; ++b) {
      const float w = weight_of(l[b], max_logit);
      if (i + b < end && floatBitsToUint(w) >= cut) own += w;
    }
  }
  // Where each range's interval of the kept sum starts, nondecreasing by construction so that
  // the intervals never overlap (float sums in another order could): CHUNKS invocations sum
  // chunks of ranges, one places the chunks in order, then each places its chunk's ranges from
  // there, clamped below the next chunk's start.
  const uint CHUNKS = 32, PER_CHUNK = WG / CHUNKS;
  partial[0][t] = own;
  barrier();
  if (t < CHUNKS) {
    float sum = 0.0;
    for (uint k = 0; k < PER_CHUNK; ++k) sum += partial[0][t * PER_CHUNK + k];
    partial[2][t] = sum;
  }
  barrier();
  if (t == 0) {
    float at = 0.0;
    for (uint c = 0; c < CHUNKS; ++c) {
      const float sum = partial[2][c];
      partial[2][c] = at;
      at += sum;
    }
    partial[2][CHUNKS] = at;  // the kept sum
  }
  barrier();
  if (t < CHUNKS) {
    const float next = partial[2][t + 1];
    float at = partial[2][t];
    for (uint k = 0; k < PER_CHUNK; ++k) {
      partial[1][t * PER_CHUNK + k] = at;
      at = min(at + partial[0][t * PER_CHUNK + k], next);
    }
  }
  barrier();
  const float total = partial[2][CHUNKS];
  const float before = partial[1][t], through = t + 1 < WG ? partial[1][t + 1] : total;
  // Below the sum (u < 1, but u * sum may round up to it): one interval holds it.
  const float r = min(p.step.u * total, uintBitsToFloat(floatBitsToUint(total) - 1));
  if (r < before || r >= through) return;
  float run = before;
  uint picked = begin;
  bool found = false;
  for (uint i = begin; i < end && !found; i += BATCH) {
    float l[BATCH];
    [[unroll]] for (uint b = 0; b < BATCH; ++b) l[b] = i + b < end ? p.logits.v[i + b] : 0.0;
    for (uint b = 0; b < BATCH && i + b < end; ++b) {
      const float w = weight_of(l[b], max_logit);
      if (floatBitsToUint(w) < cut) continue;
      picked = i + b;
      run += w;
      if (run > r) {
        found = true;
        break;
      }
    }
  }
  p.ids.v[0] = int(picked);
}
