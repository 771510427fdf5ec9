// out[j] = sum_k round(x[k]) * w[j, k] for one activation row (decode), included by matvec.comp
// (shared-memory reduction) and matvec_subgroup.comp (subgroupAdd; needs subgroup arithmetic,
// which SPIR-V declares module-wide, hence two modules rather than a specialization constant).
// Each workgroup computes ROWS output columns; every invocation strides over k for all of them,
// so each has ROWS coalesced loads in flight; float32 accumulation; one reduction at the end.
// VEC: the weight's rows are whole 16-byte chunks (32 4-bit, 8 16-bit or 4 float32 values) and
// x is 16-byte aligned: both are read with 16-byte loads, x is rounded once per chunk for all
// ROWS rows, and the 4-bit absmax is decoded once per chunk (bitsandbytes blocksizes are
// multiples of 32, so a chunk never straddles blocks) with the code tables in shared memory.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
layout(constant_id = 2) const bool VEC = false;
const uint WG = 128;
const uint ROWS = 4;
layout(local_size_x = WG) in;

shared float code[16];
shared float nested_code[256];
#define CODE_AT(w, q) code[q]
#define NESTED_CODE_AT(w, q) nested_code[q]
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

shared float sums[ROWS][WG];  // per invocation, or per subgroup (at most WG of them)

const uint PER_CHUNK = WKIND >= 3 ? 32 : WKIND == 0 ? 4 : 8;  // values per 16 bytes

// The 4-bit value in bits [shift, shift + 4) of `word`, dequantized and rounded like
// weight_value() does.
float q4(uint word, uint shift, float absmax) {
  precise float v = CODE_AT(p.w, bitfieldExtract(word, int(shift), 4)) * absmax;
  return round_dequantized(v);
}

float lo16(uint word) { return WKIND == 1 ? unpackHalf2x16(word).x : uintBitsToFloat(word << 16); }
float hi16(uint word) {
  return WKIND == 1 ? unpackHalf2x16(word).y : uintBitsToFloat(word & 0xffff0000u);
}

// The 16-byte chunk of weight row `row` that starts at column k0, dotted with x[k0..], which
// the caller loaded and rounded once for all ROWS rows.
float chunk_dot(uint row, uint k0, float xs[32]) {
  const uint e0 = row * p.k + k0;
  const uvec4 c = UVec4s(p.w.data).v[p.w.values / 4 + e0 / PER_CHUNK];
  float acc = 0.0;
  if (WKIND == 0) {
    [[unroll]] for (uint i = 0; i < 4; ++i) acc += xs[i] * uintBitsToFloat(c[i]);
  } else if (WKIND <= 2) {
    [[unroll]] for (uint i = 0; i < 4; ++i) acc += xs[2 * i] * lo16(c[i]) + xs[2 * i + 1] * hi16(c[i]);
  } else {
    const float absmax = block_absmax(p.w, e0 / p.w.blocksize);
    // Byte b of word i holds elements 8i + 2b (high nibble) and 8i + 2b + 1 (low nibble).
    [[unroll]] for (uint i = 0; i < 4; ++i)
      [[unroll]] for (uint b = 0; b < 4; ++b)
        acc += xs[8 * i + 2 * b] * q4(c[i], 8 * b + 4, absmax) +
               xs[8 * i + 2 * b + 1] * q4(c[i], 8 * b, absmax);
  }
  return acc;
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint j0 = group_index() * ROWS;
  if (j0 >= p.n) return;  // uniform over the workgroup
  if (WKIND >= 3) {
    if (t < 16) code[t] = uintBitsToFloat(p.w.data.v[p.w.code + t]);
    if (WKIND == 4)
      for (uint i = t; i < 256; i += WG) nested_code[i] = uintBitsToFloat(p.w.data.v[p.w.code + 16 + i]);
    barrier();
  }
  float acc[ROWS];
  [[unroll]] for (uint r = 0; r < ROWS; ++r) acc[r] = 0.0;
  if (VEC) {
    for (uint c = t; c < p.k / PER_CHUNK; c += WG) {
      float xs[32];
      [[unroll]] for (uint i = 0; i < PER_CHUNK / 4; ++i) {
        const vec4 v = Vec4s(p.x).v[c * PER_CHUNK / 4 + i];
        xs[4 * i] = round_operand(v.x);
        xs[4 * i + 1] = round_operand(v.y);
        xs[4 * i + 2] = round_operand(v.z);
        xs[4 * i + 3] = round_operand(v.w);
      }
      [[unroll]] for (uint r = 0; r < ROWS; ++r)
        if (j0 + r < p.n) acc[r] += chunk_dot(j0 + r, c * PER_CHUNK, xs);
    }
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
