// out[j] = sum_k round(x[k]) * w[j, k] for one activation row (decode), included by matvec.comp
// (shared-memory reduction) and matvec_subgroup.comp (subgroupAdd; needs subgroup arithmetic,
// which SPIR-V declares module-wide, hence two modules rather than a specialization constant).
// Each workgroup computes ROWS output columns; every invocation strides over k for all of them,
// so each has ROWS coalesced loads in flight; float32 accumulation; one reduction at the end.
// VEC: the weight's rows are whole 16-byte chunks (32 4-bit, 8 16-bit or 4 float32 values) and
// x is 16-byte aligned: both are read with 16-byte loads, and the 4-bit absmax is decoded once
// per chunk (bitsandbytes blocksizes are multiples of 32, so a chunk never straddles blocks).
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
layout(constant_id = 2) const bool VEC = false;
const uint WG = 128;
const uint ROWS = 4;
layout(local_size_x = WG) in;

#include "weight.glsl"

layout(buffer_reference, std430, buffer_reference_align = 16) buffer Vec4s { vec4 v[]; };
layout(buffer_reference, std430, buffer_reference_align = 16) buffer UVec4s { uvec4 v[]; };

layout(push_constant) uniform Push {
  Weight w;
  Floats out_;
  Floats x;
  uint rows;  // activation rows: always 1 here
  uint n;     // output columns = weight rows
  uint k;
} p;

shared float code[16];
shared float sums[ROWS][WG];  // per invocation, or per subgroup (at most WG of them)

// x[k0 .. k0 + 3], rounded to the compute dtype.
vec4 x4(uint k0) {
  const vec4 v = Vec4s(p.x).v[k0 / 4];
  return vec4(round_operand(v.x), round_operand(v.y), round_operand(v.z), round_operand(v.w));
}

// The 4-bit value in bits [shift, shift + 4) of `word`, dequantized and rounded like
// weight_value() does.
float q4(uint word, uint shift, float absmax) {
  precise float v = code[(word >> shift) & 15u] * absmax;
  return round_operand(v);
}

// Bytes `b` and `b + 1` of `word`: four elements, the even one of each byte in its high nibble.
vec4 q4x4(uint word, uint b, float absmax) {
  return vec4(q4(word, 8 * b + 4, absmax), q4(word, 8 * b, absmax), q4(word, 8 * b + 12, absmax),
              q4(word, 8 * b + 8, absmax));
}

vec4 half4(uint lo, uint hi) {
  if (WKIND == 1) return vec4(unpackHalf2x16(lo), unpackHalf2x16(hi));
  return vec4(uintBitsToFloat(lo << 16), uintBitsToFloat(lo & 0xffff0000u),
              uintBitsToFloat(hi << 16), uintBitsToFloat(hi & 0xffff0000u));
}

// The 16-byte chunk of weight row `row` that starts at column k0, dotted with x.
float chunk_dot(uint row, uint k0) {
  const uint e0 = row * p.k + k0;
  const uint per_chunk = WKIND >= 3 ? 32 : WKIND == 0 ? 4 : 8;
  const uvec4 c = UVec4s(p.w.data).v[p.w.values / 4 + e0 / per_chunk];
  if (WKIND == 0) return dot(x4(k0), uintBitsToFloat(c));
  if (WKIND <= 2) return dot(x4(k0), half4(c.x, c.y)) + dot(x4(k0 + 4), half4(c.z, c.w));
  const float absmax = block_absmax(p.w, e0 / p.w.blocksize);
  float acc = 0.0;
  [[unroll]] for (uint i = 0; i < 4; ++i)
    acc += dot(x4(k0 + 8 * i), q4x4(c[i], 0, absmax)) + dot(x4(k0 + 8 * i + 4), q4x4(c[i], 2, absmax));
  return acc;
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint j0 = group_index() * ROWS;
  if (j0 >= p.n) return;  // uniform over the workgroup
  if (WKIND >= 3) {
    if (t < 16) code[t] = uintBitsToFloat(p.w.data.v[p.w.code + t]);
    barrier();
  }
  float acc[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r] = 0.0;
  if (VEC) {
    const uint per_chunk = WKIND >= 3 ? 32 : WKIND == 0 ? 4 : 8;
    for (uint c = t; c < p.k / per_chunk; c += WG)
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        if (j0 + r < p.n) acc[r] += chunk_dot(j0 + r, c * per_chunk);
  } else {
    for (uint i = t; i < p.k; i += WG) {
      const float xi = round_operand(p.x.v[i]);
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        if (j0 + r < p.n) acc[r] += xi * weight_value(p.w, (j0 + r) * p.k + i);
    }
  }
#if SUBGROUP_REDUCE
  [[unroll]] for (uint r = 0; r < ROWS; ++r) {
    const float s = subgroupAdd(acc[r]);
    if (subgroupElect()) sums[r][gl_SubgroupID] = s;
  }
  barrier();
  if (t < ROWS && j0 + t < p.n) {
    float s = 0.0;
    for (uint g = 0; g < gl_NumSubgroups; ++g) s += sums[t][g];
    p.out_.v[j0 + t] = s;
  }
#else
  [[unroll]] for (uint r = 0; r < ROWS; ++r) sums[r][t] = acc[r];
  barrier();
  for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s)
      [[unroll]] for (uint r = 0; r < ROWS; ++r) sums[r][t] += sums[r][t + s];
    barrier();
  }
  if (t < ROWS && j0 + t < p.n) p.out_.v[j0 + t] = sums[t][0];
#endif
}
