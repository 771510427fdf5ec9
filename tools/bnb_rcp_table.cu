// Measures, on an NVIDIA GPU, where bitsandbytes' reciprocal differs from the correctly rounded
// one, and writes the table loader/bnb_reciprocal_table.inc that loader/quantize.cpp uses.
//
// bitsandbytes is built with --use_fast_math, so kQuantizeBlockwise's
// `local_abs_max = 1.0f / local_abs_max` compiles to rcp.approx.ftz.f32 (SASS: MUFU.RCP): within
// an ulp, but for some inputs the other float32 neighbour of 1/x than IEEE division gives. The
// kernel below is that same expression under the same flags. The program checks, over every
// float32 significand, that
//   - the GPU's value is always one of the two neighbours of the exact 1/x (faithful), and
//   - only the significand matters: for every exponent the result is the exponent-0 result
//     scaled by a power of two, flushed to +0 where that is subnormal (ftz), and a subnormal x
//     gives +inf (x flushed to 0),
// and then prints, for the 1024 significands a 16-bit weight's absmax can have (fp16's 11 bits;
// bf16's 8 are among them), one bit: set where the GPU rounds the other way. It also counts how
// often that happens over all 2^23 float32 significands (float32 weights, nested absmax).
//
//   nvcc -O3 -arch=sm_90 --use_fast_math tools/bnb_rcp_table.cu -o bnb_rcp_table
//   ./bnb_rcp_table > loader/bnb_reciprocal_table.inc   (summary on stderr; exit 1 if a check
//   fails)
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cfloat>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

constexpr uint32_t kSignificands = 1u << 23;

__device__ float bits_to_float(uint32_t b) {
  return __uint_as_float(b);
}

// y[m] = the GPU's 1/x for x = 1 + m * 2^-23, as bitsandbytes computes it.
__global__ void reciprocal_unit(uint32_t* y) {
  const uint32_t m = blockIdx.x * blockDim.x + threadIdx.x;
  if (m >= kSignificands) return;
  const float absmax = bits_to_float(127u << 23 | m);
  const float scale = 1.0f / absmax;  // what bitsandbytes' kernel computes
  y[m] = __float_as_uint(scale);
}

// For every significand and every biased exponent 0..254 of x, counts (per exponent) where the
// GPU's 1/x is not y[m] scaled by 2^(127 - exponent) with ftz applied.
__global__ void check_exponents(const uint32_t* y, unsigned long long* mismatches) {
  const uint32_t m = blockIdx.x * blockDim.x + threadIdx.x;
  if (m >= kSignificands) return;
  const int unit_exponent = int(y[m] >> 23);  // 127 for m == 0 (1/1 == 1), else 126
  for (int e = 0; e < 255; ++e) {
    const float x = bits_to_float(uint32_t(e) << 23 | m);
    const float got = 1.0f / x;
    uint32_t expected;
    if (e == 0) {
      expected = 0x7f800000u;  // subnormal (or zero) x is flushed to 0: +inf
    } else {
      const int exponent = unit_exponent - (e - 127);
      expected = exponent <= 0 ? 0u : uint32_t(exponent) << 23 | (y[m] & 0x7fffffu);
    }
    if (__float_as_uint(got) != expected) atomicAdd(&mismatches[e], 1ull);
  }
}

// kQuantizeBlockwise's statements on one bf16 block, to see what fast math does with subnormal
// values: out[0] = absmax, out[1 + j] = the scaled element j.
__global__ void block_statements(const uint16_t* v, int n, float* out) {
  float local_abs_max = -FLT_MAX;
  for (int j = 0; j < n; ++j)
    local_abs_max = fmaxf(local_abs_max, fabsf((float)__ushort_as_bfloat16(v[j])));
  out[0] = local_abs_max;
  local_abs_max = 1.0f / local_abs_max;
  for (int j = 0; j < n; ++j) out[1 + j] = ((float)__ushort_as_bfloat16(v[j])) * local_abs_max;
}

void check(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return;
  std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
  std::exit(2);
}

}  // namespace

int main() {
  uint32_t* d_unit;
  unsigned long long* d_mismatches;
  check(cudaMalloc(&d_unit, kSignificands * sizeof(uint32_t)), "cudaMalloc");
  check(cudaMalloc(&d_mismatches, 255 * sizeof(unsigned long long)), "cudaMalloc");
  check(cudaMemset(d_mismatches, 0, 255 * sizeof(unsigned long long)), "cudaMemset");
  reciprocal_unit<<<kSignificands / 256, 256>>>(d_unit);
  check_exponents<<<kSignificands / 256, 256>>>(d_unit, d_mismatches);
  check(cudaDeviceSynchronize(), "kernels");
  std::vector<uint32_t> unit(kSignificands);
  std::vector<unsigned long long> mismatches(255);
  check(cudaMemcpy(unit.data(), d_unit, kSignificands * 4, cudaMemcpyDeviceToHost), "copy");
  check(cudaMemcpy(mismatches.data(), d_mismatches, 255 * 8, cudaMemcpyDeviceToHost), "copy");

  // Against the host's IEEE division (this file's host code is not fast-math).
  uint64_t differ_f32 = 0, unfaithful = 0, exponent_mismatches = 0;
  int differ_f16 = 0, differ_bf16 = 0;
  uint32_t words[32] = {};
  for (uint32_t m = 0; m < kSignificands; ++m) {
    float x, rn;
    const uint32_t xb = 127u << 23 | m;
    std::memcpy(&x, &xb, 4);
    rn = 1.0f / x;
    uint32_t rn_bits;
    std::memcpy(&rn_bits, &rn, 4);
    const int64_t ulps = int64_t(unit[m]) - int64_t(rn_bits);
    if (ulps == 0) continue;
    ++differ_f32;
    // The other neighbour of the exact 1/x lies on the other side of it from rn.
    const double exact = 1.0 / double(x);
    const int64_t other = double(rn) > exact ? -1 : 1;
    unfaithful += ulps != other;
    if (m % (1u << 13) == 0) {
      const uint32_t k = m >> 13;  // the 10 fraction bits of fp16
      words[k / 32] |= 1u << (k % 32);
      ++differ_f16;
      differ_bf16 += k % 8 == 0;
    }
  }
  for (unsigned long long c : mismatches) exponent_mismatches += c;

  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  std::fprintf(stderr,
               "%s: of 2^23 float32 significands %llu get the other neighbour, %llu not faithful; "
               "of 1024 fp16 significands %d, of 128 bf16 %d; %llu exponent mismatches\n",
               prop.name, (unsigned long long)differ_f32, (unsigned long long)unfaithful,
               differ_f16, differ_bf16, (unsigned long long)exponent_mismatches);
  for (int e = 0; e < 255; ++e)
    if (mismatches[size_t(e)])
      std::fprintf(stderr, "  biased exponent %d: %llu mismatches\n", e, mismatches[size_t(e)]);

  // Subnormals (bf16 bits): a block of only subnormals and zero, and one whose scaled elements
  // underflow (2^-120 / 2^10, -2^-120 / 2^10) or are subnormal (-2^-130).
  const uint16_t blocks[2][4] = {{0x0008, 0x8010, 0x0000, 0x8000},
                                 {0x4480, 0x0380, 0x8380, 0x8008}};
  uint16_t* d_block;
  float* d_out;
  check(cudaMalloc(&d_block, 8), "cudaMalloc");
  check(cudaMalloc(&d_out, 5 * sizeof(float)), "cudaMalloc");
  for (const auto& block : blocks) {
    float out[5];
    check(cudaMemcpy(d_block, block, 8, cudaMemcpyHostToDevice), "copy");
    block_statements<<<1, 1>>>(d_block, 4, d_out);
    check(cudaMemcpy(out, d_out, sizeof(out), cudaMemcpyDeviceToHost), "copy");
    std::fprintf(stderr, "bf16 block {%04x %04x %04x %04x}: absmax %a, scaled", block[0], block[1],
                 block[2], block[3], out[0]);
    for (int j = 1; j < 5; ++j) std::fprintf(stderr, " %a", out[j]);
    std::fprintf(stderr, "\n");
  }

  std::printf(
      "// Generated by tools/bnb_rcp_table.cu on an %s (nvcc -O3 --use_fast_math): do not edit.\n"
      "// Bit k is set where, for absmax = (1 + k / 1024) * 2^e, bitsandbytes' `1.0f / absmax`\n"
      "// (rcp.approx.ftz.f32) is the float32 neighbour of the exact 1/absmax that correct "
      "rounding\n"
      "// does not give: %d of the 1024 fp16 significands (%d of bf16's 128). Over all 2^23\n"
      "// float32 significands it happens for %llu (%.1f%%).\n",
      prop.name, differ_f16, differ_bf16, (unsigned long long)differ_f32,
      100.0 * double(differ_f32) / kSignificands);
  std::printf("constexpr uint32_t kRoundsOtherWay[32] = {\n");
  for (int i = 0; i < 32; ++i)
    std::printf("%s0x%08x,%s", i % 6 == 0 ? "    " : " ", words[i],
                i % 6 == 5 || i == 31 ? "\n" : "");
  std::printf("};\n");
  return unfaithful || exponent_mismatches ? 1 : 0;
}
