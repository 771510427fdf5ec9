// The CPU reference's 4-bit path against the plain definitions, bit for bit: dequantize (one
// lookup table per block, two codes per byte) and the matmul (rows several at a time) must give
// exactly what one element and one row at a time give, since every GPU test compares with them.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>

#include "engine/cpu/cpu_backend.h"
#include "loader/quantize.h"

using namespace nibble;

namespace {

// A random float32 weight quantized as the loader would, with its packed bytes kept alive.
HostWeight random_quantized(std::mt19937& rng, int64_t rows, int64_t cols, QuantType type,
                            int blocksize, bool double_quant, ComputeDType compute) {
  std::normal_distribution<float> normal(0.0f, 0.05f);
  std::vector<float> values(size_t(rows * cols));
  for (float& v : values) v = normal(rng);
  HostWeight src;
  src.name = "test.weight";
  src.dtype = DType::F32;
  src.rows = rows;
  src.cols = cols;
  src.data = reinterpret_cast<const uint8_t*>(values.data());
  src.nbytes = values.size() * 4;
  auto q = std::make_shared<QuantizedWeight>(quantize_4bit(src, type, blocksize, double_quant, 1));
  HostWeight w;
  w.name = src.name;
  w.dtype = type == QuantType::NF4 ? DType::NF4 : DType::FP4;
  w.rows = rows;
  w.cols = cols;
  w.data = q->packed.data();
  w.nbytes = q->packed.size();
  w.quant = std::shared_ptr<const QuantState>(q, &q->state);
  w.owner = q;
  w.compute = compute;
  return w;
}

// Element e by the format's definition: its nibble's code times its block's absmax, rounded.
// Element e of a 4-bit weight: code * absmax in float32, rounded to the compute dtype if `round`.
float element(const HostWeight& w, int64_t e, bool round = true) {
  const uint8_t byte = w.data[e / 2];
  const int q = e % 2 ? byte & 15 : byte >> 4;
  const float v = w.quant->code[size_t(q)] * w.quant->block_absmax(e / w.quant->blocksize);
  return round ? round_to(w.compute, v) : v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

}  // namespace

TEST_CASE("dequantize: per-block table and byte unpacking equal the per-element definition") {
  std::mt19937 rng(5);
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (bool dq : {false, true})
      for (int blocksize : {2, 64, 128})
        for (ComputeDType compute : {ComputeDType::F32, ComputeDType::F16, ComputeDType::BF16}) {
          CAPTURE(int(type));
          CAPTURE(dq);
          CAPTURE(blocksize);
          CAPTURE(int(compute));
          const HostWeight w = random_quantized(rng, 7, 99, type, blocksize, dq, compute);
          // Ranges starting and ending on odd and even elements, within and across blocks.
          const int64_t n = w.rows * w.cols;
          for (auto [begin, count] : {std::pair<int64_t, int64_t>{0, n},
                                      {1, 1},
                                      {63, 3},
                                      {64, 64},
                                      {99, 99},
                                      {129, 256},
                                      {n - 1, 1},
                                      {n - 200, 199}}) {
            CAPTURE(begin);
            CAPTURE(count);
            std::vector<float> got(size_t(count), NAN), want(static_cast<size_t>(count));
            dequantize(w.data, *w.quant, begin, count, got.data(), compute);
            for (int64_t i = 0; i < count; ++i) want[size_t(i)] = element(w, begin + i);
            CHECK(same_bits(got, want));
          }
        }
}

TEST_CASE("CPU matmul (4-bit and bf16): every output is the in-order float32 dot product") {
  // One input row takes the GEMV's operands (the 4-bit weight unrounded), several the matmul's.
  // Shapes with row counts that are not multiples of the rows computed together, columns that
  // are not multiples of the block (blocks then straddle rows), 1..5 input rows, 1 and 3 threads.
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  struct Shape {
    int64_t rows, cols, n;
  };
  for (const Shape shape :
       {Shape{1, 64, 1}, Shape{5, 100, 2}, Shape{13, 200, 5}, Shape{64, 96, 3}, Shape{13, 200, 1}})
    for (QuantType type : {QuantType::NF4, QuantType::FP4})
      for (ComputeDType compute : {ComputeDType::F32, ComputeDType::F16, ComputeDType::BF16})
        for (int threads : {1, 3}) {
          CAPTURE(shape.rows);
          CAPTURE(shape.cols);
          CAPTURE(shape.n);
          CAPTURE(int(type));
          CAPTURE(int(compute));
          CAPTURE(threads);
          const HostWeight w =
              random_quantized(rng, shape.rows, shape.cols, type, 64, threads == 3, compute);
          std::vector<uint16_t> bf16(size_t(shape.rows * shape.cols));
          for (uint16_t& h : bf16) h = f32_to_bf16(normal(rng));
          HostWeight w16;
          w16.name = "test.bf16";
          w16.dtype = DType::BF16;
          w16.rows = shape.rows;
          w16.cols = shape.cols;
          w16.data = reinterpret_cast<const uint8_t*>(bf16.data());
          w16.nbytes = bf16.size() * 2;

          std::vector<float> xv(size_t(shape.n * shape.cols));
          for (float& v : xv) v = normal(rng);
          CpuBackend cpu(threads);
          for (const HostWeight* weight : {&w, static_cast<const HostWeight*>(&w16)}) {
            const Tensor wt = cpu.upload_weight(*weight);
            const Tensor x = cpu.alloc(DType::F32, shape.n, shape.cols, Usage::Activations);
            const Tensor y = cpu.alloc(DType::F32, shape.n, shape.rows, Usage::Activations);
            cpu.write(x, xv.data());
            std::vector<float> poison(size_t(shape.n * shape.rows), NAN);
            cpu.write(y, poison.data());
            cpu.begin_step({0, int(shape.n)});
            cpu.matmul(y, x, wt);
            cpu.end_step();
            std::vector<float> got(poison.size());
            cpu.read(y, got.data());

            // x is rounded to the compute dtype; the weight too, except for a single row of x,
            // where it stays float32 (bitsandbytes' GEMV).
            const bool rounds = weight->quantized() && compute != ComputeDType::F32;
            std::vector<float> want(poison.size());
            for (int64_t r = 0; r < shape.n; ++r)
              for (int64_t j = 0; j < shape.rows; ++j) {
                float acc = 0;
                for (int64_t i = 0; i < shape.cols; ++i) {
                  const float xi = xv[size_t(r * shape.cols + i)];
                  const int64_t e = j * shape.cols + i;
                  acc += (rounds ? round_to(compute, xi) : xi) *
                         (weight->quantized() ? element(*weight, e, shape.n > 1) : weight->at(e));
                }
                want[size_t(r * shape.rows + j)] = acc;
              }
            CHECK(same_bits(got, want));
          }
        }
}
