// One rotary-embedding rotation, shared by rope.comp and rope_kv.comp: elements a and b of x
// (a head's i and i + head_dim/2, HF rotate_half) turned by `angle`, in place; returns them.
#include "sincos.glsl"

vec2 rope_rotate(Floats x, uint a, uint b, float angle) {
  const vec2 sc = accurate_sincos(angle);
  const float va = x.v[a], vb = x.v[b];
  const vec2 rotated = vec2(va * sc.y - vb * sc.x, vb * sc.y + va * sc.x);
  x.v[a] = rotated.x;
  x.v[b] = rotated.y;
  return rotated;
}
