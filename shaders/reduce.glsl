// Workgroup-wide reductions, for a power-of-two workgroup size WG. Every invocation of the
// workgroup must call them (they contain barriers). With SUBGROUP_REDUCE (the including module
// enables GL_KHR_shader_subgroup_arithmetic) each subgroup reduces its lanes first and one
// barrier publishes the subgroups' values, summed in a fixed order: 2 barriers per call instead
// of log2(WG) + 2 through shared memory.
#ifndef SUBGROUP_REDUCE
#define SUBGROUP_REDUCE 0
#endif
shared float reduce_scratch[WG];

#if SUBGROUP_REDUCE
float workgroup_sum(float v) {
  v = subgroupAdd(v);
  if (subgroupElect()) reduce_scratch[gl_SubgroupID] = v;
  barrier();
  float r = 0.0;
  for (uint g = 0; g < gl_NumSubgroups; ++g) r += reduce_scratch[g];
  barrier();  // before the next call overwrites the scratch
  return r;
}

float workgroup_max(float v) {
  v = subgroupMax(v);
  if (subgroupElect()) reduce_scratch[gl_SubgroupID] = v;
  barrier();
  float r = reduce_scratch[0];
  for (uint g = 1; g < gl_NumSubgroups; ++g) r = max(r, reduce_scratch[g]);
  barrier();
  return r;
}
#else
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
#endif
