// The prompt matmul (x.rows > 1) against the CPU reference backend on fresh random inputs, over a
// sweep of rows 2..600 and n, k off the 128x128x64 and 64x64x16 tile grids (k = blocksize among
// them), for 4-bit weights with and without double quantization and every compute dtype, on
// whichever path the device takes: the cooperative-matrix GEMM (shaders/matmul_coopmat.comp)
// where the device has it, the tiled float32 shader (shaders/matmul.comp) elsewhere. Outputs are
// poisoned with NaN first.
//
// Tolerance (relative L2 error): 1e-5 on both paths. Both multiply exactly the operands the CPU
// does (x and the dequantized weight rounded to the compute dtype; on the matrix units those are
// float16 values, or bfloat16 values that float16 holds exactly in the ranges of these inputs)
// with float32 accumulation, so only the summation order differs.
#include <cstdlib>

#include "engine/vulkan/gemm_split.h"
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

constexpr double kTol = 1e-5;

// Which path the backend's device takes for 4-bit weights with float16/bfloat16 compute.
std::string prompt_path() {
  return vk::Context(-1).info.coopmat_f16 ? "cooperative matrix" : "tiled float32";
}

// (rows of x, rows of w, k): k = 64 is the blocksize; k % 32 != 0 takes the scalar loads.
using Shapes = std::vector<std::array<int64_t, 3>>;
const Shapes kShapes = {{2, 5, 64},      {17, 129, 192}, {33, 65, 100},  {130, 200, 64},
                        {128, 128, 128}, {129, 257, 96}, {40, 9, 30},    {600, 40, 96},
                        {5, 130, 4096},  {255, 70, 160}, {300, 520, 320}};

void sweep(Pair& p, const WeightSpec& spec, uint32_t seed, const Shapes& shapes = kShapes) {
  std::mt19937 rng(seed);
  double worst = 0;
  for (const auto& s : shapes) {
    CAPTURE(s[0]);
    CAPTURE(s[1]);
    CAPTURE(s[2]);
    const HostWeight w = random_weight(rng, "w", s[1], s[2], spec);
    const std::vector<float> x = random_floats(rng, size_t(s[0] * s[2]));
    const auto want = matmul_on(p.cpu, w, x, s[0]);
    const auto got = matmul_on(*p.gpu, w, x, s[0]);
    const double err = checked_error(got, want);
    CHECK(err < kTol);
    worst = std::max(worst, err);
  }
  const std::string what = std::string(dtype_name(spec.dtype)) +
                           (spec.double_quant ? " + dq, " : ", ") +
                           std::string(compute_dtype_name(spec.compute)) + " compute, blocksize " +
                           std::to_string(spec.blocksize);
  MESSAGE(what << ": worst error " << worst);
}

// NF4 in every compute dtype, then FP4 with another blocksize: float32 absmax or double-quantized.
void sweep_4bit(bool dq) {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  MESSAGE("prompt matmul path: " << prompt_path());
  Pair p(std::move(gpu));
  uint32_t seed = dq ? 7 : 17;
  for (ComputeDType c : {ComputeDType::F16, ComputeDType::BF16, ComputeDType::F32}) {
    CAPTURE(compute_dtype_name(c));
    sweep(p, {.dtype = DType::NF4, .double_quant = dq, .compute = c}, seed++);
  }
  sweep(p,
        {.dtype = DType::FP4,
         .double_quant = dq,
         .compute = dq ? ComputeDType::BF16 : ComputeDType::F16,
         .blocksize = 128},
        seed);
}

// One step of prompt matmuls on `b` as a layer issues them: three products of one x (as q, k
// and v: its operands converted once, the weight scratch used in turn), x overwritten inside the
// step and multiplied again, then a product of that output (as the o projection). Outputs are
// poisoned first.
std::vector<std::vector<float>> layer_matmuls_on(Backend& b, const std::vector<HostWeight>& hw,
                                                 const std::vector<float>& x,
                                                 const std::vector<float>& x_again, int64_t rows) {
  std::vector<Tensor> w, out;
  for (const HostWeight& h : hw) {
    w.push_back(b.upload_weight(h));
    out.push_back(b.alloc(DType::F32, rows, h.rows, Usage::Activations));
    poison(b, out.back());
  }
  out.push_back(b.alloc(DType::F32, rows, hw[0].rows, Usage::Activations));
  poison(b, out.back());
  const Tensor xt = b.alloc(DType::F32, rows, hw[0].cols, Usage::Activations);
  b.write(xt, x.data());
  b.begin_step({0, int(rows)});
  for (int i = 0; i < 3; ++i) b.matmul(out[size_t(i)], xt, w[size_t(i)]);
  b.write(xt, x_again.data());
  b.matmul(out[4], xt, w[0]);
  b.matmul(out[3], out[4], w[3]);
  b.end_step();
  std::vector<std::vector<float>> got;
  for (Tensor t : out) got.push_back(read_f32(b, t));
  return got;
}

}  // namespace

TEST_CASE("vulkan: prompt matmuls of one step reuse x's operands until x is written") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  MESSAGE("prompt matmul path: " << prompt_path());
  Pair p(std::move(gpu));
  std::mt19937 rng(31);
  const int64_t rows = 70, d = 192, kv = 64;
  for (ComputeDType c : {ComputeDType::F16, ComputeDType::BF16}) {
    CAPTURE(compute_dtype_name(c));
    const WeightSpec spec{.dtype = DType::NF4, .double_quant = true, .compute = c};
    const std::vector<HostWeight> w = {
        random_weight(rng, "q", d, d, spec), random_weight(rng, "k", kv, d, spec),
        random_weight(rng, "v", kv, d, spec), random_weight(rng, "o", 96, d, spec)};
    const auto x = random_floats(rng, size_t(rows * d));
    const auto x_again = random_floats(rng, size_t(rows * d));
    const auto want = layer_matmuls_on(p.cpu, w, x, x_again, rows);
    const auto got = layer_matmuls_on(*p.gpu, w, x, x_again, rows);
    for (size_t i = 0; i < want.size(); ++i) {
      CAPTURE(i);
      // The last product's x is an output of each backend's own (its float32 values may differ
      // in the last bit), so an operand rounded to the 16-bit compute dtype may differ by one ulp:
      // 1e-3, as for the fused decode products (H100: 2.1e-5 with bf16).
      CHECK(checked_error(got[i], want[i]) < (i == 3 ? 1e-3 : kTol));
    }
  }
}

TEST_CASE("vulkan: nibble devices names each device's prompt matmul path") {
  if (!vulkan_or_skip()) return;
  for (const vk::DeviceInfo& d : vk::list_devices()) {
    CAPTURE(d.name);
    const std::string text = d.describe();
    CHECK(text.find(d.coopmat_f16 ? "prefill matmul: cooperative matrix"
                                  : "prefill matmul: tiled float32") != std::string::npos);
    if (d.coopmat_f16) CHECK(d.cooperative_matrix);
  }
}

TEST_CASE("vulkan: prompt matmul of 4-bit weights on the device's path") {
  sweep_4bit(false);
}

TEST_CASE("vulkan: prompt matmul of double-quantized 4-bit weights on the device's path") {
  sweep_4bit(true);
}

TEST_CASE("vulkan: prompt matmul of 16/32-bit weights") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    CAPTURE(dtype_name(t));
    sweep(p, {.dtype = t}, 100 + uint32_t(t));
  }
}

TEST_CASE("vulkan: the prompt GEMM runs the tiles past its whole waves in k parts") {
  using vk::plan_gemm_split;
  auto is = [](const vk::GemmSplit& g, uint32_t whole_columns, uint32_t parts, uint32_t slices) {
    return g.whole_columns == whole_columns && g.parts == parts && g.part_slices == slices;
  };
  // On the H100's 132 multiprocessors, 512-token prompts of the 7B shape: the 11008-wide products
  // (4 x 86 tiles of 64 k slices) run 66 column tiles whole (2 waves) and 20 in 3 parts of 22
  // slices; the 4096-wide ones (128 tiles) and the down projection run whole.
  CHECK(is(plan_gemm_split(4, 86, 64, 132), 66, 3, 22));
  CHECK(plan_gemm_split(4, 32, 64, 132).parts == 1);
  CHECK(plan_gemm_split(4, 32, 172, 132).parts == 1);
  // TinyLlama's k and v projections (256 x 2048: 8 tiles) in 8 parts of 4 slices.
  CHECK(is(plan_gemm_split(4, 2, 32, 132), 0, 8, 4));
  // Nothing split where the device's size is unknown or k is short.
  CHECK(plan_gemm_split(4, 2, 32, 0).parts == 1);
  CHECK(plan_gemm_split(1, 1, 5, 132).parts == 1);
  // Over random sizes: the whole columns fill whole waves, the parts cover k exactly once.
  std::mt19937 rng(5);
  for (int i = 0; i < 2000; ++i) {
    const uint32_t rows = 1 + rng() % 8, cols = 1 + rng() % 200, slices = 1 + rng() % 200,
                   wave = 1 + rng() % 200;
    CAPTURE(rows);
    CAPTURE(cols);
    CAPTURE(slices);
    CAPTURE(wave);
    const vk::GemmSplit g = plan_gemm_split(rows, cols, slices, wave);
    REQUIRE(g.parts >= 1);
    if (g.parts == 1) {
      CHECK(g.whole_columns == cols);
    } else {
      const uint64_t waves = uint64_t(rows) * cols / wave * wave;
      CHECK(uint64_t(g.whole_columns) * rows <= waves);
      CHECK(uint64_t(g.whole_columns + 1) * rows > waves);
      CHECK(g.part_slices >= 4);
      CHECK(uint64_t(g.parts - 1) * g.part_slices < slices);
      CHECK(uint64_t(g.parts) * g.part_slices >= slices);
    }
  }
}

// Shapes whose tiles leave a last wave part empty on GPUs of 60 to 140 multiprocessors, so that
// their last column tiles run in k parts (the sweep's {5, 130, 4096} is another).
TEST_CASE("vulkan: prompt matmul with k parts on the device's path") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  const vk::DeviceInfo info = vk::Context(-1).info;
  const Shapes shapes = {{600, 1000, 1024}, {260, 8200, 512}, {130, 2100, 4096}};
  int split = 0;
  for (const auto& s : shapes)
    split += vk::plan_gemm_split(uint32_t((s[0] + 127) / 128), uint32_t((s[1] + 127) / 128),
                                 uint32_t((s[2] + 63) / 64), info.multiprocessors)
                 .parts > 1;
  MESSAGE(prompt_path() << ", " << info.multiprocessors << " multiprocessors: " << split << " of "
                        << shapes.size() << " shapes in k parts");
  if (info.coopmat_f16 && info.multiprocessors >= 60 && info.multiprocessors <= 140)
    CHECK(split > 0);
  if (!info.coopmat_f16 || split == 0) {
    MESSAGE("SKIPPED: this device runs no k parts (the plan is tested above)");
    return;
  }
  Pair p(std::move(gpu));
  uint32_t seed = 41;
  for (ComputeDType c : {ComputeDType::F16, ComputeDType::BF16}) {
    CAPTURE(compute_dtype_name(c));
    sweep(p, {.dtype = DType::NF4, .double_quant = true, .compute = c}, seed++, shapes);
  }
}

// On a device with cooperative matrices the test above ran them; this one runs the tiled float32
// fallback there too. Elsewhere the test above already ran the fallback.
TEST_CASE("vulkan: prompt matmul on the tiled fallback of a cooperative-matrix device") {
  if (!vulkan_or_skip()) return;
  if (prompt_path() != "cooperative matrix") {
    MESSAGE("SKIPPED: the device has no usable cooperative matrix; the fallback ran above");
    return;
  }
  setenv("NIBBLE_VK_NO_COOPMAT", "1", 1);
  sweep_4bit(false);
  sweep_4bit(true);
  unsetenv("NIBBLE_VK_NO_COOPMAT");
}
