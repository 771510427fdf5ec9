#version 460
#extension GL_GOOGLE_include_directive : require
// out[r] = g * (x[r] / sqrt(mean(x[r]²) + eps)). A workgroup per slice of a row: each sums the
// whole row's squares, then normalizes its slice. A decode step's one row is cut into slices of
// 512 values, so that every invocation's loads are in flight at once instead of in a chain of
// rounds (7B: 8.7 us for one workgroup per row); a prompt's rows take one slice each.
// OPERAND 1 / 2 writes out[r] as the next matmul's operands instead: rounded to float16 /
// bfloat16 and packed two per word (shaders/matvec.glsl's X16; cols is even).
// GEMM_OPERANDS 1 / 2 also writes a prompt's rows as the prompt GEMM's float16 operands to x16
// (common.glsl gemm_operand_pair; cols is even), sparing the GEMMs that read out their conversion.
#include "common.glsl"

layout(constant_id = 0) const uint WKIND = 0;
layout(constant_id = 1) const uint ROUND = 0;
layout(constant_id = 2) const uint OPERAND = 0;
layout(constant_id = 3) const uint GEMM_OPERANDS = 0;
const uint WG = 256;
const uint LOADS = 8;  // loads in flight per invocation while summing
layout(local_size_x = WG) in;

#include "reduce.glsl"
#include "weight.glsl"

layout(push_constant) uniform Push {
  Weight g;
  Floats out_;
  Floats x;
  uint rows;
  uint cols;
  float eps;
  uint slices;  // per row
  Words x16;    // GEMM_OPERANDS only
} p;

void main() {
  const uint r = group_index() / p.slices, slice = group_index() % p.slices;
  if (r >= p.rows) return;
  const uint t = gl_LocalInvocationID.x;
  const uint row = r * p.cols;
  float ss = 0.0;
  for (uint i = t; i < p.cols; i += LOADS * WG) {
    float v[LOADS];
    [[unroll]] for (uint l = 0; l < LOADS; ++l)
      v[l] = i + l * WG < p.cols ? p.x.v[row + i + l * WG] : 0.0;
    [[unroll]] for (uint l = 0; l < LOADS; ++l) ss += v[l] * v[l];
  }
  ss = workgroup_sum(ss);
  const float scale = 1.0 / sqrt(ss / float(p.cols) + p.eps);
  // The slice's pairs of values, an invocation per pair.
  const uint pairs = (p.cols + 1) / 2, per_slice = (pairs + p.slices - 1) / p.slices;
  const uint end = min(pairs, (slice + 1) * per_slice);
  Words packed = Words(p.out_);
  for (uint i = slice * per_slice + t; i < end; i += WG) {
    const uint e = 2 * i;
    const bool second = e + 1 < p.cols;
    const float a = weight_value(p.g, e) * (p.x.v[row + e] * scale);
    const float b = second ? weight_value(p.g, e + 1) * (p.x.v[row + e + 1] * scale) : 0.0;
    if (OPERAND != 0) {
      packed.v[(row + e) / 2] = operand_pair(a, b, OPERAND);
    } else {
      p.out_.v[row + e] = a;
      if (second) p.out_.v[row + e + 1] = b;
    }
    if (GEMM_OPERANDS != 0) p.x16.v[(row + e) / 2] = gemm_operand_pair(a, b, GEMM_OPERANDS);
  }
}
