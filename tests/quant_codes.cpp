// The 4-bit format's pieces: code tables, decision midpoints, packing, edge blocks, errors,
// thread-count invariance, the torch mean and QuantConfig.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "loader/quant_config.h"
#include "loader/quantize.h"
#include "tests/loader_test_util.h"
#include "tests/quant_fixture.h"

using namespace nibble;
using namespace nibble::test;

namespace {

// An in-memory float32 weight [rows, cols].
struct F32Weight {
  std::vector<float> values;
  HostWeight w;
  F32Weight(int64_t rows, int64_t cols, std::vector<float> v, std::string name = "test.weight")
      : values(std::move(v)) {
    w.name = std::move(name);
    w.dtype = DType::F32;
    w.rows = rows;
    w.cols = cols;
    w.data = reinterpret_cast<const uint8_t*>(values.data());
    w.nbytes = values.size() * 4;
  }
};

int nibble_at(const std::vector<uint8_t>& packed, int64_t i) {
  return (i & 1) ? (packed[size_t(i / 2)] & 15) : (packed[size_t(i / 2)] >> 4);
}

// The index of the code nearest to x (the lower one on an exact tie).
int nearest(const float* code, int n, float x) {
  int best = 0;
  for (int i = 1; i < n; ++i)
    if (std::fabs(x - code[i]) < std::fabs(x - code[best])) best = i;
  return best;
}

}  // namespace

TEST_CASE("quant codes: NF4, FP4 and the dynamic map equal bitsandbytes' tables bit for bit") {
  const auto& index = bnb_index();
  for (QuantType t : {QuantType::NF4, QuantType::FP4}) {
    const auto ref = index[t == QuantType::NF4 ? "nf4_code" : "fp4_code"].get<std::vector<float>>();
    REQUIRE(ref.size() == 16);
    CHECK(std::memcmp(quant_code(t).data(), ref.data(), 64) == 0);
  }
  CHECK(!std::signbit(quant_code(QuantType::FP4)[8]));  // bitsandbytes stores +0 there
  const auto dyn = index["dynamic_map_signed_256"].get<std::vector<float>>();
  REQUIRE(dyn.size() == 256);
  CHECK(std::memcmp(dynamic_map_signed().data(), dyn.data(), 1024) == 0);
}

TEST_CASE("quant codes: the decision trees pick the nearest code, strict > at midpoints") {
  for (QuantType t : {QuantType::NF4, QuantType::FP4}) {
    CAPTURE(int(t));
    const auto& code = quant_code(t);
    // Values away from midpoints go to the nearest code.
    for (int i = -20000; i <= 20000; ++i) {
      const float x = float(i) / 20000.0f;
      const uint8_t got = quantize_4bit_index(t, x);
      const float d_got = std::fabs(x - code[got]);
      const float d_best = std::fabs(x - code[size_t(nearest(code.data(), 16, x))]);
      if (d_got != d_best) CHECK(d_got - d_best < 1e-6f);  // only within rounding of a midpoint
    }
    // NaN (an all-zero block scales 0 by 1/0) falls through every comparison to index 0.
    CHECK(quantize_4bit_index(t, NAN) == 0);
  }
  // Exactly on a threshold the value goes to the lower code (strict `>`).
  CHECK(quantize_4bit_index(QuantType::NF4, 0.03979014977812767f) == 7);
  CHECK(quantize_4bit_index(QuantType::NF4, std::nextafter(0.03979014977812767f, 1.0f)) == 8);
  CHECK(quantize_4bit_index(QuantType::NF4, 0.0f) == 7);
  CHECK(quantize_4bit_index(QuantType::FP4, 0.0f) == 0);
  CHECK(quantize_4bit_index(QuantType::FP4, -0.0f) == 0);  // -0 < 0 is false: no sign bit
  CHECK(quantize_4bit_index(QuantType::FP4, -1.0f) == 0b1011);
  CHECK(quantize_4bit_index(QuantType::FP4, 0.0859375f) == 0b0001);
}

TEST_CASE("quant codes: the 8-bit search picks the nearest dynamic-map code") {
  const auto& code = dynamic_map_signed();
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (int i = 0; i < 20000; ++i) {
    const float x = i < 256 ? code[size_t(i)] : u(rng);
    const uint8_t got = quantize_8bit_index(code, x);
    const float d_got = std::fabs(x - code[got]);
    const float d_best = std::fabs(x - code[size_t(nearest(code.data(), 256, x))]);
    CHECK(d_got - d_best <= 1e-7f);
    if (i < 256) CHECK(got == i);  // every code maps to itself
  }
  CHECK(quantize_8bit_index(code, NAN) == 0);
}

TEST_CASE("quantize_4bit: packing order, odd element counts, all-zero blocks") {
  // 65 elements: one full block whose first 64 values are zero, then a 1-element block.
  std::vector<float> v(129, 0.0f);
  v[64] = 0.5f;
  v[65] = -1.0f;
  v[128] = 2.0f;
  const F32Weight w(1, 129, v);
  for (QuantType t : {QuantType::NF4, QuantType::FP4}) {
    const QuantizedWeight q = quantize_4bit(w.w, t, 64, false);
    REQUIRE(q.packed.size() == 65);
    REQUIRE(q.state.absmax.size() == 3);
    CHECK(q.state.absmax[0] == 0.0f);  // all-zero block: absmax 0, every code 0 (NaN path)
    for (int i = 0; i < 64; ++i) CHECK(nibble_at(q.packed, i) == 0);
    CHECK(q.state.absmax[1] == 1.0f);
    // Even element in the high nibble.
    CHECK(q.packed[32] == (quantize_4bit_index(t, 0.5f) << 4 | quantize_4bit_index(t, -1.0f)));
    // The lone last element is padded with the code of 0 * 1/absmax.
    CHECK(q.state.absmax[2] == 2.0f);
    CHECK(nibble_at(q.packed, 128) == quantize_4bit_index(t, 1.0f));
    CHECK(nibble_at(q.packed, 129) == quantize_4bit_index(t, 0.0f));

    std::vector<float> out(129, NAN);
    dequantize(q.packed.data(), q.state, 0, 129, out.data());
    for (int i = 0; i < 64; ++i) CHECK(out[size_t(i)] == 0.0f);
    CHECK(out[64] == doctest::Approx(t == QuantType::NF4 ? 0.4407098f : 0.5f));
    CHECK(out[65] == -1.0f);
    CHECK(out[128] == 2.0f);
    // A sub-range starting mid-block decodes the same values.
    std::vector<float> part(3);
    dequantize(q.packed.data(), q.state, 63, 3, part.data());
    CHECK(std::memcmp(part.data(), out.data() + 63, 12) == 0);
  }
}

TEST_CASE("quantize_4bit: inf and NaN are errors naming the tensor") {
  for (float bad : {INFINITY, -INFINITY, NAN}) {
    std::vector<float> v(300, 0.25f);
    v[200] = bad;
    const F32Weight w(3, 100, v, "model.layers.3.mlp.up_proj.weight");
    const std::string msg = error_of([&] { quantize_4bit(w.w, QuantType::NF4, 64, true, 2); });
    CHECK(msg.find("model.layers.3.mlp.up_proj.weight") != std::string::npos);
    CHECK(msg.find("element 200") != std::string::npos);
    CHECK(msg.find(std::isnan(bad) ? "NaN" : "inf") != std::string::npos);
  }
}

TEST_CASE("bnb_reciprocal: the GPU's rcp.approx.ftz - faithful, by significand, ftz at the ends") {
  // For every absmax a 16-bit weight can have (fp16's 1024 significands; exponents of fp16 and
  // some of bf16's range): one of the two float32 neighbours of the exact 1/absmax, the same
  // choice at every exponent, and the other neighbour than 1.0f / absmax for as many
  // significands as tools/bnb_rcp_table.cu found on the H100 (130, 20 of them bf16's).
  int other_way = 0, other_way_bf16 = 0;
  for (int k = 0; k < 1024; ++k) {
    CAPTURE(k);
    const float significand = 1.0f + float(k) / 1024.0f;
    const float unit = bnb_reciprocal(significand);
    other_way += unit != 1.0f / significand;
    other_way_bf16 += k % 8 == 0 && unit != 1.0f / significand;
    for (int e : {-126, -100, -24, -14, -7, -1, 0, 1, 5, 15, 100, 125}) {
      CAPTURE(e);
      const float x = std::ldexp(significand, e);
      const float r = bnb_reciprocal(x);
      CHECK(r == std::ldexp(unit, -e));
      const double exact = 1.0 / double(x);
      CHECK(std::fabs(double(r) - exact) < double(std::nextafter(r, INFINITY) - r));
    }
  }
  CHECK(other_way == 130);
  CHECK(other_way_bf16 == 20);
  // A significand of more than 11 bits (float32 weights) keeps the correctly rounded value.
  const float wide = std::nextafter(1.5f, 2.0f);
  CHECK(bnb_reciprocal(wide) == 1.0f / wide);
  // Flush to zero: a subnormal or zero absmax reads as 0 (1/0 = inf), a subnormal result is +0.
  CHECK(bnb_reciprocal(0.0f) == INFINITY);
  CHECK(bnb_reciprocal(std::ldexp(1.0f, -130)) == INFINITY);
  CHECK(bnb_reciprocal(std::ldexp(1.0f, 126)) == std::ldexp(1.0f, -126));
  CHECK(bnb_reciprocal(std::ldexp(1.5f, 126)) == 0.0f);
  CHECK(bnb_reciprocal(std::numeric_limits<float>::max()) == 0.0f);
}

TEST_CASE("quantize_4bit: subnormals are zeros of the same sign, as in bitsandbytes' fast math") {
  // Two bf16 blocks of 4 run through kQuantizeBlockwise's statements on the H100
  // (tools/bnb_rcp_table.cu): {2^-130, -2^-129, 0, -0} gave absmax 0 and NaN for every element;
  // {1024, 2^-120, -2^-120, -2^-130} gave absmax 1024 and 1, +0, -0, -0 (products below 2^-126
  // and the subnormal input flushed).
  const std::vector<uint16_t> bf16 = {0x0008, 0x8010, 0x0000, 0x8000,
                                      0x4480, 0x0380, 0x8380, 0x8008};
  HostWeight w;
  w.name = "w";
  w.dtype = DType::BF16;
  w.rows = 1;
  w.cols = 8;
  w.data = reinterpret_cast<const uint8_t*>(bf16.data());
  w.nbytes = 16;
  const float gpu_scaled[8] = {NAN, NAN, NAN, NAN, 1.0f, 0.0f, -0.0f, -0.0f};
  for (QuantType t : {QuantType::NF4, QuantType::FP4}) {
    CAPTURE(int(t));
    const QuantizedWeight q = quantize_4bit(w, t, 4, false);
    REQUIRE(q.state.absmax.size() == 2);
    CHECK(q.state.absmax[0] == 0.0f);
    CHECK(q.state.absmax[1] == 1024.0f);
    for (int i = 0; i < 8; ++i) {
      CAPTURE(i);
      CHECK(nibble_at(q.packed, i) == quantize_4bit_index(t, gpu_scaled[i]));
    }
  }
  // FP4 tells a negative subnormal (sign bit set) from the -0 bitsandbytes sees.
  CHECK(quantize_4bit_index(QuantType::FP4, -std::ldexp(1.0f, -140)) == 0b1000);
  CHECK(quantize_4bit_index(QuantType::FP4, -0.0f) == 0b0000);
}

TEST_CASE("quantize_4bit: bytes do not depend on the thread count") {
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 0.02f);
  std::vector<uint16_t> bf16(size_t(301) * 999);
  for (uint16_t& h : bf16) h = f32_to_bf16(normal(rng));
  HostWeight w;
  w.name = "w";
  w.dtype = DType::BF16;
  w.rows = 301;
  w.cols = 999;
  w.data = reinterpret_cast<const uint8_t*>(bf16.data());
  w.nbytes = bf16.size() * 2;
  const QuantizedWeight one = quantize_4bit(w, QuantType::NF4, 64, true, 1);
  for (int threads : {2, 3, 8}) {
    const QuantizedWeight q = quantize_4bit(w, QuantType::NF4, 64, true, threads);
    CHECK(q.packed == one.packed);
    CHECK(q.state.absmax_q == one.state.absmax_q);
    CHECK(q.state.nested_absmax == one.state.nested_absmax);
    CHECK(q.state.offset == one.state.offset);
  }
}

TEST_CASE("torch_cuda_mean: close to the exact mean at every size, incl. multi-block sums") {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(0.0f, 0.1f);
  for (int64_t n : {1, 3, 64, 129, 1000, 4097, 300000}) {
    CAPTURE(n);
    std::vector<float> v(static_cast<size_t>(n));
    double exact = 0;
    for (float& x : v) exact += (x = u(rng));
    exact /= double(n);
    CHECK(torch_cuda_mean(v.data(), n) == doctest::Approx(exact).epsilon(1e-5));
  }
}

TEST_CASE("QuantConfig: validate and describe") {
  QuantConfig q;
  CHECK_NOTHROW(q.validate());
  CHECK(q.describe() == "nf4 + double quant, bf16 compute, blocksize 64");
  for (int bs : {64, 128, 256, 4096}) {
    q.blocksize = bs;
    CHECK_NOTHROW(q.validate());
  }
  for (int bs : {0, 32, 100, 8192, -64}) {
    q.blocksize = bs;
    CHECK(error_of([&] { q.validate(); }).find("power of two from 64 to 4096") !=
          std::string::npos);
  }
  q.blocksize = 128;
  q.type = QuantType::FP4;
  q.double_quant = false;
  q.compute = ComputeDType::F16;
  CHECK(q.describe() == "fp4, fp16 compute, blocksize 128");
  q.enabled = false;
  CHECK(q.describe().find("no quantization") != std::string::npos);
}
