// Our encoder and decoder against vectors made by the real bitsandbytes (tests/fixtures/bnb).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>

#include "engine/cpu/cpu_backend.h"
#include "loader/bnb_checkpoint.h"
#include "loader/quantize.h"
#include "tests/quant_fixture.h"

using namespace nibble;
using namespace nibble::test;

namespace {

bool same_bits(const void* a, const void* b, size_t bytes) {
  return std::memcmp(a, b, bytes) == 0;
}

std::vector<float> input_values(const HostWeight& w) {
  std::vector<float> v(size_t(w.rows * w.cols));
  for (size_t i = 0; i < v.size(); ++i) v[i] = w.at(int64_t(i));
  return v;
}

QuantState fixture_state(const BnbCase& c) {
  return read_bnb_quant_state(
      [&](const std::string& name) {
        return c.file->find(name == "packed" ? "packed" : "state." + name.substr(7));
      },
      "packed");
}

}  // namespace

TEST_CASE("bnb fixtures: every committed case is found") {
  // 96 small cases plus two of the 128x512 ones (1024 blocks: four nested blocks).
  CHECK(bnb_cases().size() == 98);
}

TEST_CASE("bnb fixtures: quantize_4bit reproduces packed bytes and state") {
  int blocks_checked = 0;
  for (const BnbCase& c : bnb_cases()) {
    CAPTURE(c.name());
    const HostWeight input = c.weight("input");
    const QuantizedWeight q = quantize_4bit(input, c.type(), c.blocksize(), c.double_quant());
    const QuantState& s = q.state;

    CHECK(same_bits(s.code.data(), c.tensor("state.quant_map").data, 64));
    if (c.double_quant()) {
      CHECK(s.offset == c.meta["state"]["nested_offset"].get<float>());
      CHECK(s.absmax_q.size() == c.tensor("state.absmax").nbytes);
      CHECK(same_bits(s.absmax_q.data(), c.tensor("state.absmax").data, s.absmax_q.size()));
      CHECK(s.nested_absmax.size() * 4 == c.tensor("state.nested_absmax").nbytes);
      CHECK(same_bits(s.nested_absmax.data(), c.tensor("state.nested_absmax").data,
                      s.nested_absmax.size() * 4));
      CHECK(same_bits(s.nested_code.data(), c.tensor("state.nested_quant_map").data, 1024));
    } else {
      CHECK(s.absmax.size() * 4 == c.tensor("state.absmax").nbytes);
      CHECK(same_bits(s.absmax.data(), c.tensor("state.absmax").data, s.absmax.size() * 4));
    }
    const TensorInfo& state_json = c.tensor(std::string("state.quant_state.bitsandbytes__") +
                                            (c.type() == QuantType::NF4 ? "nf4" : "fp4"));
    CHECK(bnb_quant_state_json(s) ==
          std::string(reinterpret_cast<const char*>(state_json.data), state_json.nbytes));

    // Packed codes, compared block by block to say which block differs. Some blocks (5 of the
    // 4448) depend on bnb_reciprocal taking the GPU's approximate reciprocal, not 1/absmax.
    const TensorInfo& packed = c.tensor("packed");
    REQUIRE(packed.nbytes == q.packed.size());
    const int64_t n = s.numel(), bs = c.blocksize();
    for (int64_t b = 0; b * bs < n; ++b, ++blocks_checked) {
      const int64_t first = b * bs / 2, end = std::min((n + 1) / 2, (b + 1) * bs / 2);
      CAPTURE(b);
      CHECK(same_bits(q.packed.data() + first, packed.data + first, size_t(end - first)));
    }
  }
  CHECK(blocks_checked == 4448);
}

TEST_CASE("bnb fixtures: dequantize reproduces bitsandbytes' dequantized values") {
  for (const BnbCase& c : bnb_cases()) {
    CAPTURE(c.name());
    const QuantState s = fixture_state(c);
    const HostWeight ref = c.weight("dequantized");
    REQUIRE(ref.dtype == c.weight("input").dtype);
    std::vector<float> out(size_t(s.numel()));
    dequantize(c.tensor("packed").data, s, 0, s.numel(), out.data());
    int mismatches = 0;
    for (size_t i = 0; i < out.size(); ++i) {
      // bitsandbytes dequantizes into the input dtype: compare after the same rounding (as
      // values, so that its -0 for code 8 of FP4 equals our +0).
      const float ours = ref.dtype == DType::F32   ? out[i]
                         : ref.dtype == DType::F16 ? f16_to_f32(f32_to_f16(out[i]))
                                                   : bf16_to_f32(f32_to_bf16(out[i]));
      mismatches += ours != ref.at(int64_t(i));
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("bnb fixtures: CPU dequant-matmul matches bnb.matmul_4bit within bf16/fp16 rounding") {
  // bitsandbytes' gemv rounds the dequantized weight, each product and the output to the 16-bit
  // compute dtype and sums in float32; our reference rounds operands only and sums in float32.
  // Tolerance: |ours - theirs| below 2^-7 (bf16) or 2^-10 (fp16) of sum |x * w|, two units of
  // the dtype's rounding, for every output.
  int compared = 0;
  for (const BnbCase& c : bnb_cases()) {
    if (!c.file->find("gemv_y")) continue;
    CAPTURE(c.name());
    const QuantState s = fixture_state(c);
    const HostWeight xw = c.weight("gemv_x"), yw = c.weight("gemv_y");
    const bool bf16 = xw.dtype == DType::BF16;

    HostWeight w;
    w.name = c.name();
    w.dtype = s.type == QuantType::NF4 ? DType::NF4 : DType::FP4;
    w.rows = s.shape[0];
    w.cols = s.shape[1];
    w.data = c.tensor("packed").data;
    w.nbytes = c.tensor("packed").nbytes;
    w.quant = std::make_shared<QuantState>(s);
    w.compute = bf16 ? ComputeDType::BF16 : ComputeDType::F16;

    CpuBackend cpu(1);
    const Tensor wt = cpu.upload_weight(w);
    const Tensor x = cpu.alloc(DType::F32, 1, w.cols, Usage::Activations);
    const Tensor y = cpu.alloc(DType::F32, 1, w.rows, Usage::Activations);
    const std::vector<float> xv = input_values(xw);
    REQUIRE(int64_t(xv.size()) == w.cols);
    cpu.write(x, xv.data());
    std::vector<float> out(size_t(w.rows), NAN);
    cpu.begin_step({0, 1});
    cpu.matmul(y, x, wt);
    cpu.end_step();
    cpu.read(y, out.data());

    // Per output, the error against the scale a dot product's rounding error is measured in,
    // sum_k |x_k * w_jk| (a single output of cancelling terms has no useful relative error).
    std::vector<float> row(size_t(w.cols));
    double worst = 0;
    for (int64_t j = 0; j < w.rows; ++j) {
      dequantize(w.data, s, j * w.cols, w.cols, row.data());
      double scale = 0;
      for (int64_t k = 0; k < w.cols; ++k)
        scale += std::fabs(double(xv[size_t(k)]) * row[size_t(k)]);
      worst = std::max(worst, std::fabs(out[size_t(j)] - yw.at(j)) / std::max(scale, 1e-30));
    }
    CHECK(worst < (bf16 ? 1.0 / 128 : 1.0 / 1024));
    ++compared;
  }
  CHECK(compared > 0);
}
