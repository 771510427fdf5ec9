// Measures, on an NVIDIA GPU, where bitsandbytes' reciprocal differs from the correctly rounded one.
//
// bitsandbytes is built with --use_fast_math, so kQuantizeBlockwise's `1.0f / absmax` compiles to
// rcp.approx.ftz.f32 (MUFU.RCP): within 1 ulp, but for some inputs the other float neighbour of
// 1/x than IEEE division gives. loader/quantize.cpp uses the correctly rounded value; for 16-bit
// weights absmax has at most 11 significant bits, so 1024 mantissas cover every case and a
// 1024-bit table from this program would make our codes match bitsandbytes' everywhere
// (docs/QUANTIZATION.md, "What we match").
//
//   nvcc -O2 --use_fast_math -arch=sm_90 tools/bnb_rcp_table.cu -o bnb_rcp_table && ./bnb_rcp_table
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

__global__ void reciprocal(const float* x, float* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = 1.0f / x[i];  // what bitsandbytes' kernel computes
}

int main() {
  // The 1024 significands of fp16 (bf16's 128 are among them), at several exponents to check that
  // only the significand matters.
  const int exponents[] = {-20, -7, -1, 0, 3, 15};
  const int n = 1024 * 6;
  std::vector<float> x(n), y(n);
  for (int e = 0; e < 6; ++e)
    for (int m = 0; m < 1024; ++m) x[e * 1024 + m] = std::ldexp(1.0f + m / 1024.0f, exponents[e]);
  float *dx, *dy;
  cudaMalloc(&dx, n * sizeof(float));
  cudaMalloc(&dy, n * sizeof(float));
  cudaMemcpy(dx, x.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  reciprocal<<<(n + 255) / 256, 256>>>(dx, dy, n);
  cudaMemcpy(y.data(), dy, n * sizeof(float), cudaMemcpyDeviceToHost);

  uint32_t words[32] = {};
  int differ = 0, inconsistent = 0;
  for (int m = 0; m < 1024; ++m) {
    const bool d0 = y[m] != 1.0f / x[m];  // host division is correctly rounded
    for (int e = 1; e < 6; ++e)
      inconsistent += (y[e * 1024 + m] != 1.0f / x[e * 1024 + m]) != d0;
    if (d0) {
      words[m / 32] |= 1u << (m % 32);
      ++differ;
    }
  }
  std::printf("// %d of 1024 fp16 significands get the other neighbour; %d exponent inconsistencies\n",
              differ, inconsistent);
  std::printf("constexpr uint32_t kApproxReciprocalDiffers[32] = {");
  for (int i = 0; i < 32; ++i) std::printf("%s0x%08x", i ? ", " : "", words[i]);
  std::printf("};\n");
  return inconsistent ? 1 : 0;
}
