// Every Vulkan op against the CPU reference backend on fresh random inputs, over shape sweeps
// that include sizes off the workgroup and block grid, single rows and columns and K = blocksize.
// Outputs are poisoned with NaN first. Tolerances (relative L2 error):
//   - ops whose operands are identical on both sides (the 4-bit/16-bit weights are decoded and
//     rounded bit-exactly like the CPU does): 1e-5, which only allows float32 summation order and
//     the device's exp/sqrt precision;
//   - nothing here compares different operand precisions: the KV cache inputs are pre-rounded to
//     float16 so that the GPU's float16 cache holds the CPU's float32 values exactly.
#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

constexpr double kTol = 1e-5;

void matmul_sweep(const WeightSpec& spec) {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(1234);
  // (rows of x, rows of w, K): decode (1 row: matvec, 16-byte loads when K allows) and prompt
  // (tiled) paths. K = 4096 and 8224 (257 16-byte chunks of 4-bit values) give the 4-bit matvec
  // its wide-row form (128 invocations, the nested code in shared memory), the latter with
  // several chunks per invocation and a last one that only one invocation takes.
  const int64_t shapes[][3] = {{1, 1, 64},  {1, 37, 64},    {1, 33, 200},  {2, 5, 130},
                               {3, 70, 96}, {5, 1, 64},     {33, 65, 100}, {1, 300, 256},
                               {40, 9, 7},  {17, 129, 192}, {1, 70, 96},   {1, 9, 4096},
                               {1, 7, 8224}};
  for (const auto& s : shapes) {
    CAPTURE(s[0]);
    CAPTURE(s[1]);
    CAPTURE(s[2]);
    const bool packed = spec.dtype == DType::NF4 || spec.dtype == DType::FP4;
    if (packed && (s[1] * s[2]) % 2) continue;  // packed weights hold whole bytes
    const HostWeight w = random_weight(rng, "w", s[1], s[2], spec);
    const std::vector<float> x = random_floats(rng, size_t(s[0] * s[2]));
    const auto want = matmul_on(p.cpu, w, x, s[0]);
    const auto got = matmul_on(*p.gpu, w, x, s[0]);
    CHECK(checked_error(got, want) < kTol);
  }
}

}  // namespace

TEST_CASE("vulkan: matmul with float32 / float16 / bfloat16 weights") {
  for (DType t : {DType::F32, DType::F16, DType::BF16}) {
    CAPTURE(dtype_name(t));
    matmul_sweep({.dtype = t});
  }
}

TEST_CASE("vulkan: decode matmul with the shared-memory reduction (no subgroup arithmetic)") {
  setenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC", "1", 1);
  for (DType t : {DType::F32, DType::BF16, DType::NF4}) {
    CAPTURE(dtype_name(t));
    matmul_sweep({.dtype = t, .double_quant = true, .compute = ComputeDType::F16});
  }
  unsetenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC");
}

TEST_CASE("vulkan: NF4 matmul, plain and double-quantized absmax, every compute dtype") {
  for (bool dq : {false, true})
    for (ComputeDType c : {ComputeDType::F32, ComputeDType::F16, ComputeDType::BF16}) {
      CAPTURE(dq);
      CAPTURE(compute_dtype_name(c));
      matmul_sweep({.dtype = DType::NF4, .double_quant = dq, .compute = c});
    }
}

TEST_CASE("vulkan: FP4 matmul, plain and double-quantized absmax, every compute dtype") {
  for (bool dq : {false, true})
    for (ComputeDType c : {ComputeDType::F32, ComputeDType::F16, ComputeDType::BF16}) {
      CAPTURE(dq);
      CAPTURE(compute_dtype_name(c));
      matmul_sweep({.dtype = DType::FP4, .double_quant = dq, .compute = c, .blocksize = 128});
    }
}

TEST_CASE("vulkan: a grid of more than 65535 workgroups is folded into two dimensions") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  // Elementwise ops run 256 elements per workgroup. The sum is checked exactly on the host; the
  // inputs come from a cheap generator because there are 2 x 16.7M of them.
  const int64_t n = 65536 * 256 + 3;
  std::minstd_rand rng(5);
  std::vector<float> a(static_cast<size_t>(n)), c(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    a[size_t(i)] = float(rng() % 20001) - 10000.0f;
    c[size_t(i)] = float(rng() % 20001) * 0.5f;
  }
  const Tensor at = gpu->alloc(DType::F32, 1, n, Usage::Activations);
  const Tensor ct = gpu->alloc(DType::F32, 1, n, Usage::Activations);
  gpu->write(at, a.data());
  gpu->write(ct, c.data());
  gpu->begin_step({0, 1});
  gpu->add(at, ct);
  gpu->end_step();
  const std::vector<float> got = read_f32(*gpu, at);
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) wrong += got[size_t(i)] != a[size_t(i)] + c[size_t(i)];
  CHECK(wrong == 0);
}

TEST_CASE("vulkan: embed gathers rows of 32- and 16-bit tables") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(7);
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (int64_t cols : {1, 7, 64, 300}) {
      CAPTURE(dtype_name(t));
      CAPTURE(cols);
      const int64_t vocab = 50;
      const HostWeight table = random_weight(rng, "embed", vocab, cols, {.dtype = t});
      const std::vector<int32_t> ids{0, 49, 3, 3, 17};
      Io io;
      for (int i = 0; i < 2; ++i) {
        Backend& b = *p.both[i];
        const Tensor tt = b.upload_weight(table);
        const Tensor it = b.alloc(DType::I32, int64_t(ids.size()), 1, Usage::Activations);
        const Tensor out = b.alloc(DType::F32, int64_t(ids.size()), cols, Usage::Activations);
        poison(b, out);
        b.begin_step({0, int(ids.size())});
        b.write(it, ids.data());  // inside the step, as the model does
        b.embed(out, tt, it);
        b.end_step();
        io.out[i] = read_f32(b, out);
      }
      CHECK(checked_error(io.out[1], io.out[0]) == 0.0);  // a gather is exact
    }
}

TEST_CASE("vulkan: rms_norm, including a view that starts mid-buffer and a decode row") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(11);
  for (DType t : {DType::F32, DType::F16, DType::BF16})
    for (int64_t cols : {1, 7, 64, 300, 1000, 1025, 4096}) {  // one row: 512-value slices
      CAPTURE(dtype_name(t));
      CAPTURE(cols);
      const HostWeight g = random_weight(rng, "norm", 1, cols, {.dtype = t}, 1.0f);
      const std::vector<float> x = random_floats(rng, size_t(5 * cols), 3.0f);
      Io io;
      for (int i = 0; i < 2; ++i) {
        Backend& b = *p.both[i];
        const Tensor gt = b.upload_weight(g);
        const Tensor xt = b.alloc(DType::F32, 5, cols, Usage::Activations);
        const Tensor out = b.alloc(DType::F32, 5, cols, Usage::Activations);
        b.write(xt, x.data());
        poison(b, out);
        b.begin_step({0, 5});
        b.rms_norm(out.slice_rows(0, 2), xt.slice_rows(0, 2), gt, 1e-5f);
        b.rms_norm(out.slice_rows(2, 2), xt.slice_rows(2, 2), gt, 1e-6f);
        b.rms_norm(out.slice_rows(4, 1), xt.slice_rows(4, 1), gt, 1e-6f);
        b.end_step();
        io.out[i] = read_f32(b, out);
      }
      CHECK(checked_error(io.out[1], io.out[0]) < kTol);
    }
}

TEST_CASE("vulkan: rope at small and large positions") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(13);
  struct Case {
    int heads, head_dim, rows, pos0;
  };
  for (const Case c : {Case{1, 2, 1, 0}, Case{4, 8, 3, 5}, Case{2, 64, 7, 0}, Case{3, 128, 1, 4000},
                       Case{8, 64, 2, 123456}}) {
    CAPTURE(c.head_dim);
    CAPTURE(c.pos0);
    const std::vector<float> inv = rope_inv_freq(c.head_dim);
    const int64_t cols = int64_t(c.heads) * c.head_dim + 6;  // rows wider than the heads
    const std::vector<float> x = random_floats(rng, size_t(c.rows * cols));
    Io io;
    for (int i = 0; i < 2; ++i) {
      Backend& b = *p.both[i];
      const Tensor it = b.alloc(DType::F32, 1, int64_t(inv.size()), Usage::Weights);
      const Tensor xt = b.alloc(DType::F32, c.rows, cols, Usage::Activations);
      b.write(it, inv.data());
      b.write(xt, x.data());
      b.begin_step({c.pos0, c.rows});
      b.rope(xt, c.heads, c.head_dim, it);
      b.end_step();
      io.out[i] = read_f32(b, xt);
    }
    CHECK(checked_error(io.out[1], io.out[0]) < kTol);
  }
}

namespace {

// kv_store and attention against the CPU over the cases below, on a backend made now (so that
// the caller's environment chooses its shaders).
void attention_sweep() {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(17);
  const AttentionCase cases[] = {
      {1, 1, 2, 0, 1, 0},      // the very first token
      {4, 4, 8, 0, 7, 0},      // prefill, MHA
      {4, 2, 16, 5, 6, 0},     // prefill after a cached prefix, GQA
      {8, 1, 64, 300, 1, 0},   // decode over a long context: split over it
      {4, 2, 32, 600, 2, 0},   // two rows, many splits
      {2, 2, 256, 40, 3, 0},   // the largest head
      {4, 2, 16, 20, 5, 4},    // sliding window
      {8, 2, 8, 0, 64, 0},     // rows x heads large enough to skip the split
      {4, 1, 8, 130, 1, 50},   // decode with a window inside a long context
      {32, 8, 128, 70, 1, 0},  // decode, Llama-3 heads: 16 invocations per value row
      {4, 2, 96, 201, 1, 0},   // 12 invocations per value row: 10 row groups, 8 idle
      {4, 2, 64, 2500, 1, 0},  // 20 tiles: 10 splits of two
  };
  for (const AttentionCase& c : cases) {
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    CAPTURE(c.head_dim);
    CAPTURE(c.pos0);
    CAPTURE(c.rows);
    CAPTURE(c.window);
    const int64_t q_cols = int64_t(c.heads) * c.head_dim,
                  kv_cols = int64_t(c.kv_heads) * c.head_dim;
    const int total = c.pos0 + c.rows;
    const auto q = random_floats(rng, size_t(c.rows * q_cols));
    const auto k = f16_rounded(random_floats(rng, size_t(total * kv_cols)));
    const auto v = f16_rounded(random_floats(rng, size_t(total * kv_cols)));
    Io io, caches;
    for (int i = 0; i < 2; ++i) {
      const AttentionResult r = attention_on(*p.both[i], c, q, k, v);
      io.out[i] = r.out;
      caches.out[i] = r.v_cache;
    }
    CHECK(checked_error(caches.out[1], caches.out[0]) == 0.0);
    CHECK(checked_error(io.out[1], io.out[0]) < kTol);
  }
}

}  // namespace

TEST_CASE("vulkan: kv_store and attention (GQA, causal, sliding window, prefill and decode)") {
  attention_sweep();
}

// The split attention's softmax reduced through shared memory (attention.comp) rather than by
// subgroup arithmetic (attention_subgroup.comp, which the devices here take otherwise).
TEST_CASE("vulkan: kv_store and attention with the shared-memory reduction") {
  setenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC", "1", 1);
  attention_sweep();
  unsetenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC");
}

TEST_CASE("vulkan: swiglu and add") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(19);
  for (int64_t n : {1, 255, 257, 5000}) {
    CAPTURE(n);
    const auto a = random_floats(rng, size_t(n), 3.0f), c = random_floats(rng, size_t(n));
    Io swiglu, sum;
    for (int i = 0; i < 2; ++i) {
      Backend& b = *p.both[i];
      const Tensor at = b.alloc(DType::F32, 1, n, Usage::Activations);
      const Tensor ct = b.alloc(DType::F32, 1, n, Usage::Activations);
      const Tensor out = b.alloc(DType::F32, 1, n, Usage::Activations);
      b.write(at, a.data());
      b.write(ct, c.data());
      poison(b, out);
      b.begin_step({0, 1});
      b.swiglu(out, at, ct);
      b.add(at, ct);
      b.end_step();
      swiglu.out[i] = read_f32(b, out);
      sum.out[i] = read_f32(b, at);
    }
    CHECK(checked_error(swiglu.out[1], swiglu.out[0]) < kTol);
    CHECK(checked_error(sum.out[1], sum.out[0]) == 0.0);
  }
}

TEST_CASE("vulkan: argmax picks the first of equal maxima") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(23);
  for (int64_t cols : {1, 5, 1000, 4099, 32000}) {
    CAPTURE(cols);
    const int64_t rows = 3;
    auto l = random_floats(rng, size_t(rows * cols));
    if (cols > 100) {  // a tie in row 1: the earlier index wins
      l[size_t(cols + 700)] = 50.0f;
      l[size_t(cols + 90)] = 50.0f;
    }
    if (cols > 4000) {  // ties read by one invocation: in one round of loads (row 0), and two
      l[556] = l[300] = 60.0f;
      l[size_t(2 * cols + 3000)] = l[size_t(2 * cols + 952)] = 60.0f;
    }
    std::vector<int32_t> ids[2];
    for (int i = 0; i < 2; ++i) {
      Backend& b = *p.both[i];
      const Tensor lt = b.alloc(DType::F32, rows, cols, Usage::Activations);
      const Tensor it = b.alloc(DType::I32, rows, 1, Usage::Activations);
      b.write(lt, l.data());
      poison(b, it);
      b.begin_step({0, 1});
      b.argmax(it, lt);
      b.end_step();
      ids[i].resize(size_t(rows));
      b.read(it, ids[i].data());
    }
    CHECK(ids[1] == ids[0]);
    if (cols > 100) CHECK(ids[1][1] == 90);
    if (cols > 4000) CHECK((ids[1][0] == 300 && ids[1][2] == 952));
  }
}
