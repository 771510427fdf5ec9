#version 460
#extension GL_GOOGLE_include_directive : require
// ids[r] = the index of the largest logit of row r, the first one on ties (std::max_element).
#include "common.glsl"

const uint WG = 256;
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
  for (uint i = t; i < p.cols; i += WG) {
    const float v = p.logits.v[r * p.cols + i];
    if (index == 0xffffffffu || v > value) {
      value = v;
      index = i;
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
