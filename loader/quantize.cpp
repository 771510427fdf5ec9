// A port of bitsandbytes' CUDA quantization (kQuantizeBlockwise with its dQuantizeNF4 /
// dQuantizeFP4 / dQuantize device functions, and the torch ops around it in
// bitsandbytes.functional.quantize_4bit), reproduced operation by operation in float32 so that the
// bytes match. tests/quant_bnb_fixtures.cpp holds it to vectors made by the real library.
#include "loader/quantize.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <thread>

#include "engine/error.h"
#include "loader/quantize_index.h"

namespace nibble {

namespace {

// The midpoints between neighbouring codes as bitsandbytes' kernel spells them: NF4's 16 codes,
// and FP4's magnitudes {0, 0.0625, 2, 3, 4, 6, 8, 12} / 12, whose indices are not in value order.
constexpr FourBitThresholds kThresholds{
    {-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
     -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f,
     0.1202552504837513f, 0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f,
     0.5016634166240692f, 0.6427869200706482f, 0.8614784181118011f},
    {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f},
    {0b0000, 0b0001, 0b0110, 0b0111, 0b0100, 0b0101, 0b0010, 0b0011}};

// How many of the ascending thresholds x exceeds, by the decision tree of bitsandbytes' kernel:
// strict `>` against the middle threshold first, so a value exactly on a threshold goes down, and
// NaN (0 * 1/0, an all-zero block) falls through every comparison to 0.
template <size_t N>
uint32_t thresholds_exceeded(const std::array<float, N>& t, float x) {
  static_assert(((N + 1) & N) == 0, "a full tree: 2^k - 1 thresholds");
  uint32_t i = 0;
  for (uint32_t step = (N + 1) / 2; step > 0; step /= 2)
    if (x > t[i + step - 1]) i += step;
  return i;
}

}  // namespace

const FourBitThresholds& four_bit_thresholds() {
  return kThresholds;
}

uint8_t quantize_4bit_index(QuantType type, float x) {
  if (type == QuantType::NF4) return uint8_t(thresholds_exceeded(kThresholds.nf4, x));
  const uint32_t sign = x < 0 ? 0b1000 : 0b0000;
  return uint8_t(kThresholds.fp4_index[thresholds_exceeded(kThresholds.fp4, std::fabs(x))] + sign);
}

uint8_t quantize_8bit_index(const std::array<float, 256>& code, float x) {
  return quantize_8bit_index_in(code.data(), x);
}

namespace {

int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

int64_t last_pow2(int64_t n) {
  int64_t p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

// One thread block's tree over its lanes (block_x_reduce): halving through shared memory down to
// a warp, then warp shuffles with offsets 16, 8, ..., 1.
float block_reduce(std::vector<float> lanes) {
  for (size_t offset = lanes.size() / 2; offset > 0; offset /= 2)
    for (size_t t = 0; t < offset; ++t) lanes[t] += lanes[t + offset];
  return lanes[0];
}

// What one thread of torch's reduction accumulates: `vec` consecutive values per load into `vec`
// partial sums (or, unvectorised, 4 unrolled strided loads), combined in order at the end.
float thread_sum(const float* x, int64_t n, bool vectorized, int64_t first, int64_t stride,
                 bool takes_tail) {
  constexpr int kVec = 4;  // torch: input_vec_size = vt0 = 4
  float acc[kVec] = {0, 0, 0, 0};
  if (vectorized) {
    int64_t idx = first;
    for (; idx * kVec + kVec - 1 < n; idx += stride)
      for (int i = 0; i < kVec; ++i) acc[i] += x[idx * kVec + i];
    const int64_t tail = n - n % kVec + first;  // lane t of block 0 takes element tail_start + t
    if (takes_tail && tail < n) acc[0] += x[tail];
  } else {
    int64_t idx = first;
    for (; idx + (kVec - 1) * stride < n; idx += stride * kVec)
      for (int i = 0; i < kVec; ++i) acc[i] += x[idx + i * stride];
    for (int i = 0; i < kVec && idx < n; ++i, idx += stride) acc[i] += x[idx];
  }
  return ((acc[0] + acc[1]) + acc[2]) + acc[3];
}

}  // namespace

TorchReduce torch_cuda_reduce(int64_t n) {
  // torch's gpu_reduce_kernel configuration for a full reduction of a contiguous float32 vector
  // (setReduceConfig): loads of 4 when n > 128, a block of up to 512 lanes along the data, and,
  // once each lane would see >= 256 values, the input split over several blocks whose partial sums
  // a last block reduces again. The block count assumes an H100 (132 SMs), bitsandbytes' reference.
  TorchReduce r;
  r.vectorized = n > 128;
  r.lanes = std::min<int64_t>(last_pow2(r.vectorized ? n / 4 : n), 512);
  const int64_t values_per_thread = ceil_div(n, r.lanes);
  if (values_per_thread >= 256) {
    const int64_t target_grid = 132 * (2048 / r.lanes);
    r.blocks = std::max(std::min(target_grid, ceil_div(values_per_thread, 16)),
                        ceil_div(values_per_thread, 256));
  }
  return r;
}

float torch_mean_of_sum(float sum, int64_t n) {
  return sum * (1.0f / float(n));
}

float torch_cuda_mean(const float* x, int64_t n) {
  const TorchReduce r = torch_cuda_reduce(n);
  const int64_t lanes = r.lanes, blocks = r.blocks;
  std::vector<float> partial(static_cast<size_t>(blocks)), lane_sum(static_cast<size_t>(lanes));
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t t = 0; t < lanes; ++t)
      lane_sum[size_t(t)] = thread_sum(x, n, r.vectorized, t + b * lanes, lanes * blocks, b == 0);
    partial[size_t(b)] = block_reduce(lane_sum);
  }
  float sum = partial[0];
  if (blocks > 1) {
    std::fill(lane_sum.begin(), lane_sum.end(), 0.0f);
    for (int64_t b = 0; b < blocks; ++b) lane_sum[size_t(b % lanes)] += partial[size_t(b)];
    sum = block_reduce(lane_sum);
  }
  return torch_mean_of_sum(sum, n);
}

namespace {

#include "loader/bnb_reciprocal_table.inc"

// What fast math's flush-to-zero makes of a float32 operand or result: bitsandbytes' kernel is
// built with --use_fast_math, so its fabsf, fmaxf and multiply (abs/max/mul.ftz.f32) see a
// subnormal as a zero of the same sign (measured by tools/bnb_rcp_table.cu).
float flush_subnormal(float v) {
  return std::fabs(v) < std::numeric_limits<float>::min() ? std::copysign(0.0f, v) : v;
}

// The codes' input: bitsandbytes' `(float)vals[j] * local_abs_max` with ftz.
float scale_value(float x, float scale) {
  return flush_subnormal(x * scale);
}

}  // namespace

const std::array<uint32_t, 32>& bnb_reciprocal_table() {
  static const std::array<uint32_t, 32> table = std::to_array(kRoundsOtherWay);
  return table;
}

float bnb_reciprocal(float absmax) {
  // rcp.approx.ftz.f32 depends on the significand alone (every exponent checked on the GPU):
  // 1/significand, the other faithful neighbour where the table says so, then the exponent.
  const uint32_t bits = std::bit_cast<uint32_t>(absmax);
  const int exponent = int(bits >> 23 & 0xff);
  if (exponent == 0) return std::numeric_limits<float>::infinity();  // ftz: 1/0
  const uint32_t fraction = bits & 0x7fffff;
  const float significand = std::bit_cast<float>(127u << 23 | fraction);
  float unit = 1.0f / significand;
  // The table covers significands of up to 11 bits: every absmax of a 16-bit weight. Others
  // (float32 weights, the nested absmax of double quantization) keep the correctly rounded
  // value, which is bitsandbytes' for 86.8% of them (docs/QUANTIZATION.md).
  constexpr uint32_t kUncovered = (1u << 13) - 1;
  if ((fraction & kUncovered) == 0) {
    const uint32_t k = fraction >> 13;
    if (kRoundsOtherWay[k / 32] >> (k % 32) & 1)
      unit = std::nextafter(unit, double(unit) > 1.0 / double(significand) ? 0.0f : 2.0f);
  }
  const uint32_t unit_bits = std::bit_cast<uint32_t>(unit);
  const int scaled_exponent = int(unit_bits >> 23) - (exponent - 127);
  if (scaled_exponent <= 0) return 0.0f;  // ftz: a subnormal result is +0
  return std::bit_cast<float>(uint32_t(scaled_exponent) << 23 | (unit_bits & 0x7fffff));
}

namespace {

// Elements [begin, begin + n) of a 16/32-bit weight as float32.
void load_values(const HostWeight& w, int64_t begin, int64_t n, float* out) {
  switch (w.dtype) {
    case DType::F32:
      std::memcpy(out, w.data + begin * 4, size_t(n) * 4);
      return;
    case DType::F16:
    case DType::BF16: {
      const uint8_t* p = w.data + begin * 2;
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = uint16_t(p[2 * i] | (p[2 * i + 1] << 8));
        out[i] = w.dtype == DType::F16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      return;
    }
    default:
      fail("tensor " + w.name + " has dtype " + std::string(dtype_name(w.dtype)) +
           "; only F32, F16 and BF16 weights can be quantized");
  }
}

// Runs body(first_block, end_block) over `blocks` split evenly across threads; rethrows the first
// error. Each block is independent, so the result does not depend on the split.
template <typename Body>
void parallel_blocks(int64_t blocks, int threads, const Body& body) {
  const int64_t wanted = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  const int64_t n = std::max<int64_t>(1, std::min(wanted, ceil_div(blocks, 256)));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::vector<std::thread> pool;
  const int64_t per = ceil_div(blocks, n);
  for (int64_t t = 0; t < n; ++t)
    pool.emplace_back([&, t] {
      try {
        body(t * per, std::min(blocks, (t + 1) * per));
      } catch (...) {
        errors[size_t(t)] = std::current_exception();
      }
    });
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// quantize_blockwise(absmax - offset, blocksize=256) against the signed dynamic map.
void double_quantize(QuantState& s, const std::vector<float>& absmax) {
  s.nested = true;
  s.nested_blocksize = kNestedBlocksize;
  s.nested_code = dynamic_map_signed();
  s.offset = torch_cuda_mean(absmax.data(), int64_t(absmax.size()));
  const int64_t n = int64_t(absmax.size());
  s.absmax_q.resize(size_t(n));
  s.nested_absmax.resize(size_t(ceil_div(n, s.nested_blocksize)));
  std::vector<float> centred(absmax.size());
  for (size_t i = 0; i < absmax.size(); ++i) centred[i] = flush_subnormal(absmax[i] - s.offset);
  for (int64_t b = 0; b * s.nested_blocksize < n; ++b) {
    const int64_t begin = b * s.nested_blocksize, end = std::min(n, begin + s.nested_blocksize);
    float amax = 0;
    for (int64_t i = begin; i < end; ++i) amax = std::max(amax, std::fabs(centred[size_t(i)]));
    s.nested_absmax[size_t(b)] = amax;
    const float scale = bnb_reciprocal(amax);
    for (int64_t i = begin; i < end; ++i)
      s.absmax_q[size_t(i)] =
          quantize_8bit_index(s.nested_code, scale_value(centred[size_t(i)], scale));
  }
}

}  // namespace

QuantizedWeight quantize_4bit(const HostWeight& w, QuantType type, int blocksize, bool double_quant,
                              int threads) {
  if (blocksize < 2 || blocksize % 2)
    fail("tensor " + w.name + ": blocksize " + std::to_string(blocksize) + " must be even");
  QuantizedWeight q;
  QuantState& s = q.state;
  s.type = type;
  s.blocksize = blocksize;
  s.code = quant_code(type);
  s.dtype = w.dtype;
  s.shape = {w.rows, w.cols};
  const int64_t n = s.numel();
  const int64_t blocks = s.num_blocks();
  q.packed.assign(size_t((n + 1) / 2), 0);
  std::vector<float> absmax(static_cast<size_t>(blocks));

  parallel_blocks(blocks, threads, [&](int64_t first, int64_t last) {
    std::vector<float> x(size_t(blocksize) + 1);
    for (int64_t b = first; b < last; ++b) {
      const int64_t begin = b * blocksize, count = std::min<int64_t>(blocksize, n - begin);
      load_values(w, begin, count, x.data());
      float amax = 0;
      for (int64_t i = 0; i < count; ++i) {
        if (!std::isfinite(x[size_t(i)]))
          fail("tensor " + w.name + " has a non-finite value (" +
               (std::isnan(x[size_t(i)]) ? "NaN" : "inf") + ") at element " +
               std::to_string(begin + i) + "; it cannot be quantized");
        x[size_t(i)] = flush_subnormal(x[size_t(i)]);
        amax = std::max(amax, std::fabs(x[size_t(i)]));
      }
      absmax[size_t(b)] = amax;
      // The kernel pads a partial block with zeros and stores whole bytes, so an odd element
      // count ends with the code of 0 * scale in the low nibble.
      x[size_t(count)] = 0.0f;
      const float scale = bnb_reciprocal(amax);
      for (int64_t i = 0; i < count; i += 2) {
        const uint8_t hi = quantize_4bit_index(type, scale_value(x[size_t(i)], scale));
        const uint8_t lo = quantize_4bit_index(type, scale_value(x[size_t(i) + 1], scale));
        q.packed[size_t((begin + i) / 2)] = uint8_t(hi << 4 | lo);
      }
    }
  });

  if (double_quant)
    double_quantize(s, absmax);
  else
    s.absmax = std::move(absmax);
  return q;
}

HostWeight quantize_on_host(const HostWeight& w, const QuantSpec& spec) {
  auto q = std::make_shared<QuantizedWeight>(
      quantize_4bit(w, spec.type, spec.blocksize, spec.double_quant));
  HostWeight out = w;
  out.dtype = packed_dtype(spec.type);
  out.data = q->packed.data();
  out.nbytes = q->packed.size();
  out.quant = std::shared_ptr<const QuantState>(q, &q->state);
  out.owner = std::move(q);
  out.quantize_to.reset();
  return out;
}

}  // namespace nibble
