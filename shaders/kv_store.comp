#version 460
#extension GL_GOOGLE_include_directive : require
// Appends the step's k and v rows to the float16 caches at rows pos0.. (two halves per word, so
// the row length must be even and the caches' addresses point at their row 0).
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  Words k_cache;
  Words v_cache;
  Floats k;
  Floats v;
  StepData step;
  uint rows;
  uint cols;
} p;

void main() {
  const uint pair = group_index() * 256 + gl_LocalInvocationID.x;
  if (pair * 2 >= p.rows * p.cols) return;
  const uint word = uint(p.step.pos0) * p.cols / 2 + pair;
  const uint e = pair * 2;
  p.k_cache.v[word] = f16_pair(p.k.v[e], p.k.v[e + 1]);
  p.v_cache.v[word] = f16_pair(p.v.v[e], p.v.v[e + 1]);
}
