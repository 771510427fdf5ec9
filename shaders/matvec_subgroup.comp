#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// The decode matrix-vector product, reduced with subgroupAdd (devices with subgroup arithmetic).
#define SUBGROUP_REDUCE 1
#include "matvec.glsl"
