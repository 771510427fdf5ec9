// The GPU quantizer (engine/vulkan/vk_quantizer.h, shaders/quantize*.comp) against the CPU's
// quantize_4bit, byte for byte: packed codes, absmax (or the 8-bit absmax, nested absmax and
// offset of double quantization) and code tables, for nf4/fp4 x double quant x blocksizes
// 64..4096 x float32/float16/bfloat16 inputs, on shapes off the block grid and values chosen to
// hit every special case; the bitsandbytes fixtures through the GPU; the inf/NaN errors; and a
// model loaded through either quantizer giving the very same logits.
// (The inputs and checks are shared with the CUDA quantizer's test: tests/quantize_cases.h.)
#include <cstring>
#include <limits>

#include "engine/vulkan/vk_quantizer.h"
#include "tests/quantize_cases.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

// The quantizer on its own device objects, its outputs in host-visible memory to read back.
// Four copy threads, whatever the machine, so that CI's two cores run the parallel copy too.
struct GpuQuantizer {
  vk::Context ctx{-1};
  vk::Memory memory{ctx};
  vk::Pipelines pipelines{ctx.device, false};
  vk::Quantizer quantizer{ctx, memory, pipelines, 4};

  // A QuantizeOnGpu: outputs in host-visible memory poisoned first.
  std::vector<Quantized> quantize_all(const std::vector<QuantizeCase>& cases) {
    std::vector<vk::Allocation> dst(cases.size());
    std::vector<Quantized> got(cases.size());
    for (size_t i = 0; i < cases.size(); ++i) {
      const QuantizeCase& c = cases[i];
      const vk::QuantLayout at = vk::quant_layout(c.w.rows * c.w.cols, c.spec);
      got[i].code_at = at.code_at;
      got[i].absmax_at = at.absmax_at;
      got[i].nested_absmax_at = at.nested_at;
      got[i].nested_code_at = at.code_at + 64;
      got[i].bytes.resize(at.bytes);
      dst[i] = memory.host(at.bytes);
      std::memset(dst[i].mapped, 0xa5, at.bytes);
      quantizer.quantize(c.w, c.spec, dst[i], [&got, i](float offset) { got[i].offset = offset; });
    }
    quantizer.finish();
    for (size_t i = 0; i < cases.size(); ++i)
      std::memcpy(got[i].bytes.data(), dst[i].mapped, got[i].bytes.size());
    return got;
  }
};

QuantizeOnGpu quantizer_or_skip() {
  if (!vulkan_or_skip()) return {};
  auto g = std::make_shared<GpuQuantizer>();
  return [g](const std::vector<QuantizeCase>& cases) { return g->quantize_all(cases); };
}

}  // namespace

TEST_CASE("vulkan quantize: float32 weights, every setting, byte-identical to the CPU") {
  if (auto gpu = quantizer_or_skip()) check_every_setting(gpu, DType::F32);
}

TEST_CASE("vulkan quantize: float16 weights, every setting, byte-identical to the CPU") {
  if (auto gpu = quantizer_or_skip()) check_every_setting(gpu, DType::F16);
}

TEST_CASE("vulkan quantize: bfloat16 weights, every setting, byte-identical to the CPU") {
  if (auto gpu = quantizer_or_skip()) check_every_setting(gpu, DType::BF16);
}

TEST_CASE("vulkan quantize: weights of several chunks, torch's multi-block mean") {
  if (auto gpu = quantizer_or_skip()) check_several_chunks(gpu);
}

TEST_CASE("vulkan quantize: a subnormal double-quant offset") {
  if (auto gpu = quantizer_or_skip()) check_subnormal_offset(gpu);
}

TEST_CASE("vulkan quantize: the bitsandbytes fixtures through the GPU") {
  if (auto gpu = quantizer_or_skip()) check_bnb_fixtures(gpu);
}

TEST_CASE("vulkan quantize: inf and NaN fail naming the tensor and element, as on the CPU") {
  if (auto gpu = quantizer_or_skip()) check_non_finite_like_cpu(gpu, 40, 70, 2001, 2700);
}

TEST_CASE("vulkan quantize: a model quantized on the GPU gives the host-quantized model's logits") {
  for (bool dq : {false, true}) {
    CAPTURE(dq);
    auto host_side = vulkan_or_skip();
    if (!host_side) return;
    auto gpu_side = make_vulkan_backend(-1);
    check_same_logits(*host_side, *gpu_side, {QuantType::NF4, 64, dq}, false);
  }
}

TEST_CASE("vulkan quantize: the backend reports a bad weight when its upload completes") {
  if (auto gpu = vulkan_or_skip()) check_upload_reports_non_finite(*gpu);
}
