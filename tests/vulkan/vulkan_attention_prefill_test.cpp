// Prompt attention (rows x heads >= 512: shaders/attention_prefill.comp where the head size
// allows, attention.comp otherwise) against the CPU reference on fresh random inputs: rows off
// the 64-query block, a cached prefix, GQA and MQA, a sliding window, head sizes 8..256. The
// cache holds float16 values on both sides (inputs pre-rounded), the output is poisoned with NaN
// first. Tolerance (relative L2 error): 1e-5, float32 arithmetic in a different order.
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

struct Case {
  int heads, kv_heads, head_dim, pos0, rows, window;
};

std::vector<float> prompt_attention(Backend& b, const Case& c, const std::vector<float>& q,
                                    const std::vector<float>& k, const std::vector<float>& v) {
  const int64_t q_cols = int64_t(c.heads) * c.head_dim, kv_cols = int64_t(c.kv_heads) * c.head_dim;
  const int total = c.pos0 + c.rows;
  const Tensor kc = b.alloc_kv(total + 5, kv_cols), vc = b.alloc_kv(total + 5, kv_cols);
  const Tensor kt = b.alloc(DType::F32, total, kv_cols, Usage::Activations);
  const Tensor vt = b.alloc(DType::F32, total, kv_cols, Usage::Activations);
  const Tensor qt = b.alloc(DType::F32, c.rows, q_cols, Usage::Activations);
  const Tensor out = b.alloc(DType::F32, c.rows, q_cols, Usage::Activations);
  b.write(kt, k.data());
  b.write(vt, v.data());
  b.write(qt, q.data());
  poison(b, out);
  if (c.pos0 > 0) {  // the cached prefix, as an earlier step stored it
    b.begin_step({0, c.pos0});
    b.kv_store(kc, vc, kt.slice_rows(0, c.pos0), vt.slice_rows(0, c.pos0));
    b.end_step();
  }
  b.begin_step({c.pos0, c.rows});
  b.kv_store(kc, vc, kt.slice_rows(c.pos0, c.rows), vt.slice_rows(c.pos0, c.rows));
  b.attention(out, qt, kc, vc, {c.heads, c.kv_heads, c.head_dim, c.window});
  b.end_step();
  return read_f32(b, out);
}

}  // namespace

TEST_CASE("vulkan: prompt attention, many queries per workgroup") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(23);
  const Case cases[] = {
      {4, 4, 128, 0, 130, 0},   // MHA, rows off the 64-query block
      {8, 2, 64, 37, 100, 0},   // GQA after a cached prefix
      {4, 1, 64, 0, 200, 48},   // MQA with a sliding window
      {8, 4, 32, 300, 70, 64},  // a window inside a long prefix
      {32, 32, 8, 5, 16, 0},    // the smallest head
      {2, 2, 256, 0, 300, 0},   // a head too large for the block kernel: attention.comp
      {64, 8, 12, 0, 9, 0},     // head_dim not a multiple of 8: attention.comp
  };
  for (const Case& c : cases) {
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    CAPTURE(c.head_dim);
    CAPTURE(c.pos0);
    CAPTURE(c.rows);
    CAPTURE(c.window);
    const int total = c.pos0 + c.rows;
    const auto q = random_floats(rng, size_t(c.rows) * c.heads * c.head_dim);
    const auto k = f16_rounded(random_floats(rng, size_t(total) * c.kv_heads * c.head_dim));
    const auto v = f16_rounded(random_floats(rng, size_t(total) * c.kv_heads * c.head_dim));
    const auto want = prompt_attention(p.cpu, c, q, k, v);
    const auto got = prompt_attention(*p.gpu, c, q, k, v);
    CHECK(checked_error(got, want) < 1e-5);
  }
}
