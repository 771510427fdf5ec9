// The CUDA quantizer (engine/cuda/quantizer.h, quantize.cu) against the CPU's quantize_4bit, byte
// for byte: packed codes, absmax (or the 8-bit absmax, nested absmax and offset of double
// quantization) and code tables, for nf4/fp4 x double quant x blocksizes 64..4096 x
// float32/float16/bfloat16 inputs, on shapes off the block grid and off the staging chunk, with
// values chosen to hit every special case; the bitsandbytes fixtures through the GPU; the inf/NaN
// errors; and a model loaded through either quantizer giving the very same logits.
// (The Vulkan quantizer's test, tests/vulkan/vulkan_quantize_test.cpp, checks the same things.)
#include <cuda_runtime_api.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <utility>

#include "engine/cuda/quantizer.h"
#include "engine/model.h"
#include "loader/bnb_checkpoint.h"
#include "loader/quantize.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/quant_fixture.h"

using namespace nibble;
using namespace nibble::test;

namespace {

void cuda_check(cudaError_t e) {
  REQUIRE_MESSAGE(e == cudaSuccess, cudaGetErrorString(e));
}

// The quantizer on its own stream. Small staging chunks by default, so that small weights cross
// several chunk boundaries; four copy threads whatever the machine.
struct GpuQuantizer {
  std::unique_ptr<Backend> device;  // holds the CUDA device set up
  cudaStream_t stream = nullptr;
  std::unique_ptr<cuda::Quantizer> quantizer;

  GpuQuantizer(std::unique_ptr<Backend> d, size_t chunk_bytes) : device(std::move(d)) {
    cuda_check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    quantizer = std::make_unique<cuda::Quantizer>(stream, chunk_bytes, 4);
  }
  ~GpuQuantizer() {
    cudaStreamSynchronize(stream);
    quantizer.reset();
    cudaStreamDestroy(stream);
  }
};

constexpr size_t kSmallChunk = size_t(64) << 10;  // 16384 float32 or 32768 16-bit values

std::unique_ptr<GpuQuantizer> quantizer_or_skip(size_t chunk_bytes = kSmallChunk) {
  auto device = cuda_or_skip();
  if (!device) return nullptr;
  return std::make_unique<GpuQuantizer>(std::move(device), chunk_bytes);
}

// A weight that owns its bytes.
struct Input {
  HostWeight w;
  Input(const std::string& name, DType dtype, int64_t rows, int64_t cols,
        const std::vector<float>& values)
      : w(dense_weight(name, dtype, rows, cols, values)) {}
};

// One weight through the GPU: its output (read back from the device, which was poisoned first)
// and offset.
struct Job {
  Job(HostWeight weight, QuantSpec to) : w(std::move(weight)), spec(to) {}
  HostWeight w;
  QuantSpec spec;
  cuda::QuantLayout at;
  char* dst = nullptr;
  std::vector<uint8_t> got;
  float offset = std::numeric_limits<float>::quiet_NaN();
};

// All jobs in one go, several weights in flight as when loading a model; frees the device memory
// whatever happens.
void quantize_all(GpuQuantizer& g, std::vector<Job>& jobs) {
  struct Free {
    std::vector<Job>& jobs;
    ~Free() {
      for (Job& j : jobs) cudaFree(std::exchange(j.dst, nullptr));
    }
  } free_all{jobs};
  for (Job& j : jobs) {
    j.at = cuda::quant_layout(j.w.rows * j.w.cols, j.spec.blocksize, j.spec.double_quant,
                              kNestedBlocksize);
    void* p = nullptr;
    cuda_check(cudaMalloc(&p, j.at.bytes));
    j.dst = static_cast<char*>(p);
    cuda_check(cudaMemset(j.dst, 0xa5, j.at.bytes));
  }
  for (Job& j : jobs)
    g.quantizer->quantize(j.w, j.spec, j.dst, [&j](float offset) { j.offset = offset; });
  g.quantizer->finish();
  for (Job& j : jobs) {
    j.got.resize(j.at.bytes);
    cuda_check(cudaMemcpy(j.got.data(), j.dst, j.at.bytes, cudaMemcpyDeviceToHost));
  }
}

// The index of the first differing byte, -1 if none (so that a failure says where).
int64_t first_difference(const void* a, const void* b, size_t bytes) {
  const auto* x = static_cast<const uint8_t*>(a);
  const auto* y = static_cast<const uint8_t*>(b);
  for (size_t i = 0; i < bytes; ++i)
    if (x[i] != y[i]) return int64_t(i);
  return -1;
}

// The GPU's bytes against the expected packed codes and quantization state, part by part.
void check_bytes(const Job& j, const std::vector<uint8_t>& packed, const QuantState& s) {
  const uint8_t* got = j.got.data();
  CHECK(first_difference(got, packed.data(), packed.size()) == -1);
  CHECK(first_difference(got + j.at.code_at, s.code.data(), 64) == -1);
  if (j.spec.double_quant) {
    CHECK(f32_to_bits(j.offset) == f32_to_bits(s.offset));
    CHECK(first_difference(got + j.at.absmax_at, s.absmax_q.data(), s.absmax_q.size()) == -1);
    CHECK(first_difference(got + j.at.nested_absmax_at, s.nested_absmax.data(),
                           s.nested_absmax.size() * 4) == -1);
    CHECK(first_difference(got + j.at.nested_code_at, s.nested_code.data(), 1024) == -1);
  } else {
    CHECK(first_difference(got + j.at.absmax_at, s.absmax.data(), s.absmax.size() * 4) == -1);
  }
}

void check_against_cpu(const Job& j) {
  CAPTURE(j.w.name);
  const QuantizedWeight want =
      quantize_4bit(j.w, j.spec.type, j.spec.blocksize, j.spec.double_quant);
  check_bytes(j, want.packed, want.state);
}

// Values of every kind the encoder must treat as bitsandbytes does, one pattern per block:
// normal ones at two scales, zeros (both signs), float32 subnormals (flushed), the float16
// subnormals (normal in float32), huge magnitudes, a block of equal values, and values exactly on
// the decision thresholds (absmax 1, so they are not rescaled).
std::vector<float> awkward_values(std::mt19937& rng, int64_t n, int blocksize, DType dtype) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const FourBitThresholds& t = four_bit_thresholds();
  const float huge = dtype == DType::F16 ? 2e4f : 1e37f;
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t block = i / blocksize, at = i % blocksize;
    float& x = v[size_t(i)];
    switch (block % 8) {
      case 0:
        x = 0.02f * normal(rng);
        break;
      case 1:
        x = 3.0f * normal(rng);
        break;
      case 2:
        x = at % 2 ? -0.0f : 0.0f;
        break;
      case 3:
        x = -0.37f;
        break;
      case 4: {
        const float special[] = {1e-40f, -3e-39f, 3e-6f, -6e-8f, 0.0f, -0.0f};
        x = at % 3 ? 0.02f * normal(rng) : special[size_t(at / 3) % 6];
        break;
      }
      case 5:
        x = huge * std::max(-3.0f, std::min(3.0f, normal(rng)));
        break;
      case 6: {
        const size_t k = size_t(at) % 45;  // the thresholds, their negatives and neighbours
        const float m = k < 15 ? t.nf4[k] : k < 22 ? t.fp4[k - 15] : k < 29 ? -t.fp4[k - 22] : 0;
        x = at == 0  ? 1.0f
            : k < 29 ? m
                     : std::nextafter(t.nf4[k - 29 > 14 ? 14 : k - 29], at % 2 ? 2.0f : -2.0f);
        break;
      }
      default:
        x = 1e-3f * normal(rng);
    }
  }
  return v;
}

// Every setting over shapes with partial blocks, odd element counts, single rows, and weights of
// several staging chunks whose last chunk is partial.
void sweep(DType dtype) {
  auto g = quantizer_or_skip();
  if (!g) return;
  std::mt19937 rng(uint32_t(dtype) + 17);
  const int64_t shapes[][2] = {{1, 1},    {3, 5},    {37, 100}, {64, 64},
                               {129, 65}, {5, 4097}, {70, 1001}};
  std::vector<std::unique_ptr<Input>> inputs;
  std::vector<Job> jobs;
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (bool dq : {false, true})
      for (int blocksize = 64; blocksize <= 4096; blocksize *= 2)
        for (const auto& s : shapes) {
          const std::string name = std::string(dtype_name(dtype)) + (dq ? " dq " : " ") +
                                   (type == QuantType::NF4 ? "nf4" : "fp4") + " bs" +
                                   std::to_string(blocksize) + " " + std::to_string(s[0]) + "x" +
                                   std::to_string(s[1]);
          inputs.push_back(std::make_unique<Input>(
              name, dtype, s[0], s[1], awkward_values(rng, s[0] * s[1], blocksize, dtype)));
          jobs.push_back({inputs.back()->w, {type, blocksize, dq}});
        }
  quantize_all(*g, jobs);
  for (const Job& j : jobs) check_against_cpu(j);
}

}  // namespace

TEST_CASE("cuda quantize: float32 weights, every setting, byte-identical to the CPU") {
  sweep(DType::F32);
}

TEST_CASE("cuda quantize: float16 weights, every setting, byte-identical to the CPU") {
  sweep(DType::F16);
}

TEST_CASE("cuda quantize: bfloat16 weights, every setting, byte-identical to the CPU") {
  sweep(DType::BF16);
}

TEST_CASE("cuda quantize: weights of several 16 MiB chunks, torch's multi-block mean") {
  auto g = quantizer_or_skip(size_t(16) << 20);  // the backend's chunk size
  if (!g) return;
  // 8.6M bfloat16 values: two 16 MiB chunks, 134400 absmax values (torch sums them in 17 blocks);
  // 4.5M float32 values: two chunks of another size.
  std::mt19937 rng(5);
  Input big("big.bf16", DType::BF16, 2100, 4096, random_floats(rng, 2100 * 4096, 0.02f));
  Input wide("big.f32", DType::F32, 1100, 4096, random_floats(rng, 1100 * 4096, 0.02f));
  REQUIRE(torch_cuda_reduce(2100 * 4096 / 64).blocks > 1);
  std::vector<Job> jobs = {{big.w, {QuantType::NF4, 64, true}},
                           {wide.w, {QuantType::FP4, 128, true}},
                           {big.w, {QuantType::FP4, 4096, false}},
                           {wide.w, {QuantType::NF4, 4096, true}}};
  quantize_all(*g, jobs);
  for (const Job& j : jobs) check_against_cpu(j);
}

TEST_CASE("cuda quantize: a subnormal double-quant offset") {
  auto g = quantizer_or_skip();
  if (!g) return;
  // One block of tiny normal values among zero blocks: the mean of the absmax is subnormal.
  std::vector<float> v(64 * 64, 0.0f);
  for (int i = 0; i < 64; ++i) v[size_t(i)] = (i % 2 ? -1.0f : 1.0f) * 2e-38f * float(1 + i % 7);
  v[64 * 9] = 1.2e-38f;  // an absmax just above FLT_MIN: absmax - offset is subnormal, flushed
  Input tiny("tiny.f32", DType::F32, 64, 64, v);
  std::vector<Job> jobs = {{tiny.w, {QuantType::NF4, 64, true}}};
  quantize_all(*g, jobs);
  const float offset = quantize_4bit(tiny.w, QuantType::NF4, 64, true).state.offset;
  CHECK(offset > 0.0f);
  CHECK(offset < std::numeric_limits<float>::min());
  check_against_cpu(jobs[0]);
}

TEST_CASE("cuda quantize: the bitsandbytes fixtures through the GPU") {
  auto g = quantizer_or_skip();
  if (!g) return;
  std::vector<Job> jobs;
  const std::vector<BnbCase> cases = bnb_cases();
  REQUIRE(!cases.empty());
  for (const BnbCase& c : cases)
    jobs.push_back({c.weight("input"), {c.type(), c.blocksize(), c.double_quant()}});
  quantize_all(*g, jobs);
  for (size_t i = 0; i < cases.size(); ++i) {
    const BnbCase& c = cases[i];
    CAPTURE(c.name());
    const TensorInfo& packed = c.tensor("packed");
    const QuantState s = read_bnb_quant_state(
        [&](const std::string& name) {
          return c.file->find(name == "packed" ? "packed" : "state." + name.substr(7));
        },
        "packed");
    check_bytes(jobs[i], std::vector<uint8_t>(packed.data, packed.data + packed.nbytes), s);
  }
}

TEST_CASE("cuda quantize: inf and NaN fail naming the tensor and element, as on the CPU") {
  auto g = quantizer_or_skip();
  if (!g) return;
  std::mt19937 rng(9);
  for (DType dtype : {DType::F32, DType::BF16, DType::F16}) {
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      CAPTURE(dtype_name(dtype));
      // Past the first 64 KiB chunk: the element number counts the chunks before.
      std::vector<float> v = random_floats(rng, 400 * 170, 0.02f);
      v[40001] = bad;
      v[62700] = std::numeric_limits<float>::infinity();
      Input in("model.layers.3.mlp.up_proj.weight", dtype, 400, 170, v);
      std::string cpu, gpu;
      try {
        quantize_4bit(in.w, QuantType::NF4, 64, true);
      } catch (const Error& e) {
        cpu = e.what();
      }
      // A good weight before it and one after: the bad one is found while they are in flight.
      Input good("good", dtype, 8, 64, random_floats(rng, 8 * 64, 0.02f));
      std::vector<Job> jobs = {{good.w, {QuantType::NF4, 64, true}},
                               {in.w, {QuantType::NF4, 64, true}},
                               {good.w, {QuantType::FP4, 64, false}}};
      try {
        quantize_all(*g, jobs);
      } catch (const Error& e) {
        gpu = e.what();
      }
      CHECK(cpu.find("model.layers.3.mlp.up_proj.weight") != std::string::npos);
      CHECK(cpu.find("element 40001") != std::string::npos);
      CHECK(gpu == cpu);
    }
  }
  // The quantizer works again after an error.
  Input good("after", DType::BF16, 8, 64, random_floats(rng, 8 * 64, 0.02f));
  std::vector<Job> jobs = {{good.w, {QuantType::NF4, 64, true}}};
  quantize_all(*g, jobs);
  check_against_cpu(jobs[0]);
}

namespace {

// Random 16-bit weights whose quantizable matrices the backend is to quantize.
class BackendQuantizes final : public WeightSource {
 public:
  BackendQuantizes(uint64_t seed, QuantSpec spec) : dense_(seed, DType::BF16), spec_(spec) {}
  bool has(const std::string& name) const override { return dense_.has(name); }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override {
    HostWeight w = dense_.get(name, rows, cols, quantizable);
    w.compute = ComputeDType::BF16;
    if (quantizable) w.quantize_to = spec_;
    return w;
  }

 private:
  RandomWeights dense_;
  QuantSpec spec_;
};

}  // namespace

TEST_CASE("cuda quantize: a model quantized on the GPU gives the host-quantized model's logits") {
  for (QuantSpec spec : {QuantSpec{QuantType::NF4, 64, false}, QuantSpec{QuantType::NF4, 64, true},
                         QuantSpec{QuantType::FP4, 128, true}}) {
    CAPTURE(spec.double_quant);
    CAPTURE(spec.blocksize);
    auto host_side = cuda_or_skip();
    if (!host_side) return;
    auto gpu_side = make_cuda_backend(0);
    BackendQuantizes weights(11, spec);
    const ModelConfig c = tiny_config();
    ModelOptions options;
    options.context = 32;
    options.max_batch = 8;
    setenv("NIBBLE_QUANTIZE_ON", "cpu", 1);
    Model on_host(*host_side, c, weights, options);
    unsetenv("NIBBLE_QUANTIZE_ON");
    Model on_gpu(*gpu_side, c, weights, options);
    CHECK(on_gpu.weight_bytes_per_token() == on_host.weight_bytes_per_token());
    CHECK(host_side->memory().weights == gpu_side->memory().weights);
    const std::vector<int> ids = {3, 14, 15, 92, 65, 35, 89, 79, 32, 38, 46};
    on_host.forward(ids, 0, true);
    on_gpu.forward(ids, 0, true);
    std::vector<float> want = on_host.logits(), got = on_gpu.logits();
    REQUIRE(got.size() == want.size());
    CHECK(first_difference(got.data(), want.data(), got.size() * 4) == -1);
    CHECK(on_gpu.argmax() == on_host.argmax());
    // A decode step (the replayed graph) too.
    const int next = on_host.argmax();
    on_host.forward(std::span(&next, 1), int(ids.size()));
    on_gpu.forward(std::span(&next, 1), int(ids.size()));
    want = on_host.logits();
    got = on_gpu.logits();
    CHECK(first_difference(got.data(), want.data(), got.size() * 4) == -1);
  }
}

TEST_CASE("cuda quantize: the backend reports a bad weight when its upload completes") {
  auto gpu = cuda_or_skip();
  if (!gpu) return;
  std::vector<float> v(64 * 64, 0.01f);
  v[77] = std::numeric_limits<float>::quiet_NaN();
  Input in("model.layers.0.self_attn.q_proj.weight", DType::BF16, 64, 64, v);
  gpu->upload_quantized(in.w, {QuantType::FP4, 64, false});
  CHECK_THROWS_WITH_AS(gpu->finish_uploads(),
                       "tensor model.layers.0.self_attn.q_proj.weight has a non-finite value (NaN) "
                       "at element 77; it cannot be quantized",
                       Error);
}
