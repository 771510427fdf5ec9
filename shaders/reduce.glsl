// Workgroup-wide reductions through shared memory, for a power-of-two workgroup size WG. Every
// invocation of the workgroup must call them (they contain barriers).
shared float reduce_scratch[WG];

float workgroup_sum(float v) {
  const uint t = gl_LocalInvocationID.x;
  reduce_scratch[t] = v;
  barrier();
  [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) reduce_scratch[t] += reduce_scratch[t + s];
    barrier();
  }
  const float r = reduce_scratch[0];
  barrier();
  return r;
}

float workgroup_max(float v) {
  const uint t = gl_LocalInvocationID.x;
  reduce_scratch[t] = v;
  barrier();
  [[unroll]] for (uint s = WG / 2; s > 0; s >>= 1) {
    if (t < s) reduce_scratch[t] = max(reduce_scratch[t], reduce_scratch[t + s]);
    barrier();
  }
  const float r = reduce_scratch[0];
  barrier();
  return r;
}
