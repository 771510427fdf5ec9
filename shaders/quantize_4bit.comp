#version 460
#extension GL_GOOGLE_include_directive : require
// Pass 1 of the GPU quantizer: a chunk of a 16/32-bit weight (read from the host-visible staging
// ring) to bitsandbytes' packed 4-bit codes and float32 per-block absmax, as quantize_4bit does.
// Each invocation takes PER_THREAD consecutive values (one or two packed words); the invocations
// of one block find its absmax through shared memory. Chunks start on a block boundary.
#include "common.glsl"
#include "quantize.glsl"

layout(constant_id = 0) const uint INPUT = 2;        // 0 float32, 1 float16, 2 bfloat16
layout(constant_id = 1) const uint TYPE = 0;         // 0 NF4, 1 FP4
layout(constant_id = 2) const uint PER_THREAD = 8;   // 8, or 16 for blocks of 4096
const uint WG = 256;
layout(local_size_x = WG) in;

layout(push_constant) uniform Push {
  UVec4s src;      // the chunk's values
  Words packed;    // the chunk's first packed word
  Floats absmax;   // the chunk's first block's absmax
  QuantConstants constants;
  Words status;    // v[0]: the lowest inf or NaN as 2 * element + (1 if inf), by atomicMin
  uint count;      // elements in the chunk
  uint first;      // the chunk's first element in the weight
  uint blocksize;
} p;

shared float block_max[WG];

uint code_index(float x, float nf4[15], float fp4[7]) {
  uint exceeded = 0u;
  if (TYPE == 0u) {
    [[unroll]] for (uint j = 0u; j < 15u; ++j) exceeded += x > nf4[j] ? 1u : 0u;
    return exceeded;
  }
  const float a = abs(x);
  [[unroll]] for (uint j = 0u; j < 7u; ++j) exceeded += a > fp4[j] ? 1u : 0u;
  return p.constants.fp4_index[exceeded] + (x < 0.0 ? 8u : 0u);
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  const uint e0 = (gl_WorkGroupID.x * WG + t) * PER_THREAD;  // first element, within the chunk
  float x[PER_THREAD];
  const uint words = PER_THREAD / (INPUT == 0u ? 4u : 8u);  // 16-byte loads
  [[unroll]] for (uint w = 0u; w < words; ++w) {
    const uvec4 u = e0 < p.count ? p.src.v[e0 / (INPUT == 0u ? 4u : 8u) + w] : uvec4(0u);
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {
      if (INPUT == 0u) {
        x[4u * w + j] = uintBitsToFloat(u[j]);
      } else if (INPUT == 1u) {
        x[8u * w + 2u * j] = f16_bits_to_f32(u[j] & 0xffffu);
        x[8u * w + 2u * j + 1u] = f16_bits_to_f32(u[j] >> 16);
      } else {
        x[8u * w + 2u * j] = uintBitsToFloat(u[j] << 16);
        x[8u * w + 2u * j + 1u] = uintBitsToFloat(u[j] & 0xffff0000u);
      }
    }
  }
  float amax = 0.0;
  uint bad = 0xffffffffu;
  [[unroll]] for (uint i = 0u; i < PER_THREAD; ++i) {
    if (e0 + i >= p.count) {
      x[i] = 0.0;  // a partial last block is padded with zeros
    } else {
      if (non_finite(x[i]))
        bad = min(bad, ((p.first + e0 + i) << 1) | ((floatBitsToUint(x[i]) << 9) == 0u ? 1u : 0u));
      x[i] = flush_subnormal(x[i]);
      amax = max(amax, abs(x[i]));
    }
  }
  if (bad != 0xffffffffu) atomicMin(p.status.v[0], bad);

  // The block's absmax: a max over its G invocations (exact in any order).
  const uint G = p.blocksize / PER_THREAD;
  block_max[t] = amax;
  barrier();
  for (uint s = G / 2u; s > 0u; s >>= 1) {
    if ((t & (G - 1u)) < s) block_max[t] = max(block_max[t], block_max[t + s]);
    barrier();
  }
  const float absmax = block_max[t & ~(G - 1u)];
  if (e0 >= p.count) return;
  if ((t & (G - 1u)) == 0u) p.absmax.v[e0 / p.blocksize] = absmax;

  float nf4[15], fp4[7];
  [[unroll]] for (uint j = 0u; j < 15u; ++j) nf4[j] = p.constants.nf4[j];
  [[unroll]] for (uint j = 0u; j < 7u; ++j) fp4[j] = p.constants.fp4[j];
  // An all-zero block scales 0 by 1/0: NaN, which takes index 0 (a device need not keep NaN).
  const float scale = bnb_reciprocal(absmax, p.constants);
  [[unroll]] for (uint w = 0u; w < PER_THREAD / 8u; ++w) {
    if (e0 + 8u * w >= p.count) break;
    uint word = 0u;
    [[unroll]] for (uint j = 0u; j < 4u; ++j) {  // byte j: elements 2j (high nibble), 2j + 1
      const uint hi = absmax == 0.0 ? 0u : code_index(scale_value(x[8u * w + 2u * j], scale), nf4, fp4);
      const uint lo =
          absmax == 0.0 ? 0u : code_index(scale_value(x[8u * w + 2u * j + 1u], scale), nf4, fp4);
      word |= ((hi << 4) | lo) << (8u * j);
    }
    p.packed.v[e0 / 8u + w] = word;
  }
}
