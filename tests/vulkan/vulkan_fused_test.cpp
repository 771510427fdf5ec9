// The fused ops (Backend::matmul_add, matmul_swiglu, norm_matmuls, norm_matmul_swiglu,
// rope_kv_store) on Vulkan against the CPU reference, which runs their unfused definitions: fresh
// random inputs, outputs poisoned with NaN first, decode (one row: the fused kernels) and prompt
// rows (the unfused path), row counts off every workgroup's row tile. Tolerance: relative L2 error
// 2e-5 (the operands are the same on both sides; the float32 summation order differs, which on a
// single output whose terms cancel measured 1.1e-5, and the device's exp). The CPU's caches hold
// float32: v is drawn float16-exact, so its cache compares exactly; the rotated k is compared with
// the CPU's rounded to float16, exact but for a rare one-ulp flip where a rotated value lands
// within a float32 ulp of a rounding boundary: 1e-4.
#include <optional>
#include <span>

#include "tests/vulkan/vulkan_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

constexpr double kTol = 2e-5;

struct Shape {
  int64_t rows, n, k;  // x is [rows, k], the weights [n, k]
};
const Shape kShapes[] = {{1, 1, 64},  {1, 37, 64}, {1, 33, 200}, {1, 300, 256}, {1, 9, 4096},
                         {1, 70, 96}, {1, 129, 7}, {3, 70, 96},  {17, 33, 130}};

const WeightSpec kSpecs[] = {
    {.dtype = DType::F32},
    {.dtype = DType::BF16},
    {.dtype = DType::F16},
    {.dtype = DType::NF4, .double_quant = true, .compute = ComputeDType::BF16},
    {.dtype = DType::NF4, .double_quant = false, .compute = ComputeDType::F16},
    {.dtype = DType::FP4, .double_quant = true, .compute = ComputeDType::F32, .blocksize = 128},
    // A nested group that is not a power of two (a checkpoint may say so): the scalar path.
    {.dtype = DType::NF4,
     .double_quant = true,
     .compute = ComputeDType::BF16,
     .blocksize = 64,
     .nested_blocksize = 6},
};

bool packed(const WeightSpec& s) {
  return s.dtype == DType::NF4 || s.dtype == DType::FP4;
}

// An rms_norm weight of `cols` values around 1, as trained ones are.
HostWeight norm_weight(std::mt19937& rng, DType dtype, int64_t cols) {
  std::vector<float> g = random_floats(rng, size_t(cols), 0.2f);
  for (float& v : g) v += 1.0f;
  return dense_weight("norm", dtype, 1, cols, g);
}

// matmul_add and matmul_swiglu of one shape and storage kind on backend `b`.
std::vector<float> fused_on(Backend& b, bool swiglu, const HostWeight& w1, const HostWeight& w2,
                            const std::vector<float>& x, const std::vector<float>& acc,
                            const Shape& s) {
  const Tensor a = b.upload_weight(w1), c = b.upload_weight(w2);
  const Tensor xt = b.alloc(DType::F32, s.rows, s.k, Usage::Activations);
  const Tensor out = b.alloc(DType::F32, s.rows, s.n, Usage::Activations);
  const Tensor scratch = b.alloc(DType::F32, s.rows, s.n, Usage::Activations);
  b.write(xt, x.data());
  if (swiglu)
    poison(b, out);
  else
    b.write(out, acc.data());  // the residual stream the product is added to
  poison(b, scratch);
  b.begin_step({0, int(s.rows)});
  if (swiglu)
    b.matmul_swiglu(out, xt, a, c, scratch);
  else
    b.matmul_add(out, xt, a, scratch);
  b.end_step();
  return read_f32(b, out);
}

// `up_type`: the second weight's 4-bit type, where it differs from the first's.
void fused_sweep(bool swiglu, std::span<const WeightSpec> specs = kSpecs,
                 std::optional<DType> up_type = {}) {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(swiglu ? 71 : 72);
  for (const WeightSpec& spec : specs)
    for (const Shape& s : kShapes) {
      CAPTURE(dtype_name(spec.dtype));
      CAPTURE(s.rows);
      CAPTURE(s.n);
      CAPTURE(s.k);
      if (packed(spec) && (s.n * s.k) % 2) continue;  // packed weights hold whole bytes
      const HostWeight w1 = random_weight(rng, "gate", s.n, s.k, spec);
      WeightSpec up_spec = spec;
      if (up_type) up_spec.dtype = *up_type;
      const HostWeight w2 = random_weight(rng, "up", s.n, s.k, up_spec);
      const auto x = random_floats(rng, size_t(s.rows * s.k));
      const auto acc = random_floats(rng, size_t(s.rows * s.n));
      const auto want = fused_on(p.cpu, swiglu, w1, w2, x, acc, s);
      const auto got = fused_on(*p.gpu, swiglu, w1, w2, x, acc, s);
      CHECK(checked_error(got, want) < kTol);
    }
}

}  // namespace

TEST_CASE("vulkan: matmul_add (projection into the residual stream)") {
  fused_sweep(false);
}

TEST_CASE("vulkan: matmul_swiglu (gate and up projections in one pass)") {
  fused_sweep(true);
}

// The decode product takes a 4-bit code table as specialization constants only where both of
// its weights share it; here they do not (NF4 gate, FP4 up), so it reads the tables from memory.
TEST_CASE("vulkan: matmul_swiglu of weights with different 4-bit codes") {
  const WeightSpec specs[] = {
      {.dtype = DType::NF4, .double_quant = true, .compute = ComputeDType::BF16},
      {.dtype = DType::NF4, .double_quant = false, .compute = ComputeDType::F16}};
  fused_sweep(true, specs, DType::FP4);
}

namespace {

// norm_matmuls (three projections of different heights, like q, k, v) and norm_matmul_swiglu
// on backend `b`.
struct NormOut {
  std::vector<float> a, b, c, swiglu;
};
NormOut norm_on(Backend& be, const HostWeight& g, const HostWeight& wa, const HostWeight& wb,
                const HostWeight& wc, const HostWeight& gate, const HostWeight& up,
                const std::vector<float>& x, int64_t rows) {
  const Tensor gt = be.upload_weight(g), at = be.upload_weight(wa), bt = be.upload_weight(wb);
  const Tensor ct = be.upload_weight(wc);
  const Tensor gate_t = be.upload_weight(gate), up_t = be.upload_weight(up);
  const int64_t k = g.cols;
  const Tensor xt = be.alloc(DType::F32, rows, k, Usage::Activations);
  const Tensor xn = be.alloc(DType::F32, rows, k, Usage::Activations);
  const Tensor oa = be.alloc(DType::F32, rows, wa.rows, Usage::Activations);
  const Tensor ob = be.alloc(DType::F32, rows, wb.rows, Usage::Activations);
  const Tensor oc = be.alloc(DType::F32, rows, wc.rows, Usage::Activations);
  const Tensor os = be.alloc(DType::F32, rows, gate.rows, Usage::Activations);
  const Tensor scratch = be.alloc(DType::F32, rows, gate.rows, Usage::Activations);
  be.write(xt, x.data());
  for (Tensor t : {xn, oa, ob, oc, os, scratch}) poison(be, t);
  be.begin_step({0, int(rows)});
  be.norm_matmuls(xt, gt, 1e-5f, xn, {{oa, at}, {ob, bt}, {oc, ct}});
  be.norm_matmul_swiglu(os, xt, gt, 1e-5f, xn, gate_t, up_t, scratch);
  be.end_step();
  return {read_f32(be, oa), read_f32(be, ob), read_f32(be, oc), read_f32(be, os)};
}

void norm_sweep() {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(74);
  const Shape shapes[] = {{1, 37, 64}, {1, 9, 4096}, {1, 33, 200}, {1, 5, 7}, {3, 70, 96}};
  for (DType norm_dtype : {DType::F32, DType::BF16, DType::F16})
    for (const WeightSpec& spec : kSpecs)
      for (const Shape& s : shapes) {
        CAPTURE(dtype_name(norm_dtype));
        CAPTURE(dtype_name(spec.dtype));
        CAPTURE(s.rows);
        CAPTURE(s.n);
        CAPTURE(s.k);
        if (packed(spec) && (s.n * s.k) % 2) continue;
        const HostWeight g = norm_weight(rng, norm_dtype, s.k);
        const HostWeight wa = random_weight(rng, "q", s.n, s.k, spec);
        const HostWeight wb = random_weight(rng, "k", s.n + 2, s.k, spec);
        const HostWeight wc = random_weight(rng, "v", s.n + 6, s.k, spec);
        const HostWeight gate = random_weight(rng, "gate", s.n, s.k, spec);
        const HostWeight up = random_weight(rng, "up", s.n, s.k, spec);
        const auto x = random_floats(rng, size_t(s.rows * s.k), 3.0f);
        const NormOut want = norm_on(p.cpu, g, wa, wb, wc, gate, up, x, s.rows);
        const NormOut got = norm_on(*p.gpu, g, wa, wb, wc, gate, up, x, s.rows);
        // The fused norm sums x² in another order than the CPU, so its scale may differ in the
        // last bit; where the normalized x is then rounded to a 16-bit compute dtype, that can
        // move an operand by one 16-bit ulp (2^-8 relative for bf16), which a product of few
        // outputs shows: 1e-3 (measured up to 9e-5 with 9 outputs of 4096-long products on
        // lavapipe, above 2e-4 once on the H100), far below what a wrong scale or norm weight
        // gives (> 1e-2). Where nothing is rounded, kTol.
        const double tol = spec.compute == ComputeDType::F32 ? kTol : 1e-3;
        CHECK(checked_error(got.a, want.a) < tol);
        CHECK(checked_error(got.b, want.b) < tol);
        CHECK(checked_error(got.c, want.c) < tol);
        CHECK(checked_error(got.swiglu, want.swiglu) < tol);
      }
}

// Rope's inverse frequencies for a head of `head_dim` values (theta 10000).
}  // namespace

TEST_CASE(
    "vulkan: rms_norm fused into the products that read it (norm_matmuls, norm_matmul_swiglu)") {
  norm_sweep();
}

TEST_CASE("vulkan: rope_kv_store (rope on q and k, k and v into the caches)") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(73);
  struct Case {
    int heads, kv_heads, head_dim, rows, pos0;
  };
  // head_dim 6 takes the unfused path (not a multiple of 4).
  for (const Case c : {Case{1, 1, 4, 1, 0}, Case{4, 2, 8, 3, 5}, Case{8, 2, 64, 1, 300},
                       Case{32, 8, 128, 1, 4000}, Case{4, 4, 64, 5, 123456}, Case{2, 1, 6, 2, 7}}) {
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    CAPTURE(c.head_dim);
    CAPTURE(c.rows);
    CAPTURE(c.pos0);
    const std::vector<float> inv = rope_inv_freq(c.head_dim);
    const int64_t q_cols = int64_t(c.heads) * c.head_dim + 2;  // rows wider than the heads
    const int64_t kv_cols = int64_t(c.kv_heads) * c.head_dim;
    const int64_t context = c.pos0 + c.rows + 2;
    const auto q = random_floats(rng, size_t(c.rows * q_cols));
    const auto k = random_floats(rng, size_t(c.rows * kv_cols));
    const auto v = f16_rounded(random_floats(rng, size_t(c.rows * kv_cols)));
    const AttentionShape shape{c.heads, c.kv_heads, c.head_dim, 0};
    Io qs, kcs, vcs;
    for (int i = 0; i < 2; ++i) {
      Backend& b = *p.both[i];
      const Tensor it = b.alloc(DType::F32, 1, int64_t(inv.size()), Usage::Weights);
      const Tensor qt = b.alloc(DType::F32, c.rows, q_cols, Usage::Activations);
      const Tensor kt = b.alloc(DType::F32, c.rows, kv_cols, Usage::Activations);
      const Tensor vt = b.alloc(DType::F32, c.rows, kv_cols, Usage::Activations);
      const Tensor kc = b.alloc_kv(context, kv_cols), vc = b.alloc_kv(context, kv_cols);
      b.write(it, inv.data());
      b.write(qt, q.data());
      b.write(kt, k.data());
      b.write(vt, v.data());
      b.begin_step({c.pos0, c.rows});
      b.rope_kv_store(qt, kt, vt, kc, vc, shape, it);
      b.end_step();
      qs.out[i] = read_f32(b, qt);
      kcs.out[i] = read_f32(b, kc.slice_rows(c.pos0, c.rows));
      vcs.out[i] = read_f32(b, vc.slice_rows(c.pos0, c.rows));
    }
    CHECK(checked_error(qs.out[1], qs.out[0]) < kTol);
    CHECK(checked_error(kcs.out[1], f16_rounded(kcs.out[0])) < 1e-4);
    CHECK(checked_error(vcs.out[1], vcs.out[0]) == 0.0);
  }
}

TEST_CASE("vulkan: fused decode matmuls with the shared-memory reduction") {
  setenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC", "1", 1);
  fused_sweep(false);
  fused_sweep(true);
  norm_sweep();
  unsetenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC");
}

namespace {

// One decode step of rope + KV store + attention at position `pos` over a cache holding `pos`
// earlier positions (float16-exact, so that every backend's cache holds the same values):
// through the fused op, or through rope_kv_store and attention. Returns the attention output and
// the caches' rows [0, pos].
struct DecodeAttention {
  std::vector<float> out, k_cache, v_cache;
  uint64_t dispatches = 0;  // of the decode step
};
struct DecodeCase {
  int heads, kv_heads, head_dim, pos, window;
};
DecodeAttention decode_attention(Backend& b, bool fused, const DecodeCase& c,
                                 const std::vector<float>& inv, const std::vector<float>& earlier_k,
                                 const std::vector<float>& earlier_v, const std::vector<float>& q,
                                 const std::vector<float>& k, const std::vector<float>& v) {
  const int64_t q_cols = int64_t(c.heads) * c.head_dim, kv_cols = int64_t(c.kv_heads) * c.head_dim;
  const int64_t context = c.pos + 3;
  const Tensor it = b.alloc(DType::F32, 1, int64_t(inv.size()), Usage::Weights);
  const Tensor kc = b.alloc_kv(context, kv_cols), vc = b.alloc_kv(context, kv_cols);
  const Tensor qt = b.alloc(DType::F32, 1, q_cols, Usage::Activations);
  const Tensor kt = b.alloc(DType::F32, 1, kv_cols, Usage::Activations);
  const Tensor vt = b.alloc(DType::F32, 1, kv_cols, Usage::Activations);
  const Tensor out = b.alloc(DType::F32, 1, q_cols, Usage::Activations);
  b.write(it, inv.data());
  if (c.pos > 0) {
    const Tensor ek = b.alloc(DType::F32, c.pos, kv_cols, Usage::Activations);
    const Tensor ev = b.alloc(DType::F32, c.pos, kv_cols, Usage::Activations);
    b.write(ek, earlier_k.data());
    b.write(ev, earlier_v.data());
    b.begin_step({0, c.pos});
    b.kv_store(kc, vc, ek, ev);
    b.end_step();
  }
  b.write(qt, q.data());
  b.write(kt, k.data());
  b.write(vt, v.data());
  poison(b, out);
  const AttentionShape shape{c.heads, c.kv_heads, c.head_dim, c.window};
  const uint64_t dispatches = b.step_stats().dispatches;
  b.begin_step({c.pos, 1});
  if (fused)
    b.rope_kv_attention(out, qt, kt, vt, kc, vc, shape, it);
  else  // Backend's own: rope_kv_store, then attention
    b.Backend::rope_kv_attention(out, qt, kt, vt, kc, vc, shape, it);
  b.end_step();
  return {read_f32(b, out), read_f32(b, kc.slice_rows(0, c.pos + 1)),
          read_f32(b, vc.slice_rows(0, c.pos + 1)), b.step_stats().dispatches - dispatches};
}

}  // namespace

// Fused on Vulkan against the same steps unfused on Vulkan: identical (the new key and value are
// rounded to float16 as the cache holds them, and the sums run in the same order). Against the
// CPU, whose cache keeps the new key in float32: 1e-4 for the key rows (as rope_kv_store above)
// and 1e-3 for the output, whose one new key differs by that rounding.
TEST_CASE("vulkan: rope_kv_attention (decode: rope and the KV store fused into the attention)") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(74);
  // Tile and split boundaries (128 positions a tile, more than 64 tiles: 2 per split), GQA, the
  // largest head, a head size of 12 invocations per value row, a sliding window, and head_dim 12
  // (not a multiple of 8: the unfused ops).
  const DecodeCase cases[] = {{1, 1, 8, 0, 0},    {4, 2, 8, 5, 0},      {8, 2, 64, 127, 0},
                              {8, 2, 64, 128, 0}, {32, 8, 128, 300, 0}, {4, 4, 96, 200, 0},
                              {4, 1, 256, 40, 0}, {4, 2, 16, 50, 7},    {2, 2, 64, 8300, 0},
                              {4, 2, 12, 20, 0}};
  for (const DecodeCase& c : cases) {
    CAPTURE(c.heads);
    CAPTURE(c.kv_heads);
    CAPTURE(c.head_dim);
    CAPTURE(c.pos);
    CAPTURE(c.window);
    const std::vector<float> inv = rope_inv_freq(c.head_dim);
    const size_t kv_cols = size_t(c.kv_heads) * size_t(c.head_dim);
    const auto earlier_k = f16_rounded(random_floats(rng, size_t(c.pos) * kv_cols));
    const auto earlier_v = f16_rounded(random_floats(rng, size_t(c.pos) * kv_cols));
    const auto q = random_floats(rng, size_t(c.heads) * size_t(c.head_dim));
    const auto k = random_floats(rng, kv_cols);
    const auto v = f16_rounded(random_floats(rng, kv_cols));
    auto run = [&](Backend& b, bool fused) {
      return decode_attention(b, fused, c, inv, earlier_k, earlier_v, q, k, v);
    };
    const DecodeAttention cpu = run(p.cpu, true), unfused = run(*p.gpu, false),
                          fused = run(*p.gpu, true);
    // The fused op saves rope_kv's dispatch where the head size allows it.
    CHECK(fused.dispatches + (c.head_dim % 8 == 0 ? 1 : 0) == unfused.dispatches);
    CHECK(fused.out == unfused.out);
    CHECK(fused.k_cache == unfused.k_cache);
    CHECK(fused.v_cache == unfused.v_cache);
    CHECK(checked_error(fused.out, cpu.out) < 1e-3);
    CHECK(checked_error(fused.k_cache, f16_rounded(cpu.k_cache)) < 1e-4);
    CHECK(checked_error(fused.v_cache, cpu.v_cache) == 0.0);
  }
}

namespace {

// The MLP on backend `b`: norm_matmul_swiglu, then the down projection into the residual stream
// reading its output. With `overwrite`, the host writes new values into the SwiGLU output
// between the two, which the down projection must read (not what the SwiGLU kept for it).
std::vector<float> mlp_on(Backend& be, const HostWeight& g, const HostWeight& gate,
                          const HostWeight& up, const HostWeight& down, const std::vector<float>& x,
                          const std::vector<float>& acc, const std::vector<float>* overwrite) {
  const Tensor gt = be.upload_weight(g), gate_t = be.upload_weight(gate);
  const Tensor up_t = be.upload_weight(up), down_t = be.upload_weight(down);
  const int64_t d = g.cols, f = gate.rows;
  const Tensor xt = be.alloc(DType::F32, 1, d, Usage::Activations);
  const Tensor xn = be.alloc(DType::F32, 1, d, Usage::Activations);
  const Tensor h = be.alloc(DType::F32, 1, f, Usage::Activations);
  const Tensor scratch = be.alloc(DType::F32, 1, f, Usage::Activations);
  const Tensor resid = be.alloc(DType::F32, 1, d, Usage::Activations);
  const Tensor proj = be.alloc(DType::F32, 1, d, Usage::Activations);
  be.write(xt, x.data());
  be.write(resid, acc.data());
  for (Tensor t : {xn, h, scratch, proj}) poison(be, t);
  be.begin_step({0, 1});
  be.norm_matmul_swiglu(h, xt, gt, 1e-5f, xn, gate_t, up_t, scratch);
  if (overwrite) be.write(h, overwrite->data());
  be.matmul_add(resid, h, down_t, proj);
  be.end_step();
  return read_f32(be, resid);
}

}  // namespace

TEST_CASE("vulkan: the down projection reads the operands its SwiGLU kept, unless overwritten") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(75);
  struct Dims {
    int64_t d, f;
  };
  // f = 200 and 37: no 16-byte operand path for the down projection (f % 32), so nothing kept.
  for (const Dims s : {Dims{64, 96}, Dims{96, 160}, Dims{256, 704}, Dims{64, 200}, Dims{32, 37}})
    for (const WeightSpec& spec : kSpecs)
      for (bool overwrite : {false, true}) {
        CAPTURE(dtype_name(spec.dtype));
        CAPTURE(s.d);
        CAPTURE(s.f);
        CAPTURE(overwrite);
        if (packed(spec) && (s.d * s.f) % 2) continue;
        const HostWeight g = norm_weight(rng, DType::BF16, s.d);
        const HostWeight gate = random_weight(rng, "gate", s.f, s.d, spec);
        const HostWeight up = random_weight(rng, "up", s.f, s.d, spec);
        const HostWeight down = random_weight(rng, "down", s.d, s.f, spec);
        const auto x = random_floats(rng, size_t(s.d), 3.0f);
        // A residual of zeros, so that the product's error is not diluted by it.
        const std::vector<float> acc(size_t(s.d), 0.0f);
        const auto other = random_floats(rng, size_t(s.f));
        const auto* o = overwrite ? &other : nullptr;
        const auto want = mlp_on(p.cpu, g, gate, up, down, x, acc, o);
        const auto got = mlp_on(*p.gpu, g, gate, up, down, x, acc, o);
        // As norm_sweep: an operand rounded to a 16-bit compute dtype on both sides may differ by
        // one ulp where its float32 value does in the last bit.
        CHECK(checked_error(got, want) < (spec.compute == ComputeDType::F32 ? kTol : 1e-3));
      }
}

namespace {

// A decode step's attention block on backend `be` after a cached prefix of `pos` positions:
// q, k and v projected from the normalized x (norm_matmuls, which fix the rounding of the
// operands the attention then keeps), rope_kv_attention, and the o projection of its output
// (matmul_add onto a residual of zeros, so that the product's error is not diluted).
struct BlockWeights {
  HostWeight norm, q, k, v, o;
};
std::vector<float> attention_block_on(Backend& be, const BlockWeights& w, const DecodeCase& c,
                                      const std::vector<float>& earlier_k,
                                      const std::vector<float>& earlier_v,
                                      const std::vector<float>& x) {
  const int64_t d = int64_t(c.heads) * c.head_dim, kv_cols = int64_t(c.kv_heads) * c.head_dim;
  const Tensor g = be.upload_weight(w.norm), wq = be.upload_weight(w.q);
  const Tensor wk = be.upload_weight(w.k), wv = be.upload_weight(w.v);
  const Tensor wo = be.upload_weight(w.o);
  const std::vector<float> inv = rope_inv_freq(c.head_dim);
  const Tensor it = be.alloc(DType::F32, 1, int64_t(inv.size()), Usage::Weights);
  const Tensor kc = be.alloc_kv(c.pos + 1, kv_cols), vc = be.alloc_kv(c.pos + 1, kv_cols);
  const Tensor ek = be.alloc(DType::F32, c.pos, kv_cols, Usage::Activations);
  const Tensor ev = be.alloc(DType::F32, c.pos, kv_cols, Usage::Activations);
  Tensor t[8];  // x, xn, q, k, v, att, resid, proj
  for (int i = 0; i < 8; ++i)
    t[i] = be.alloc(DType::F32, 1, i == 3 || i == 4 ? kv_cols : d, Usage::Activations);
  const auto [xt, xn, qt, kt, vt, att, resid, proj] = t;
  be.write(it, inv.data());
  be.write(ek, earlier_k.data());
  be.write(ev, earlier_v.data());
  be.begin_step({0, c.pos});
  be.kv_store(kc, vc, ek, ev);
  be.end_step();
  be.write(xt, x.data());
  const std::vector<float> zeros(size_t(d), 0.0f);
  be.write(resid, zeros.data());
  for (Tensor p : {xn, qt, kt, vt, att, proj}) poison(be, p);
  be.begin_step({c.pos, 1});
  be.norm_matmuls(xt, g, 1e-5f, xn, {{qt, wq}, {kt, wk}, {vt, wv}});
  be.rope_kv_attention(att, qt, kt, vt, kc, vc, {c.heads, c.kv_heads, c.head_dim, c.window}, it);
  be.matmul_add(resid, att, wo, proj);
  be.end_step();
  return read_f32(be, resid);
}

}  // namespace

// The attention writes its decode output also as the o projection's operands, from the
// attention itself (one split) or from the workgroup that merges the splits (several: 1 500
// positions).
TEST_CASE("vulkan: the o projection reads the operands the decode attention kept") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(76);
  for (const DecodeCase c : {DecodeCase{4, 2, 64, 5, 0}, DecodeCase{4, 2, 64, 1500, 0}})
    for (const WeightSpec& spec : kSpecs) {
      CAPTURE(dtype_name(spec.dtype));
      CAPTURE(c.pos);
      const int64_t d = int64_t(c.heads) * c.head_dim, kv_cols = int64_t(c.kv_heads) * c.head_dim;
      const BlockWeights w{norm_weight(rng, DType::BF16, d), random_weight(rng, "q", d, d, spec),
                           random_weight(rng, "k", kv_cols, d, spec),
                           random_weight(rng, "v", kv_cols, d, spec),
                           random_weight(rng, "o", d, d, spec)};
      const auto earlier_k = random_floats(rng, size_t(c.pos * kv_cols));
      const auto earlier_v = f16_rounded(random_floats(rng, size_t(c.pos * kv_cols)));
      const auto x = random_floats(rng, size_t(d), 3.0f);
      const auto want = attention_block_on(p.cpu, w, c, earlier_k, earlier_v, x);
      const auto got = attention_block_on(*p.gpu, w, c, earlier_k, earlier_v, x);
      // The new key is rounded to float16 in the GPU's cache only (measured up to 2e-4 here, as
      // in rope_kv_attention's test), and operands rounded to 16 bits may differ by one ulp (as
      // in norm_sweep): 1e-3.
      CHECK(checked_error(got, want) < 1e-3);
    }
}

namespace {

// `layers` layers (each with these weights and a KV cache of its own) of a step of `rows` rows
// from position 0 on backend `be`, as Model::run_layers runs them: the attention block
// (norm_matmuls into q, k, v; rope_kv_attention; the o projection into the residual) and the MLP
// (norm_matmul_swiglu; the down projection into the residual). Where the products run on the
// matrix units, the norms, the attention and the SwiGLU also write the next products' operands.
struct LayerWeights {
  HostWeight attn_norm, q, k, v, o, mlp_norm, gate, up, down;
};
std::vector<float> layers_on(Backend& be, const LayerWeights& w, const DecodeCase& c, int rows,
                             ComputeDType compute, const std::vector<float>& x, int layers = 1) {
  const int64_t d = int64_t(c.heads) * c.head_dim, kv_cols = int64_t(c.kv_heads) * c.head_dim;
  const int64_t f = w.gate.rows;
  Tensor g1 = be.upload_weight(w.attn_norm), wq = be.upload_weight(w.q);
  Tensor wk = be.upload_weight(w.k), wv = be.upload_weight(w.v), wo = be.upload_weight(w.o);
  Tensor g2 = be.upload_weight(w.mlp_norm), gate = be.upload_weight(w.gate);
  Tensor up = be.upload_weight(w.up), down = be.upload_weight(w.down);
  const std::vector<float> inv = rope_inv_freq(c.head_dim);
  const Tensor it = be.alloc(DType::F32, 1, int64_t(inv.size()), Usage::Weights);
  std::vector<Tensor> kc, vc;
  for (int i = 0; i < layers; ++i) {
    kc.push_back(be.alloc_kv(rows, kv_cols));
    vc.push_back(be.alloc_kv(rows, kv_cols));
  }
  auto act = [&](int64_t cols) { return be.alloc(DType::F32, rows, cols, Usage::Activations); };
  const Tensor xt = act(d), xn = act(d), qt = act(d), kt = act(kv_cols), vt = act(kv_cols);
  const Tensor att = act(d), proj = act(d), h = act(f), scratch = act(f);
  be.write(it, inv.data());
  be.write(xt, x.data());
  for (Tensor t : {xn, qt, kt, vt, att, proj, h, scratch}) poison(be, t);
  const AttentionShape shape{c.heads, c.kv_heads, c.head_dim, c.window, compute};
  be.begin_step({0, rows});
  for (int i = 0; i < layers; ++i) {
    be.norm_matmuls(xt, g1, 1e-5f, xn, {{qt, wq}, {kt, wk}, {vt, wv}});
    be.rope_kv_attention(att, qt, kt, vt, kc[size_t(i)], vc[size_t(i)], shape, it);
    be.matmul_add(xt, att, wo, proj);
    be.norm_matmul_swiglu(h, xt, g2, 1e-5f, xn, gate, up, scratch);
    be.matmul_add(xt, h, down, proj);
  }
  be.end_step();
  return read_f32(be, xt);
}

// The layer tests' shape: 4 heads of 64, 2 KV heads, an MLP of 704.
const DecodeCase kLayerCase{4, 2, 64, 0, 0};
constexpr int64_t kLayerD = 256, kLayerKv = 128, kLayerF = 704;

// A layer of that shape with weights stored as `spec`, the residual products' (o, down) drawn
// at `out_scale`.
LayerWeights random_layer(std::mt19937& rng, const WeightSpec& spec, float out_scale = 0.05f) {
  const int64_t d = kLayerD, kv = kLayerKv, f = kLayerF;
  return {norm_weight(rng, DType::BF16, d),
          random_weight(rng, "q", d, d, spec),
          random_weight(rng, "k", kv, d, spec),
          random_weight(rng, "v", kv, d, spec),
          random_weight(rng, "o", d, d, spec, out_scale),
          norm_weight(rng, DType::BF16, d),
          random_weight(rng, "gate", f, d, spec),
          random_weight(rng, "up", f, d, spec),
          random_weight(rng, "down", d, f, spec, out_scale)};
}

// What the layers added to x: compared without x, which would dilute the errors.
std::vector<float> added(std::vector<float> out, const std::vector<float>& x) {
  for (size_t i = 0; i < out.size(); ++i) out[i] -= x[i];
  return out;
}

}  // namespace

// A prompt layer against the CPU: rows x heads >= 512 with 64-wide heads, so that a device with
// cooperative matrices runs the attention on them (attention_coopmat.comp) and every product
// reads the operands its producer wrote (the norms, the attention, the SwiGLU), or converts x
// itself where the compute dtype is float32.
TEST_CASE("vulkan: a prompt layer's products read the operands their producers wrote") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(77);
  const int rows = 130;
  for (const WeightSpec& spec : {kSpecs[3], kSpecs[4], kSpecs[5]}) {
    CAPTURE(dtype_name(spec.dtype));
    CAPTURE(compute_dtype_name(spec.compute));
    const LayerWeights w = random_layer(rng, spec);
    const auto x = random_floats(rng, size_t(rows * kLayerD), 3.0f);
    const auto want = added(layers_on(p.cpu, w, kLayerCase, rows, spec.compute, x), x);
    const auto got = added(layers_on(*p.gpu, w, kLayerCase, rows, spec.compute, x), x);
    // 16-bit compute: the matrix units' attention rounds q and the probabilities to float16
    // (3e-3 in its own test), and operands rounded to 16 bits may differ by one ulp where their
    // float32 values differ in the last bit (norm_sweep): 5e-3. Float32 compute: 1e-3 (the
    // float16 KV cache against the CPU's float32 one).
    CHECK(checked_error(got, want) < (spec.compute == ComputeDType::F32 ? 1e-3 : 5e-3));
  }
}

// Decode through two layers in one step: where the model computes in bfloat16, the o and down
// projections' residual products also start the next rms_norm (g * x as operands, and a
// fixed-point sum of x's squares), and the products after them scale by its scale: three of the
// four norms fold (the first follows no residual product), one dispatch fewer each. Against the
// CPU for three weight kinds (float16 and float32 compute do not fold), with x from 1e-4 to 1e5
// in size so that every word of the sum takes part: mean(x²) is about eps at 3e-3, and eps
// outweighs it at 1e-4.
TEST_CASE("vulkan: decode folds each rms_norm into the residual product before it") {
  auto gpu = vulkan_or_skip();
  if (!gpu) return;
  Pair p(std::move(gpu));
  std::mt19937 rng(78);
  for (const float size : {3.0f, 3e-3f, 1e-4f, 1e5f}) {
    // The residual products' weights scaled with x, so that the layers add values of x's size
    // (which the comparison without x then measures to float32's precision).
    const float out_scale = 0.05f * size / 3.0f;
    uint64_t dispatches[3] = {};
    for (int i = 0; i < 3; ++i) {
      const WeightSpec& spec = kSpecs[3 + i];
      CAPTURE(size);
      CAPTURE(dtype_name(spec.dtype));
      CAPTURE(compute_dtype_name(spec.compute));
      const LayerWeights w = random_layer(rng, spec, out_scale);
      const auto x = random_floats(rng, size_t(kLayerD), size);
      const auto want = added(layers_on(p.cpu, w, kLayerCase, 1, spec.compute, x, 2), x);
      const StepStats before = p.gpu->step_stats();
      const auto got = added(layers_on(*p.gpu, w, kLayerCase, 1, spec.compute, x, 2), x);
      dispatches[i] = (p.gpu->step_stats() - before).dispatches;
      // As the prompt layer's test: 5e-3 for 16-bit compute (the folded norm rounds g * x, not
      // g * x * scale, to bfloat16: one rounding of the same size), 1e-3 for float32.
      CHECK(checked_error(got, want) < (spec.compute == ComputeDType::F32 ? 1e-3 : 5e-3));
    }
    // The bfloat16 step runs three dispatches fewer than the float16 one.
    CHECK(dispatches[0] + 3 == dispatches[1]);
  }
}
