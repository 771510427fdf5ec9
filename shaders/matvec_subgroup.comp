#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
// The decode matrix-vector product, reduced with subgroup operations (devices with subgroup
// arithmetic and shuffles, and subgroups of at least 8 lanes).
#define SUBGROUP_REDUCE 1
#include "matvec.glsl"
