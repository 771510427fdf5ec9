#version 460
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// The split attention, its softmax's reductions by subgroup arithmetic (devices that have it).
#define SUBGROUP_REDUCE 1
#include "attention.glsl"
