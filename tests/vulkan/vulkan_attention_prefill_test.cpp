// Prompt attention (rows x heads >= 512: shaders/attention_prefill.comp where the head size
// allows, attention.comp otherwise) against the CPU reference on fresh random inputs: rows off
// the 32-query block, a cached prefix, GQA and MQA, a sliding window, head sizes 8..256. The
// cache holds float16 values on both sides (inputs pre-rounded), the output is poisoned with NaN
// first. Tolerance (relative L2 error): 1e-5, float32 arithmetic in a different order.
// With a 16-bit compute dtype, devices with cooperative matrices take attention_coopmat.comp,
// which rounds q (scaled) and the probabilities to float16: 3e-3 (each rounding is at most
// 2^-11 relative; the CPU keeps float32).
#include <span>

#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

// Every case against the CPU with the model's compute dtype `compute`, q scaled by `q_scale`.
void sweep(std::span<const AttentionCase> cases, ComputeDType compute, float q_scale, double tol,
           uint32_t seed) {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(seed);
  for (AttentionCase c : cases) {
    c.compute = compute;
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    CAPTURE(c.head_dim);
    CAPTURE(c.pos0);
    CAPTURE(c.rows);
    CAPTURE(c.window);
    const int total = c.pos0 + c.rows;
    auto q = random_floats(rng, size_t(c.rows) * c.heads * c.head_dim);
    for (float& x : q) x *= q_scale;
    const auto k = f16_rounded(random_floats(rng, size_t(total) * c.kv_heads * c.head_dim));
    const auto v = f16_rounded(random_floats(rng, size_t(total) * c.kv_heads * c.head_dim));
    const auto want = attention_on(p.cpu, c, q, k, v).out;
    const auto got = attention_on(*p.gpu, c, q, k, v).out;
    CHECK(checked_error(got, want) < tol);
  }
}

}  // namespace

TEST_CASE("vulkan: prompt attention, many queries per workgroup") {
  const AttentionCase cases[] = {
      {4, 4, 128, 0, 130, 0},    // MHA, rows off the 32-query block
      {8, 2, 64, 37, 100, 0},    // GQA after a cached prefix
      {4, 1, 64, 0, 200, 48},    // MQA with a sliding window
      {8, 4, 32, 300, 70, 64},   // a window inside a long prefix
      {32, 32, 8, 5, 16, 0},     // the smallest head
      {4, 2, 80, 3, 130, 0},     // 10 chunks of 8 dimensions: 3 or 2 per invocation of a quad
      {2, 2, 256, 0, 300, 0},    // a head too large for the block kernel: attention.comp
      {64, 8, 12, 0, 9, 0},      // head_dim not a multiple of 8: attention.comp
      {4, 2, 128, 1000, 70, 0},  // a long prefix: 34 tiles, each loaded while the one before runs
  };
  sweep(cases, ComputeDType::F32, 1.0f, 1e-5, 23);
}

TEST_CASE(
    "vulkan: prompt attention for 16-bit compute (on the matrix units where the device has them)") {
  const AttentionCase cases[] = {
      {4, 4, 128, 0, 130, 0},    // MHA (8 subgroups), rows off the 128-query block
      {8, 2, 64, 37, 100, 0},    // GQA after a cached prefix (tiles start off the prefix)
      {4, 1, 64, 0, 200, 48},    // MQA with a sliding window
      {8, 4, 32, 300, 70, 64},   // a window inside a long prefix
      {4, 2, 80, 3, 130, 0},     // 5 fragments along the head
      {16, 16, 48, 10, 40, 0},   // 3 fragments, a block of fewer rows than one subgroup's
      {2, 1, 16, 0, 300, 0},     // the smallest head for the fragments
      {8, 8, 8, 0, 90, 0},       // a head of 8: attention_prefill.comp
      {4, 2, 128, 1000, 70, 0},  // a long prefix: 34 tiles, each loaded while the one before runs
  };
  // q larger than the keys, so that the softmax is peaked and its running max moves.
  sweep(cases, ComputeDType::BF16, 4.0f, 3e-3, 29);
}
