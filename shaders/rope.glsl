// One rotary-embedding rotation, shared by rope.comp, rope_kv.comp and attention.comp's fused
// prologue: a head's elements i and i + head_dim/2 (HF rotate_half), va and vb, turned by `angle`.
// `precise`: no fused multiply-add, so every shader rounds as the CPU reference does.
#include "sincos.glsl"

vec2 rope_pair(float va, float vb, float angle) {
  const vec2 sc = accurate_sincos(angle);
  precise vec2 rotated = vec2(va * sc.y - vb * sc.x, vb * sc.y + va * sc.x);
  return rotated;
}

// Elements a and b of x rotated in place; returns them.
vec2 rope_rotate(Floats x, uint a, uint b, float angle) {
  const vec2 rotated = rope_pair(x.v[a], x.v[b], angle);
  x.v[a] = rotated.x;
  x.v[b] = rotated.y;
  return rotated;
}
