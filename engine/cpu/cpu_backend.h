// The float32 reference backend: simple, threaded over rows, and the oracle for every GPU test.
#pragma once
#include <chrono>
#include <vector>

#include "engine/backend.h"
#include "engine/cpu/thread_pool.h"

namespace nibble {

class CpuBackend : public Backend {
 public:
  explicit CpuBackend(int threads = 0);

  std::string name() const override { return "cpu"; }
  std::string device_name() const override;

  Tensor alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) override;
  Tensor upload_weight(const HostWeight& w) override;
  Tensor alloc_kv(int64_t rows, int64_t cols) override;
  DType kv_dtype() const override { return DType::F32; }
  MemoryInfo memory() const override { return memory_; }
  double measure_bandwidth() override;

  void write(Tensor dst, const void* src) override;
  void read(Tensor src, void* dst) override;

  void begin_step(const StepInfo& step) override;
  void end_step() override;

  void embed(Tensor out, Tensor table, Tensor ids) override;
  void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) override;
  void matmul(Tensor out, Tensor x, Tensor w) override;
  void rope(Tensor x, int n_heads, int head_dim, Tensor inv_freq) override;
  void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v) override;
  void attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                 const AttentionShape& shape) override;
  void swiglu(Tensor out, Tensor gate, Tensor up) override;
  void add(Tensor x, Tensor y) override;
  void argmax(Tensor ids, Tensor logits) override;
  bool can_sample() const override { return true; }
  void sample(Tensor ids, Tensor logits, const SamplerConfig& config) override;

  void phase_begin(int layer, Phase phase) override;
  void phase_end(int layer, Phase phase) override;
  std::vector<LayerTime> step_times() override { return last_times_; }

 private:
  struct Buffer {
    std::vector<uint8_t> bytes;  // activations, caches and converted data
    HostWeight weight;           // weights keep the loader's bytes (often the mmap itself)
  };
  Buffer& buffer(Tensor t);
  float* f32(Tensor t);  // first element of the view
  int32_t* i32(Tensor t);
  // Row `row` of a weight (any dtype) as float32, rounded for the 4-bit compute dtype.
  // Row `row` of a weight as float32, 4-bit ones rounded to the compute dtype when `round`.
  void weight_row(const HostWeight& w, int64_t row, float* out, bool round = true) const;

  ThreadPool pool_;
  std::vector<Buffer> buffers_;
  MemoryInfo memory_;
  StepInfo step_;
  std::vector<float> sample_scratch_;
  std::vector<float> x_rounded_;  // matmul input rounded to the compute dtype
  std::chrono::steady_clock::time_point phase_start_;
  std::vector<LayerTime> times_, last_times_;
};

}  // namespace nibble
