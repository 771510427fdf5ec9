#version 460
#extension GL_GOOGLE_include_directive : require
// Double quantization on the GPU (double_quantize in loader/quantize.cpp): the float32 absmax of
// pass 1 minus the offset, quantized blockwise (256 per workgroup) to 8-bit indices into the
// signed dynamic map, with one float32 nested absmax per block.
#include "common.glsl"
#include "quantize.glsl"

const uint WG = 256;  // the nested blocksize
layout(local_size_x = WG) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
  Floats absmax;         // pass 1's, float32
  Words absmax_q;        // the 8-bit indices, four per word
  Floats nested_absmax;
  QuantConstants constants;
  uint n;                // absmax values
  float offset;          // the host's torch mean of `absmax`
  float offset_scaled;   // offset * 2^64
} p;

shared uint indices[WG];

// flush_subnormal(absmax - offset) as the host rounds it. A subnormal offset (the mean of tiny
// absmax values) would read as zero on a device that flushes operands, so the difference is then
// taken at 2^64 times the scale, where both terms are normal.
float centred(float a) {
  const uint offset_bits = floatBitsToUint(p.offset) & 0x7fffffffu;
  if (offset_bits >= 0x00800000u || offset_bits == 0u) {  // normal or zero
    precise float d = a - p.offset;
    return flush_subnormal(d);
  }
  if (a == 0.0) return 0.0;                          // -offset is subnormal: flushed
  if (a >= uintBitsToFloat(27u << 23)) return a;     // >= 2^-100: the offset is below half an ulp
  precise float d = a * uintBitsToFloat(191u << 23) - p.offset_scaled;  // a * 2^64 - offset * 2^64
  return d < uintBitsToFloat(65u << 23) ? 0.0 : d * uintBitsToFloat(63u << 23);  // 2^-62, 2^-64
}

void main() {
  const uint g = group_index(), t = gl_LocalInvocationID.x, i = g * WG + t;
  if (g * WG >= p.n) return;  // past the end of a grid folded into y
  const float c = i < p.n ? centred(p.absmax.v[i]) : 0.0;
  const float amax = workgroup_max(abs(c));
  if (t == 0u) p.nested_absmax.v[g] = amax;
  // An all-zero block scales 0 by 1/0: NaN, whose search ends at index 0.
  indices[t] = amax == 0.0 || i >= p.n
                   ? 0u
                   : quantize_8bit_index(scale_value(c, bnb_reciprocal(amax, p.constants)),
                                         p.constants);
  barrier();
  if ((t & 3u) == 0u && i < p.n)
    p.absmax_q.v[i / 4u] =
        indices[t] | (indices[t + 1u] << 8) | (indices[t + 2u] << 16) | (indices[t + 3u] << 24);
}
