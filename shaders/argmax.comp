#version 460
#extension GL_GOOGLE_include_directive : require
// ids[r] = the index of the largest logit of row r, the first one on ties (std::max_element).
// One workgroup per row (decode has one): each invocation keeps 8 loads in flight, so a 32000-wide
// row is 16 rounds of loads rather than 125 (docs/PERF.md, "Decode").
#include "common.glsl"

const uint WG = 256;
const uint LOADS = 8;
layout(local_size_x = WG) in;

layout(push_constant) uniform Push {
  Ints ids;
  Floats logits;
  uint rows;
  uint cols;
} p;

shared float best_value[WG];
shared uint best_index[WG];

void main() {
  const uint r = group_index(), t = gl_LocalInvocationID.x;
  if (r >= p.rows) return;
  float value = -1.0 / 0.0;
  uint index = 0xffffffffu;
  // Visits this invocation's columns in increasing order, so `>` keeps the first maximum.
  for (uint i = t; i < p.cols; i += LOADS * WG) {
    float v[LOADS];
    [[unroll]] for (uint u = 0; u < LOADS; ++u)
      v[u] = i + u * WG < p.cols ? p.logits.v[r * p.cols + i + u * WG] : 0.0;
    [[unroll]] for (uint u = 0; u < LOADS; ++u)
      if (i + u * WG < p.cols && (index == 0xffffffffu || v[u] > value)) {
        value = v[u];
        index = i + u * WG;
      }
  }
  best_value[t] = value;
  best_index[t] = index;
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) {
      const float v = best_value[t + s];
      const uint i = best_index[t + s];
      if (i != 0xffffffffu && (best_index[t] == 0xffffffffu || v > best_value[t] ||
                               (v == best_value[t] && i < best_index[t]))) {
        best_value[t] = v;
        best_index[t] = i;
      }
    }
    barrier();
  }
  if (t == 0) p.ids.v[r] = int(best_index[0]);
}
