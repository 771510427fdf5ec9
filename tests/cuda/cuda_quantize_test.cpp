// The CUDA quantizer (engine/cuda/quantizer.h, quantize.cu) against the CPU's quantize_4bit, byte
// for byte: packed codes, absmax (or the 8-bit absmax, nested absmax and offset of double
// quantization) and code tables, for nf4/fp4 x double quant x blocksizes 64..4096 x
// float32/float16/bfloat16 inputs, on shapes off the block grid and off the staging chunk, with
// values chosen to hit every special case; the bitsandbytes fixtures through the GPU; the inf/NaN
// errors; and a model loaded through either quantizer giving the very same logits.
// (The Vulkan quantizer's test, tests/vulkan/vulkan_quantize_test.cpp, checks the same things: the
// inputs and checks are shared, in tests/quantize_cases.h.)
#include <cuda_runtime_api.h>

#include <limits>
#include <utility>

#include "engine/cuda/quantizer.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/quantize_cases.h"

using namespace nibble;
using namespace nibble::test;

namespace {

void cuda_check(cudaError_t e) {
  REQUIRE_MESSAGE(e == cudaSuccess, cudaGetErrorString(e));
}

// The quantizer on its own stream. Small staging chunks by default, so that small weights cross
// several chunk boundaries; four copy threads whatever the machine.
struct GpuQuantizer {
  std::unique_ptr<Backend> device;  // holds the CUDA device set up
  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::Quantizer> quantizer;

  GpuQuantizer(std::unique_ptr<Backend> d, size_t chunk_bytes) : device(std::move(d)) {
    cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    quantizer = std::make_unique<cuda::Quantizer>(stream, chunk_bytes, 4);
  }
  ~GpuQuantizer() {
    cudaStreamSynchronize(stream);
    quantizer.reset();
    cudaStreamDestroy(stream);
  }

  // A QuantizeOnGpu: outputs in device memory poisoned first, read back, freed whatever happens.
  std::vector<Quantized> quantize_all(const std::vector<QuantizeCase>& cases) {
    struct DeviceOutputs {
      std::vector<char*> p;
      ~DeviceOutputs() {
        for (char* q : p) cudaFree(q);
      }
    } dst;
    std::vector<Quantized> got(cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      const QuantizeCase& c = cases[i];
      const cuda::QuantLayout at = cuda::quant_layout(c.w.rows * c.w.cols, c.spec.blocksize,
                                                      c.spec.double_quant, kNestedBlocksize);
      got[i].code_at = at.code_at;
      got[i].absmax_at = at.absmax_at;
      got[i].nested_absmax_at = at.nested_absmax_at;
      got[i].nested_code_at = at.nested_code_at;
      got[i].bytes.resize(at.bytes);
      void* p = nullptr;
      cuda_check(cudaMalloc(&p, at.bytes));
      dst.p.push_back(static_cast<char*>(p));
      cuda_check(cudaMemset(p, 0xa5, at.bytes));
    }
    for (size_t i = 0; i < cases.size(); ++i)
      quantizer->quantize(cases[i].w, cases[i].spec, dst.p[i],
                          [&got, i](float offset) { got[i].offset = offset; });
    quantizer->finish();
    for (size_t i = 0; i < cases.size(); ++i)
      cuda_check(
          cudaMemcpy(got[i].bytes.data(), dst.p[i], got[i].bytes.size(), cudaMemcpyDeviceToHost));
    return got;
  }
};

constexpr size_t kSmallChunk = size_t(64) << 10;  // 16384 float32 or 32768 16-bit values

QuantizeOnGpu quantizer_or_skip(size_t chunk_bytes = kSmallChunk) {
  auto device = cuda_or_skip();
  if (!device) return {};
  auto g = std::make_shared<GpuQuantizer>(std::move(device), chunk_bytes);
  return [g](const std::vector<QuantizeCase>& cases) { return g->quantize_all(cases); };
}

// Beyond the shared shapes: a weight of several staging chunks whose last chunk is partial.
constexpr Shape kSeveralChunks[] = {{70, 1001}};

}  // namespace

TEST_CASE("cuda quantize: float32 weights, every setting, byte-identical to the CPU") {
  if (auto gpu = quantizer_or_skip()) check_every_setting(gpu, DType::F32, kSeveralChunks);
}

TEST_CASE("cuda quantize: float16 weights, every setting, byte-identical to the CPU") {
  if (auto gpu = quantizer_or_skip()) check_every_setting(gpu, DType::F16, kSeveralChunks);
}

TEST_CASE("cuda quantize: bfloat16 weights, every setting, byte-identical to the CPU") {
  if (auto gpu = quantizer_or_skip()) check_every_setting(gpu, DType::BF16, kSeveralChunks);
}

TEST_CASE("cuda quantize: weights of several 16 MiB chunks, torch's multi-block mean") {
  const QuantSpec more_f32[] = {{QuantType::NF4, 4096, true}};
  // The backend's chunk size.
  if (auto gpu = quantizer_or_skip(size_t(16) << 20)) check_several_chunks(gpu, more_f32);
}

TEST_CASE("cuda quantize: a subnormal double-quant offset") {
  if (auto gpu = quantizer_or_skip()) check_subnormal_offset(gpu);
}

TEST_CASE("cuda quantize: the bitsandbytes fixtures through the GPU") {
  if (auto gpu = quantizer_or_skip()) check_bnb_fixtures(gpu);
}

TEST_CASE("cuda quantize: inf and NaN fail naming the tensor and element, as on the CPU") {
  // Past the first 64 KiB chunk: the element number counts the chunks before.
  if (auto gpu = quantizer_or_skip()) check_non_finite_like_cpu(gpu, 400, 170, 40001, 62700);
}

TEST_CASE("cuda quantize: a model quantized on the GPU gives the host-quantized model's logits") {
  for (QuantSpec spec : {QuantSpec{QuantType::NF4, 64, false}, QuantSpec{QuantType::NF4, 64, true},
                         QuantSpec{QuantType::FP4, 128, true}}) {
    CAPTURE(spec.double_quant);
    CAPTURE(spec.blocksize);
    auto host_side = cuda_or_skip();
    if (!host_side) return;
    auto gpu_side = make_cuda_backend(0);
    check_same_logits(*host_side, *gpu_side, spec, true);
  }
}

TEST_CASE("cuda quantize: the backend reports a bad weight when its upload completes") {
  if (auto gpu = cuda_or_skip()) check_upload_reports_non_finite(*gpu);
}
