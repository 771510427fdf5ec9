#version 460
#extension GL_GOOGLE_include_directive : require
// dst = src in 16-byte words, a grid-stride loop: the device's copy bandwidth for `nibble bench`
// (a shader copy reaches far more of it than vkCmdCopyBuffer on some GPUs).
#include "common.glsl"

layout(local_size_x = 256) in;

layout(push_constant) uniform Push {
  UVec4s dst;
  UVec4s src;
  uint n;  // 16-byte words
} p;

void main() {
  const uint stride = gl_NumWorkGroups.x * gl_NumWorkGroups.y * 256;
  for (uint i = group_index() * 256 + gl_LocalInvocationID.x; i < p.n; i += stride)
    p.dst.v[i] = p.src.v[i];
}
