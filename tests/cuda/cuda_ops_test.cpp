// Every CUDA op against the CPU reference backend, on fresh random inputs over a sweep of shapes
// (sizes that are not multiples of the kernels' blocks, one row, one column, K = blocksize).
// GPU outputs are poisoned with NaN first, so an element an op fails to write fails the test.
// Tolerances (relative L2 error): exact where both sides do the same float operations (gathers,
// dequantization, the cache store, argmax), 1e-5 where only the summation order differs.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <limits>
#include <ostream>

#include "engine/cpu/cpu_backend.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/sample_cases.h"

using namespace nibble;
using test::rel_error;

namespace {

constexpr double kSumOrderTolerance = 1e-5;

struct Heads {  // an attention's head counts and size
  int n_heads, n_kv_heads, head_dim;
  int64_t q_cols() const { return int64_t(n_heads) * head_dim; }
  int64_t kv_cols() const { return int64_t(n_kv_heads) * head_dim; }
};
// For CAPTURE: "8/2 heads of 64" (query heads / KV heads).
std::ostream& operator<<(std::ostream& os, const Heads& h) {
  return os << h.n_heads << "/" << h.n_kv_heads << " heads of " << h.head_dim;
}

Tensor input(Backend& b, const std::vector<float>& values, int64_t rows, int64_t cols) {
  Tensor t = b.alloc(DType::F32, rows, cols, Usage::Activations);
  b.write(t, values.data());
  return t;
}

Tensor poisoned(Backend& b, int64_t rows, int64_t cols) {
  const std::vector<float> nan(size_t(rows * cols), std::numeric_limits<float>::quiet_NaN());
  return input(b, nan, rows, cols);
}

std::vector<float> read_f32(Backend& b, Tensor t) {
  std::vector<float> v(size_t(t.numel()));
  b.read(t, v.data());
  return v;
}

// A KV cache's values as the GPU's F16 cache holds them (the CPU's float32 cache rounded so).
std::vector<float> cache_values(Backend& b, Tensor cache) {
  std::vector<float> values(size_t(cache.numel()));
  if (cache.dtype == DType::F32) {
    b.read(cache, values.data());
    return test::f16_rounded(values);
  }
  std::vector<uint16_t> half(values.size());
  b.read(cache, half.data());
  for (size_t i = 0; i < half.size(); ++i) values[i] = f16_to_f32(half[i]);
  return values;
}

// Runs `run` (which builds its inputs, runs one op and reads the output) on the CPU and on the
// GPU, and returns the relative error of the GPU's result.
template <class Run>
double gpu_error(Backend& gpu, Run run) {
  CpuBackend cpu(2);
  const std::vector<float> want = run(cpu);
  const std::vector<float> got = run(gpu);
  return rel_error(got, want);
}

std::vector<int32_t> random_ids(size_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int32_t> ids(n);
  for (int32_t& id : ids) id = int32_t(rng() % uint64_t(vocab));
  if (n > 1) ids[0] = 0, ids[1] = int32_t(vocab - 1);  // both ends of the table
  return ids;
}

}  // namespace

TEST_CASE("cuda: matmul of every weight dtype and compute dtype matches the CPU") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  struct Shape {
    int64_t tokens, out, in;
  };
  // One token runs the GEMV (fast path when `in` is a multiple of 32; 4-bit: 64 threads up to
  // 2 048 wide, 4 rows per block, so rows not a multiple of 4 and chunks not a multiple of the
  // threads), more run a tiled GEMM: for 4-bit weights of 16-bit compute and `in` a multiple of
  // 32 the tensor cores' (128x128 tiles, k slices of 64: several tiles with partial edges, a last
  // half slice, an odd height), else float32 tiles.
  const Shape shapes[] = {
      {1, 1, 64},    {1, 37, 1},   {1, 33, 100},    {1, 130, 256},    {1, 64, 4096}, {1, 300, 1000},
      {1, 66, 2048}, {1, 7, 5632}, {2, 17, 96},     {5, 65, 192},     {64, 64, 64},  {70, 129, 257},
      {3, 1, 128},   {1, 5, 1},    {130, 300, 352}, {257, 136, 1024}, {129, 255, 64}};
  uint64_t seed = 1;
  for (const Shape& s : shapes) {
    CAPTURE(s.tokens);
    CAPTURE(s.out);
    CAPTURE(s.in);
    std::vector<HostWeight> weights;
    for (DType t : {DType::F32, DType::F16, DType::BF16})
      weights.push_back(test::dense_weight(
          "w", t, s.out, s.in, test::random_floats(size_t(s.out * s.in), ++seed, 0.05f)));
    int variant = 0;
    for (QuantType type : {QuantType::NF4, QuantType::FP4})
      for (bool nested : {true, false})
        for (ComputeDType compute : {ComputeDType::F32, ComputeDType::F16, ComputeDType::BF16}) {
          const int blocksize = std::array{64, 128, 256}[size_t(variant++ % 3)];
          weights.push_back(test::random_4bit("w4", {type, blocksize, nested, compute}, s.out, s.in,
                                              ++seed, 0.1f));
        }
    const std::vector<float> x = test::random_floats(size_t(s.tokens * s.in), ++seed);
    for (const HostWeight& w : weights) {
      CAPTURE(dtype_name(w.dtype));
      CAPTURE(compute_dtype_name(w.compute));
      CAPTURE(w.quant ? w.quant->blocksize : 0);
      CAPTURE(w.quant && w.quant->nested);
      const double err = gpu_error(*gpu, [&](Backend& b) {
        const Tensor wt = b.upload_weight(w);
        const Tensor xt = input(b, x, s.tokens, s.in);
        const Tensor out = poisoned(b, s.tokens, s.out);
        b.begin_step({0, int(s.tokens)});
        b.matmul(out, xt, wt);
        b.end_step();
        return read_f32(b, out);
      });
      CHECK(err < kSumOrderTolerance);
    }
  }
}

// The fused products: one row takes one launch of the 4-bit GEMV for q, k and v (of different
// heights), for gate and up (NF4 and FP4: two code tables), and for a product added to the
// residual; several rows with a 16-bit compute dtype the tensor cores (x's operands converted
// once per x, the residual added in the GEMM's store); other shapes the unfused ops. Where operands
// are rounded to 16 bits, the GPU's and the CPU's rms_norm may differ in the last bit of the scale
// and so move a rounded operand by one ulp: 1e-3 (a wrong output, weight or scale gives > 1e-2);
// float32 compute: the summation order only.
TEST_CASE("cuda: norm_matmuls, norm_matmul_swiglu and matmul_add match the CPU") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  struct Shape {
    int64_t rows, n, k;
  };
  // 130 x 352: two row tiles of the tensor cores' GEMM, a last half k slice.
  const Shape shapes[] = {{1, 37, 64}, {1, 9, 4096}, {1, 66, 2048},   {1, 130, 256}, {1, 33, 100},
                          {3, 70, 96}, {1, 64, 96},  {130, 200, 352}, {130, 224, 96}};
  uint64_t seed = 500;
  for (test::Quant4 q : {test::Quant4{QuantType::NF4, 64, true, ComputeDType::BF16},
                         test::Quant4{QuantType::NF4, 64, false, ComputeDType::F16},
                         test::Quant4{QuantType::FP4, 128, true, ComputeDType::F32}})
    for (const Shape& s : shapes) {
      CAPTURE(compute_dtype_name(q.compute));
      CAPTURE(s.rows);
      CAPTURE(s.n);
      CAPTURE(s.k);
      std::vector<float> g = test::random_floats(size_t(s.k), ++seed, 0.2f);
      for (float& v : g) v += 1.0f;
      const HostWeight norm = test::dense_weight("norm", DType::BF16, 1, s.k, g);
      const int64_t heights[] = {s.n, s.n + 2, s.n + 6};
      std::vector<HostWeight> w;
      for (int64_t h : heights) w.push_back(test::random_4bit("qkv", q, h, s.k, ++seed, 0.1f));
      const HostWeight gate = test::random_4bit("gate", q, s.n, s.k, ++seed, 0.1f);
      test::Quant4 up_q = q;  // the other code table: the SwiGLU launch reads one per weight
      up_q.type = q.type == QuantType::NF4 ? QuantType::FP4 : QuantType::NF4;
      const HostWeight up = test::random_4bit("up", up_q, s.n, s.k, ++seed, 0.1f);
      const HostWeight o = test::random_4bit("o", q, s.k, s.k, ++seed, 0.1f);
      const HostWeight down = test::random_4bit("down", q, s.k, s.n, ++seed, 0.1f);
      const auto x = test::random_floats(size_t(s.rows * s.k), ++seed, 3.0f);
      // q, k, v, silu(gate) * up, x + down · (silu(gate) * up) (right after the SwiGLU, which
      // may hand the product its operands) and x + o · xn, each read back.
      auto run = [&](Backend& b) {
        const Tensor xt = input(b, x, s.rows, s.k), xn = poisoned(b, s.rows, s.k);
        std::vector<Tensor> outs;
        for (int64_t h : heights) outs.push_back(poisoned(b, s.rows, h));
        const Tensor sw = poisoned(b, s.rows, s.n), scratch = poisoned(b, s.rows, s.n);
        const Tensor res = input(b, x, s.rows, s.k), proj = poisoned(b, s.rows, s.k);
        const Tensor res2 = input(b, x, s.rows, s.k);
        const Tensor nt = b.upload_weight(norm), gt = b.upload_weight(gate),
                     ut = b.upload_weight(up), ot = b.upload_weight(o), dt = b.upload_weight(down);
        std::vector<Tensor> wt;
        for (const HostWeight& h : w) wt.push_back(b.upload_weight(h));
        b.begin_step({0, int(s.rows)});
        b.norm_matmuls(xt, nt, 1e-5f, xn, {{outs[0], wt[0]}, {outs[1], wt[1]}, {outs[2], wt[2]}});
        b.norm_matmul_swiglu(sw, xt, nt, 1e-5f, xn, gt, ut, scratch);
        b.matmul_add(res2, sw, dt, proj);
        b.matmul_add(res, xn, ot, proj);
        b.end_step();
        outs.push_back(sw);
        outs.push_back(res2);
        outs.push_back(res);
        std::vector<std::vector<float>> got;
        for (Tensor t : outs) got.push_back(read_f32(b, t));
        return got;
      };
      CpuBackend cpu(2);
      const auto want = run(cpu);
      const auto got = run(*gpu);
      const double tol = q.compute == ComputeDType::F32 ? kSumOrderTolerance : 1e-3;
      for (size_t i = 0; i < want.size(); ++i) {
        CAPTURE(i);  // q, k, v, SwiGLU, down's residual, o's residual
        CHECK(rel_error(got[i], want[i]) < tol);
      }
    }
}

TEST_CASE("cuda: embedding gathers rows of every table dtype exactly") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 100;
  for (int64_t vocab : {1, 7, 100})
    for (int64_t cols : {1, 5, 64, 333})
      for (int64_t n : {1, 4, 9}) {
        CAPTURE(vocab);
        CAPTURE(cols);
        CAPTURE(n);
        std::vector<HostWeight> tables;
        for (DType t : {DType::F32, DType::F16, DType::BF16})
          tables.push_back(test::dense_weight("embed", t, vocab, cols,
                                              test::random_floats(size_t(vocab * cols), ++seed)));
        tables.push_back(test::random_4bit("embed4", {}, vocab, cols, ++seed));
        const std::vector<int32_t> ids = random_ids(size_t(n), vocab, ++seed);
        for (const HostWeight& table : tables) {
          CAPTURE(dtype_name(table.dtype));
          const double err = gpu_error(*gpu, [&](Backend& b) {
            const Tensor t = b.upload_weight(table);
            const Tensor id = b.alloc(DType::I32, n, 1, Usage::Activations);
            b.write(id, ids.data());
            const Tensor out = poisoned(b, n, cols);
            b.begin_step({0, int(n)});
            b.embed(out, t, id);
            b.end_step();
            return read_f32(b, out);
          });
          CHECK(err == 0);
        }
      }
}

TEST_CASE("cuda: RMSNorm matches the CPU for every norm-weight dtype") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 200;
  for (int64_t rows : {1, 3, 17})
    for (int64_t n : {1, 7, 64, 1000, 4097})
      for (DType t : {DType::F32, DType::F16, DType::BF16}) {
        CAPTURE(rows);
        CAPTURE(n);
        CAPTURE(dtype_name(t));
        std::vector<float> g = test::random_floats(size_t(n), ++seed, 0.1f);
        for (float& v : g) v += 1.0f;
        const HostWeight weight = test::dense_weight("norm", t, 1, n, g);
        const std::vector<float> x = test::random_floats(size_t(rows * n), ++seed, 3.0f);
        const double err = gpu_error(*gpu, [&](Backend& b) {
          const Tensor w = b.upload_weight(weight);
          const Tensor xt = input(b, x, rows, n);
          const Tensor out = poisoned(b, rows, n);
          b.begin_step({0, int(rows)});
          b.rms_norm(out, xt, w, 1e-5f);
          b.end_step();
          return read_f32(b, out);
        });
        CHECK(err < kSumOrderTolerance);
      }
}

TEST_CASE("cuda: RoPE rotates at the step's positions like the CPU") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 300;
  for (int pos0 : {0, 5, 1000})
    for (int64_t rows : {1, 4, 13})
      for (int heads : {1, 3, 8})
        for (int head_dim : {2, 8, 64, 128}) {
          CAPTURE(pos0);
          CAPTURE(rows);
          CAPTURE(heads);
          CAPTURE(head_dim);
          const int64_t cols =
              int64_t(heads) * head_dim + (heads == 3 ? 5 : 0);  // a tail rope skips
          const std::vector<float> inv = test::rope_inv_freq(head_dim);
          const std::vector<float> x = test::random_floats(size_t(rows * cols), ++seed);
          const double err = gpu_error(*gpu, [&](Backend& b) {
            const Tensor freq = input(b, inv, 1, int64_t(inv.size()));
            const Tensor xt = input(b, x, rows, cols);
            b.begin_step({pos0, int(rows)});
            b.rope(xt, heads, head_dim, freq);
            b.end_step();
            return read_f32(b, xt);
          });
          CHECK(err < kSumOrderTolerance);
        }
}

TEST_CASE("cuda: the KV cache store writes F16 rows at the step's positions") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  const int64_t context = 40, cols = 24;
  uint64_t seed = 400;
  for (int pos0 : {0, 7, 39})
    for (int64_t rows : {1, 3}) {
      if (pos0 + rows > context) continue;
      CAPTURE(pos0);
      CAPTURE(rows);
      const auto k = test::f16_rounded(test::random_floats(size_t(rows * cols), ++seed));
      const auto v = test::f16_rounded(test::random_floats(size_t(rows * cols), ++seed));
      const Tensor kc = gpu->alloc_kv(context, cols), vc = gpu->alloc_kv(context, cols);
      REQUIRE(kc.dtype == DType::F16);
      const Tensor kt = input(*gpu, k, rows, cols), vt = input(*gpu, v, rows, cols);
      gpu->begin_step({pos0, int(rows)});
      gpu->kv_store(kc, vc, kt, vt);
      gpu->end_step();
      for (const auto& [cache, want] : {std::pair{kc, k}, std::pair{vc, v}}) {
        std::vector<uint16_t> half(size_t(context * cols));
        gpu->read(cache, half.data());
        std::vector<float> expected(half.size(), 0.0f);  // alloc_kv zero-fills
        std::copy(want.begin(), want.end(), expected.begin() + pos0 * cols);
        std::vector<float> got(half.size());
        for (size_t i = 0; i < half.size(); ++i) got[i] = f16_to_f32(half[i]);
        CHECK(rel_error(got, expected) == 0);
      }
    }
}

// The CPU's caches hold float32, CUDA's float16: the CPU's are compared rounded to float16. The
// rotated k then matches exactly but for a rare one-ulp flip where a rotated value lands within
// a float32 ulp of a rounding boundary: 1e-4; v (drawn float16-exact) exactly.
TEST_CASE("cuda: rope_kv_store (rope on q and k, k and v into the caches) matches the CPU") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  const int64_t context = 48;
  uint64_t seed = 450;
  for (Heads h : {Heads{4, 2, 8}, Heads{3, 3, 64}, Heads{8, 1, 128}, Heads{2, 2, 2}})
    for (int pos0 : {0, 5, 45})
      for (int64_t rows : {1, 3}) {
        if (pos0 + rows > context) continue;
        CAPTURE(h);
        CAPTURE(pos0);
        CAPTURE(rows);
        const int64_t q_cols = h.q_cols(), kv_cols = h.kv_cols();
        const AttentionShape shape{h.n_heads, h.n_kv_heads, h.head_dim, 0, ComputeDType::F32};
        const std::vector<float> inv = test::rope_inv_freq(h.head_dim);
        const auto q = test::random_floats(size_t(rows * q_cols), ++seed);
        const auto k = test::random_floats(size_t(rows * kv_cols), ++seed);
        const auto v = test::f16_rounded(test::random_floats(size_t(rows * kv_cols), ++seed));
        // q and k rotated, then both caches as float32 values.
        auto run = [&](Backend& b) {
          const Tensor freq = input(b, inv, 1, int64_t(inv.size()));
          const Tensor qt = input(b, q, rows, q_cols), kt = input(b, k, rows, kv_cols),
                       vt = input(b, v, rows, kv_cols);
          const Tensor kc = b.alloc_kv(context, kv_cols), vc = b.alloc_kv(context, kv_cols);
          b.begin_step({pos0, int(rows)});
          b.rope_kv_store(qt, kt, vt, kc, vc, shape, freq);
          b.end_step();
          std::vector<std::vector<float>> out{read_f32(b, qt), read_f32(b, kt)};
          for (Tensor cache : {kc, vc}) out.push_back(cache_values(b, cache));
          return out;
        };
        CpuBackend cpu(2);
        const auto want = run(cpu);
        const auto got = run(*gpu);
        CHECK(rel_error(got[0], want[0]) < kSumOrderTolerance);  // q
        CHECK(rel_error(got[1], want[1]) < kSumOrderTolerance);  // k
        CHECK(rel_error(got[2], want[2]) < 1e-4);                // k cache
        CHECK(rel_error(got[3], want[3]) == 0);                  // v cache
      }
}

namespace {

// One attention case against the CPU: keys and values of the positions before pos0 stored by an
// earlier step, then `rows` queries (q scaled by q_scale) at pos0 with the model's compute dtype.
double attention_error(Backend& gpu, Heads h, int pos0, int64_t rows, int window,
                       ComputeDType compute, float q_scale, uint64_t seed) {
  const int64_t context = std::max<int64_t>(700, pos0 + rows);
  const AttentionShape shape{h.n_heads, h.n_kv_heads, h.head_dim, window, compute};
  const int64_t q_cols = h.q_cols(), kv_cols = h.kv_cols();
  const int64_t keys = pos0 + rows;
  // F16-representable keys and values: both caches then hold the same numbers.
  const auto k = test::f16_rounded(test::random_floats(size_t(keys * kv_cols), ++seed));
  const auto v = test::f16_rounded(test::random_floats(size_t(keys * kv_cols), ++seed));
  const auto q = test::random_floats(size_t(rows * q_cols), ++seed, 0.5f * q_scale);
  return gpu_error(gpu, [&](Backend& b) {
    const Tensor kc = b.alloc_kv(context, kv_cols), vc = b.alloc_kv(context, kv_cols);
    const Tensor kt = input(b, k, keys, kv_cols), vt = input(b, v, keys, kv_cols);
    if (pos0 > 0) {  // the earlier positions, stored by an earlier step
      b.begin_step({0, pos0});
      b.kv_store(kc, vc, kt.slice_rows(0, pos0), vt.slice_rows(0, pos0));
      b.end_step();
    }
    const Tensor qt = input(b, q, rows, q_cols);
    const Tensor out = poisoned(b, rows, q_cols);
    b.begin_step({pos0, int(rows)});
    b.kv_store(kc, vc, kt.slice_rows(pos0, rows), vt.slice_rows(pos0, rows));
    b.attention(out, qt, kc, vc, shape);
    b.end_step();
    return read_f32(b, out);
  });
}

}  // namespace

TEST_CASE("cuda: attention over the KV cache matches the CPU (GQA, windows, long contexts)") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 500;
  // Head sizes of 16-byte segments (8 to 256, 80 not a power of two) and of 4-byte ones (6, 100).
  for (Heads h : {Heads{4, 4, 16}, Heads{8, 2, 64}, Heads{4, 1, 128}, Heads{3, 3, 8},
                  Heads{5, 5, 80}, Heads{2, 1, 256}, Heads{2, 2, 6}, Heads{2, 1, 100}})
    for (int pos0 : {0, 3, 300, 600})  // 300 and 600: more than one 256-key split
      for (int64_t rows : {1, 7, 40})
        for (int window : {0, 5, 200}) {
          if (pos0 + rows > 700) continue;
          CAPTURE(h);
          CAPTURE(pos0);
          CAPTURE(rows);
          CAPTURE(window);
          seed += 3;
          CHECK(attention_error(*gpu, h, pos0, rows, window, ComputeDType::F32, 1.0f, seed) <
                kSumOrderTolerance);
        }
}

// One decode step's rope_kv_attention (the CUDA attention rotates q and k and stores the new
// row itself, reading that row from shared memory, where its heads allow 16-byte loads; head
// size 6 takes the unfused ops): the output and both caches, after earlier positions stored by
// an earlier step, against the same GPU's unfused rope_kv_store and attention (the same
// arithmetic: 1e-5) and the CPU's (whose cache keeps the new row in float32, not float16: 1e-3).
// Positions around the 64-key splits of a decode step, windows, GQA and MQA.
TEST_CASE("cuda: rope_kv_attention of one token matches the CPU (RoPE and the KV store fused)") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  const int64_t context = 400;
  uint64_t seed = 900;
  for (Heads h :
       {Heads{4, 4, 16}, Heads{8, 2, 64}, Heads{4, 1, 128}, Heads{5, 5, 80}, Heads{2, 2, 6}})
    for (int pos0 : {0, 3, 63, 64, 130, 399})
      for (int window : {0, 5, 100})
        for (ComputeDType compute : {ComputeDType::F32, ComputeDType::BF16}) {
          CAPTURE(h);
          CAPTURE(pos0);
          CAPTURE(window);
          const int64_t q_cols = h.q_cols(), kv_cols = h.kv_cols();
          const AttentionShape shape{h.n_heads, h.n_kv_heads, h.head_dim, window, compute};
          const std::vector<float> inv = test::rope_inv_freq(h.head_dim);
          const auto old_k = test::f16_rounded(test::random_floats(size_t(pos0 * kv_cols), ++seed));
          const auto old_v = test::f16_rounded(test::random_floats(size_t(pos0 * kv_cols), ++seed));
          const auto q = test::random_floats(size_t(q_cols), ++seed);
          const auto k = test::random_floats(size_t(kv_cols), ++seed);
          const auto v = test::random_floats(size_t(kv_cols), ++seed);
          auto run = [&](Backend& b, bool fused) {
            const Tensor kc = b.alloc_kv(context, kv_cols), vc = b.alloc_kv(context, kv_cols);
            if (pos0 > 0) {  // the earlier positions, stored by an earlier step
              b.begin_step({0, pos0});
              b.kv_store(kc, vc, input(b, old_k, pos0, kv_cols), input(b, old_v, pos0, kv_cols));
              b.end_step();
            }
            const Tensor freq = input(b, inv, 1, int64_t(inv.size()));
            const Tensor qt = input(b, q, 1, q_cols), kt = input(b, k, 1, kv_cols),
                         vt = input(b, v, 1, kv_cols), out = poisoned(b, 1, q_cols);
            b.begin_step({pos0, 1});
            if (fused)
              b.rope_kv_attention(out, qt, kt, vt, kc, vc, shape, freq);
            else  // Backend's own: rope_kv_store, then attention
              b.Backend::rope_kv_attention(out, qt, kt, vt, kc, vc, shape, freq);
            b.end_step();
            std::vector<std::vector<float>> got{read_f32(b, out)};
            for (Tensor cache : {kc, vc}) {
              std::vector<float> values = cache_values(b, cache);
              values.resize(size_t((pos0 + 1) * kv_cols));  // the rows written so far
              got.push_back(values);
            }
            return got;
          };
          CpuBackend cpu(2);
          const auto want = run(cpu, true);
          const auto unfused = run(*gpu, false);
          const auto got = run(*gpu, true);
          CHECK(rel_error(got[0], unfused[0]) < kSumOrderTolerance);  // the attention's output
          CHECK(rel_error(got[1], unfused[1]) < 1e-6);                // k cache (rotated)
          CHECK(rel_error(got[2], unfused[2]) == 0);                  // v cache
          CHECK(rel_error(got[0], want[0]) < 1e-3);
          CHECK(rel_error(got[1], want[1]) < 1e-4);
          CHECK(rel_error(got[2], want[2]) == 0);
        }
}

// One decode query over contexts long enough for longer splits (64 keys each up to 2 047 keys,
// 128 up to 4 095, then 256, ...; decode_chunk in attention.cu): positions on both sides of each
// change, a window that shortens the keys a query sees, GQA and MHA.
TEST_CASE("cuda: decode attention over long contexts matches the CPU (splits grow with it)") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 700;
  for (Heads h : {Heads{8, 2, 64}, Heads{4, 4, 128}})
    for (int pos0 : {2046, 2047, 4094, 4095, 5000, 8500})
      for (int window : {0, 3000}) {
        CAPTURE(h);
        CAPTURE(pos0);
        CAPTURE(window);
        seed += 3;
        CHECK(attention_error(*gpu, h, pos0, 1, window, ComputeDType::F32, 1.0f, seed) <
              kSumOrderTolerance);
      }
}

// A prompt (rows x heads >= 512) of a model computing in 16 bits takes the tensor cores
// (attention_prompt.cu), which round q (scaled) and the probabilities to float16: 3e-3, as for
// Vulkan's matrix units (each rounding is at most 2^-11 relative; the CPU keeps float32). q is
// larger than the keys, so that the softmax is peaked and its running max moves.
TEST_CASE("cuda: prompt attention on the tensor cores matches the CPU") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  struct Case {
    Heads h;
    int pos0;
    int64_t rows;
    int window;
  };
  const Case cases[] = {
      {{4, 4, 128}, 0, 130, 0},    // MHA, rows off the 64-query block and the 16-row fragments
      {{8, 2, 64}, 37, 100, 0},    // GQA after a cached prefix (tiles start off the prefix)
      {{4, 1, 64}, 0, 200, 48},    // MQA with a sliding window
      {{8, 4, 32}, 300, 70, 64},   // a window inside a long prefix
      {{4, 2, 80}, 3, 130, 0},     // 5 fragments along the head
      {{16, 16, 48}, 10, 40, 0},   // 3 fragments, a block of fewer rows than one warp's
      {{2, 1, 16}, 0, 300, 0},     // the smallest head for the fragments
      {{8, 8, 8}, 0, 90, 0},       // a head of 8: the float32 kernel
      {{4, 4, 112}, 500, 150, 0},  // 7 fragments, 650 keys: 11 tiles, the last one partial
  };
  uint64_t seed = 900;
  for (ComputeDType compute : {ComputeDType::BF16, ComputeDType::F16})
    for (const Case& c : cases) {
      CAPTURE(compute_dtype_name(compute));
      CAPTURE(c.h);
      CAPTURE(c.pos0);
      CAPTURE(c.rows);
      CAPTURE(c.window);
      seed += 3;
      CHECK(attention_error(*gpu, c.h, c.pos0, c.rows, c.window, compute, 4.0f, seed) < 3e-3);
    }
}

TEST_CASE("cuda: SwiGLU and the residual add match the CPU") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 600;
  for (int64_t n : {1, 5, 1000, 100003}) {
    CAPTURE(n);
    const auto g = test::random_floats(size_t(n), ++seed, 3.0f);
    const auto u = test::random_floats(size_t(n), ++seed);
    CHECK(gpu_error(*gpu, [&](Backend& b) {
            const Tensor gt = input(b, g, 1, n), ut = input(b, u, 1, n), out = poisoned(b, 1, n);
            b.begin_step({0, 1});
            b.swiglu(out, gt, ut);
            b.end_step();
            return read_f32(b, out);
          }) < 1e-6);
    CHECK(gpu_error(*gpu, [&](Backend& b) {
            const Tensor gt = input(b, g, 1, n), ut = input(b, u, 1, n);
            b.begin_step({0, 1});
            b.add(gt, ut);
            b.end_step();
            return read_f32(b, gt);
          }) == 0);
  }
}

TEST_CASE("cuda: argmax picks the first largest logit of each row") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  uint64_t seed = 700;
  for (int64_t rows : {1, 3})
    for (int64_t cols : {1, 7, 97, 32000}) {
      CAPTURE(rows);
      CAPTURE(cols);
      auto logits = test::random_floats(size_t(rows * cols), ++seed);
      if (cols > 10) logits[5] = logits[cols - 2] = 100.0f;  // a tie: the first one wins
      const Tensor l = input(*gpu, logits, rows, cols);
      const Tensor ids = gpu->alloc(DType::I32, rows, 1, Usage::Activations);
      const std::vector<int32_t> poison(size_t(rows), -1);
      gpu->write(ids, poison.data());
      gpu->begin_step({0, 1});
      gpu->argmax(ids, l);
      gpu->end_step();
      std::vector<int32_t> got(static_cast<size_t>(rows));
      gpu->read(ids, got.data());
      for (int64_t r = 0; r < rows; ++r) {
        const float* row = logits.data() + r * cols;
        CHECK(got[size_t(r)] == int32_t(std::max_element(row, row + cols) - row));
      }
    }
}

TEST_CASE("cuda: bad shapes and impossible allocations are errors naming the op") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  const Tensor x = gpu->alloc(DType::F32, 2, 8, Usage::Activations);
  const Tensor w =
      gpu->upload_weight(test::dense_weight("w", DType::F32, 4, 9, std::vector<float>(36)));
  const Tensor out = gpu->alloc(DType::F32, 2, 4, Usage::Activations);
  CHECK_THROWS_WITH_AS(gpu->matmul(out, x, w), doctest::Contains("matmul"), Error);
  CHECK_THROWS_WITH_AS(gpu->alloc(DType::F32, int64_t(1) << 24, int64_t(1) << 24, Usage::KvCache),
                       doctest::Contains("out of GPU memory"), Error);
  const MemoryInfo m = gpu->memory();
  CHECK(m.weights >= 36 * 4);
  CHECK(m.device_budget > 0);
  CHECK(m.device_used > 0);
}

// Sampling on the device (engine/cuda/sample.cu) against draw_token: tests/sample_cases.h.
TEST_CASE("cuda: sampling on the device draws draw_token's token") {
  auto gpu = test::cuda_or_skip();
  if (!gpu) return;
  test::check_device_sampling(*gpu);
}
