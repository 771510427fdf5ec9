#version 460
#extension GL_GOOGLE_include_directive : require
// The split attention, reduced through shared memory (any device).
#define SUBGROUP_REDUCE 0
#include "attention.glsl"
