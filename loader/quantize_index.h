// The 8-bit index bitsandbytes' quantize_blockwise (dQuantize<0>) gives a value in the sorted
// 256-entry code of double quantization: a 7-step binary search from the middle of the code, then
// a comparison with the midpoint towards the neighbour on x's side (ties go to the searched
// pivot). One definition for the CPU quantizer and the CUDA kernels, so that both choose alike
// (neither compiler can fuse the midpoint's add-then-multiply); shaders/quantize.glsl repeats it
// in GLSL, which cannot include this header.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define NIBBLE_HOST_DEVICE __host__ __device__
#else
#define NIBBLE_HOST_DEVICE
#endif

namespace nibble {

NIBBLE_HOST_DEVICE inline uint8_t quantize_8bit_index_in(const float* code, float x) {
  int pivot = 127, upper_pivot = 255, lower_pivot = 0;
  float lower = -1.0f, upper = 1.0f;
  float val = code[pivot];
  for (int step = 64; step > 0; step >>= 1) {
    if (x > val) {
      lower_pivot = pivot;
      lower = val;
      pivot += step;
    } else {
      upper_pivot = pivot;
      upper = val;
      pivot -= step;
    }
    val = code[pivot];
  }
  if (upper_pivot == 255) upper = code[255];
  if (lower_pivot == 0) lower = code[0];
  if (x > val) return uint8_t(x > (upper + val) * 0.5f ? upper_pivot : pivot);
  return uint8_t(x < (lower + val) * 0.5f ? lower_pivot : pivot);
}

}  // namespace nibble
