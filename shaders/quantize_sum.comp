#version 460
#extension GL_GOOGLE_include_directive : require
// The sum of a weight's float32 absmax in the order of torch's CUDA reduction, for the offset of
// double quantization (loader/quantize.cpp torch_cuda_mean; the host takes the mean from it).
// Phase 0: workgroup b (of `blocks`) sums its lanes' strided values, then a tree over the lanes.
// Phase 1: one workgroup sums the partial sums, lane t taking those of blocks t, t + lanes, ...
// torch's `lanes` (a power of two up to 512) run in a workgroup of 512 whose other invocations
// add zeros: exact, so the tree's sums are those of a `lanes`-wide tree.
#include "common.glsl"

const uint WG = 512;
layout(local_size_x = WG) in;

#include "reduce.glsl"

layout(push_constant) uniform Push {
  Floats values;
  Floats out_;  // phase 0: one sum per workgroup; phase 1: the total
  uint n;
  uint blocks;
  uint lanes;
  uint vectorized;  // loads of 4 consecutive values
  uint phase;
} p;

// What one lane accumulates (thread_sum in loader/quantize.cpp): four partial sums, combined in
// order at the end.
float lane_sum(uint first, uint stride, bool takes_tail) {
  precise float acc[4] = float[4](0.0, 0.0, 0.0, 0.0);
  const uint n = p.n;
  if (p.vectorized != 0u) {
    uint idx = first;
    for (; idx * 4u + 3u < n; idx += stride)
      [[unroll]] for (uint i = 0u; i < 4u; ++i) acc[i] += p.values.v[idx * 4u + i];
    const uint tail = n - n % 4u + first;  // lane t of block 0 takes element tail_start + t
    if (takes_tail && tail < n) acc[0] += p.values.v[tail];
  } else {
    uint idx = first;
    for (; idx + 3u * stride < n; idx += stride * 4u)
      [[unroll]] for (uint i = 0u; i < 4u; ++i) acc[i] += p.values.v[idx + i * stride];
    for (uint i = 0u; i < 4u && idx < n; ++i, idx += stride) acc[i] += p.values.v[idx];
  }
  precise float sum = ((acc[0] + acc[1]) + acc[2]) + acc[3];
  return sum;
}

void main() {
  const uint t = gl_LocalInvocationID.x;
  precise float v = 0.0;
  if (t < p.lanes) {
    if (p.phase == 0u) {
      const uint b = gl_WorkGroupID.x;
      v = lane_sum(t + b * p.lanes, p.lanes * p.blocks, b == 0u);
    } else {
      for (uint j = t; j < p.n; j += p.lanes) v += p.values.v[j];
    }
  }
  v = workgroup_sum(v);
  if (t == 0u) p.out_.v[p.phase == 0u ? gl_WorkGroupID.x : 0u] = v;
}
