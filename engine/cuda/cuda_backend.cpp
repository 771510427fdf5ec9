#include "engine/cuda/cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/cuda/kernels.h"
#include "engine/cuda/quantizer.h"
#include "engine/error.h"
#include "engine/sampler.h"
#include "loader/quantize.h"

namespace nibble {
namespace {

void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) fail("CUDA error in " + what + ": " + cudaGetErrorString(e));
}

std::string mib(uint64_t bytes) {
  return std::to_string((bytes + (1u << 20) - 1) >> 20) + " MiB";
}

// Device memory left to the driver, kernels and other allocations when predicting out-of-memory.
constexpr uint64_t kHeadroom = 256ull << 20;

template <class T>
void append_bytes(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;

  std::string name() const override { return "cuda"; }
  std::string device_name() const override { return device_name_; }

  Tensor alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) override;
  Tensor upload_weight(const HostWeight& w) override;
  Tensor upload_quantized(const HostWeight& w, const QuantSpec& spec) override;
  void finish_uploads() override { quantizer_->finish(); }
  Tensor alloc_kv(int64_t rows, int64_t cols) override;
  MemoryInfo memory() const override;
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
  // Fused ops (engine/backend.h). One token: the 4-bit products of one x in one launch, the
  // residual add in its store. A prompt: x's operands converted once for the products of one x,
  // the residual add in the GEMM's store. Any step: RoPE and the KV store in one kernel.
  void matmul_add(Tensor out, Tensor x, Tensor w, Tensor scratch) override;
  void norm_matmuls(Tensor x, Tensor norm, float eps, Tensor xn,
                    std::initializer_list<Projection> projections) override;
  void norm_matmul_swiglu(Tensor out, Tensor x, Tensor norm, float eps, Tensor xn, Tensor gate,
                          Tensor up, Tensor scratch) override;
  void rope_kv_store(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                     const AttentionShape& shape, Tensor inv_freq) override;
  // One token: RoPE and the KV store inside the attention's launch (one launch fewer per layer).
  void rope_kv_attention(Tensor out, Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                         const AttentionShape& shape, Tensor inv_freq) override;
  bool can_sample() const override { return true; }
  void sample(Tensor ids, Tensor logits, const SamplerConfig& config) override;

  void phase_begin(int layer, Phase phase) override;
  void phase_end(int layer, Phase phase) override;
  std::vector<LayerTime> step_times() override;

 private:
  struct Buffer {
    void* ptr = nullptr;
    cuda::WeightArgs weight;  // how kernels read the buffer as a weight
    // Usage::Output token ids (the model's picks): mapped host memory, which kernels write
    // through `ptr` and read() reads here once the step that last wrote it (written_in) is done,
    // whatever runs after it, so that decoding can queue a step before it reads the last token.
    void* host = nullptr;
    uint64_t written_in = 0;
  };
  using Launch = std::function<cudaError_t(cudaStream_t)>;
  struct PendingOp {
    const char* op;
    Launch launch;
  };
  struct Mark {
    int layer;
    Phase phase;
    cudaEvent_t begin, end;
  };

  void* device_alloc(size_t bytes, const std::string& what, Usage usage);
  Tensor add_buffer(void* ptr, const cuda::WeightArgs& weight);
  const Buffer& buffer(Tensor t) const;
  template <class T>
  T* ptr(Tensor t) const {
    return reinterpret_cast<T*>(static_cast<char*>(buffer(t).ptr) +
                                t.row_offset * t.cols * int64_t(dtype_size(t.dtype)));
  }
  cuda::WeightArgs weight_args(Tensor t, const char* op) const;
  // The launch arguments of products of one x, and the tensors of their step signature (x, then
  // each output and weight).
  struct Products {
    std::array<cuda::GemvTarget, cuda::kMaxGemvTargets> targets{};
    std::array<Tensor, 1 + 2 * cuda::kMaxGemvTargets> tensors{};
    size_t count = 0;
    std::span<const Tensor> signature() const { return {tensors.data(), 1 + 2 * count}; }
  };
  Products products(const char* op, Tensor x, std::initializer_list<Projection> projections) const;
  // Whether one launch of the 4-bit GEMV computes every projection of one row x.
  bool one_gemv_launch(Tensor x, std::initializer_list<Projection> projections) const;
  // Whether the tensor cores compute every projection of a prompt's x (gemm_4bit.cu), and the
  // products so: x's operands converted once for all of them (or those the op right before kept,
  // operands_of), then each product (with `accumulate`, added to its output). gemv_4bit reads
  // kept operands the same way, else float32 x.
  bool tensor_core_products_fit(Tensor x, std::initializer_list<Projection> projections) const;
  void tensor_core_products(const char* op, Tensor x, std::initializer_list<Projection> projections,
                            bool accumulate);
  // rms_norm, which with a 16-bit compute dtype also keeps xn's operands for the products after it.
  void rms_norm_operands(Tensor xn, Tensor x, Tensor norm, float eps, ComputeDType compute);
  // swiglu, which with a 16-bit compute dtype also keeps out's operands for the down projection.
  void swiglu_operands(Tensor out, Tensor gate, Tensor up, ComputeDType compute);
  void gemv_4bit(const char* op, Tensor x, std::initializer_list<Projection> projections,
                 cuda::GemvEpilogue epilogue);
  void require(bool ok, const char* op, const std::string& what) const;
  // kv_store's checks: F16 caches from alloc_kv, matching shapes, the step's rows inside them.
  void require_kv_store(const char* op, Tensor k_cache, Tensor v_cache, Tensor k, Tensor v) const;
  // The attention's launch; with `rope` ({k, v, inv_freq}), rope_kv_attention's fused form.
  void attention(const char* op, Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                 const AttentionShape& shape, std::optional<std::array<Tensor, 3>> rope);
  // Device memory for intermediates, grown as needed: the attention's partials, and the operands
  // (16-bit, rounded) that one op writes for the products after it. Each kind is shared by all
  // ops, which the stream runs one after another.
  // kCounts starts zero and every op leaves it so (the attention's counts of finished splits).
  enum class Scratch { kPartials, kOperands, kCounts };
  void* scratch_memory(Scratch which, size_t bytes, const char* op);
  // The operands of `t` in `compute` where the op enqueued last wrote them beside it
  // (keep_operands), else null: an op between the two may have changed t.
  const uint16_t* operands_of(Tensor t, ComputeDType compute) const;
  void keep_operands(Tensor t, const uint16_t* at, ComputeDType compute);

  // Runs `launch` now, or, while a decode step is being recorded, adds it to the step's graph.
  // The tensors and parameters form the step's signature: a graph is replayed only for a step
  // that issues the same launches on the same tensors.
  void enqueue(const char* op, std::span<const Tensor> tensors,
               std::initializer_list<double> params, Launch launch);
  void enqueue(const char* op, std::initializer_list<Tensor> tensors,
               std::initializer_list<double> params, Launch launch) {
    enqueue(op, std::span(tensors.begin(), tensors.size()), params, std::move(launch));
  }
  void run_recorded_ops();  // gives up the graph for this step: runs what was recorded
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    std::string signature;
  };
  Graph& capture_graph();  // of the recorded step, replacing the graph used longest ago
  void destroy_graphs();
  cudaEvent_t next_event();

  std::string device_name_;
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<cuda::Quantizer> quantizer_;  // on stream_: the kernels after it wait for it
  std::vector<Buffer> buffers_;
  MemoryInfo memory_;
  StepInfo step_;
  int32_t* step_state_ = nullptr;  // {pos0, n_tokens, u} on the device: what kernels read
  struct ScratchBuffer {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  ScratchBuffer scratch_[3];  // by Scratch
  struct KeptOperands {
    Tensor of;
    const uint16_t* at = nullptr;
    ComputeDType compute = ComputeDType::F32;
    uint64_t after = 0;  // ops_enqueued_ when they were kept
  };
  KeptOperands kept_;
  uint64_t ops_enqueued_ = 0;

  bool recording_ = false;
  std::vector<PendingOp> pending_;
  std::string signature_;
  // Programmatic dependent launch for decode steps (compute capability 9.0 and up, unless
  // NIBBLE_CUDA_NO_PDL=1): device_math.cuh `launch`.
  bool programmatic_ = false;
  // Two graphs, as consecutive decode steps alternate between two forms (Model::forward_picked
  // reads the pick the step before wrote and writes the other); graphs_[0] is the one used last.
  Graph graphs_[2];

  // The end of each of the last two steps (numbered from 1; steps_ so far): read() of a host
  // buffer waits for the one that wrote it.
  cudaEvent_t step_done_[2] = {};
  uint64_t steps_ = 0;

  // Profiling: two sets of events, so the last step's can be read while the next one records.
  std::vector<cudaEvent_t> events_[2];
  int event_set_ = 0;
  size_t events_used_ = 0;
  std::vector<Mark> marks_, last_marks_;
};

CudaBackend::CudaBackend(int device) {
  int count = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess)
    fail(std::string("no CUDA device: ") + cudaGetErrorString(e));
  if (count == 0) fail("no CUDA device: the driver reports none");
  const int index = device < 0 ? 0 : device;
  if (index >= count)
    fail("no CUDA device " + std::to_string(index) + ": there are " + std::to_string(count));
  check(cudaSetDevice(index), "cudaSetDevice");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, index), "cudaGetDeviceProperties");
  device_name_ = prop.name;
  programmatic_ = prop.major >= 9 && !std::getenv("NIBBLE_CUDA_NO_PDL");
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  quantizer_ = std::make_unique<cuda::Quantizer>(stream_);
  step_state_ =
      static_cast<int32_t*>(device_alloc(3 * sizeof(int32_t), "step state", Usage::Activations));
  for (cudaEvent_t& e : step_done_)
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
}

CudaBackend::~CudaBackend() {
  // Errors are ignored here: a destructor cannot report them, and the process may be exiting
  // because of one.
  cudaStreamSynchronize(stream_);
  quantizer_.reset();
  for (Graph& g : graphs_)
    if (g.exec) cudaGraphExecDestroy(g.exec);
  for (auto& set : events_)
    for (cudaEvent_t e : set) cudaEventDestroy(e);
  for (cudaEvent_t e : step_done_) cudaEventDestroy(e);
  for (Buffer& b : buffers_) b.host ? cudaFreeHost(b.host) : cudaFree(b.ptr);
  cudaFree(step_state_);
  for (ScratchBuffer& b : scratch_) cudaFree(b.ptr);
  cudaStreamDestroy(stream_);
}

// --- memory -------------------------------------------------------------------------------------

void* CudaBackend::device_alloc(size_t bytes, const std::string& what, Usage usage) {
  size_t free = 0, total = 0;
  check(cudaMemGetInfo(&free, &total), "cudaMemGetInfo");
  if (bytes + kHeadroom > free)
    fail("out of GPU memory: " + what + " needs " + mib(bytes) + " but only " + mib(free) + " of " +
         mib(total) + " are free on " + device_name_);
  void* p = nullptr;
  check(cudaMalloc(&p, std::max<size_t>(bytes, 1)), "cudaMalloc (" + what + ")");
  (usage == Usage::Weights   ? memory_.weights
   : usage == Usage::KvCache ? memory_.kv_cache
                             : memory_.activations) += bytes;
  return p;
}

Tensor CudaBackend::add_buffer(void* ptr, const cuda::WeightArgs& weight) {
  buffers_.push_back({ptr, weight});
  return Tensor{uint32_t(buffers_.size()), weight.dtype, weight.rows, weight.cols, 0};
}

const CudaBackend::Buffer& CudaBackend::buffer(Tensor t) const {
  if (t.buffer == 0 || t.buffer > buffers_.size()) fail("cuda: invalid tensor");
  return buffers_[t.buffer - 1];
}

Tensor CudaBackend::alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) {
  if (dtype_size(dtype) == 0)
    fail("cuda: cannot allocate a " + std::string(dtype_name(dtype)) + " buffer");
  const size_t bytes = size_t(rows * cols) * dtype_size(dtype);
  cuda::WeightArgs w;
  w.dtype = dtype;
  w.rows = rows;
  w.cols = cols;
  if (usage == Usage::Output && dtype == DType::I32 && bytes <= 4096) {
    void* host = nullptr;
    check(cudaHostAlloc(&host, bytes, cudaHostAllocMapped), "cudaHostAlloc (token ids)");
    std::memset(host, 0, bytes);
    void* device = nullptr;
    check(cudaHostGetDevicePointer(&device, host, 0), "cudaHostGetDevicePointer");
    memory_.activations += bytes;
    w.data = device;
    const Tensor t = add_buffer(device, w);
    buffers_.back().host = host;
    return t;
  }
  void* p =
      device_alloc(bytes, std::to_string(rows) + "x" + std::to_string(cols) + " buffer", usage);
  check(cudaMemsetAsync(p, 0, bytes, stream_), "alloc (cudaMemsetAsync)");
  w.data = p;
  return add_buffer(p, w);
}

Tensor CudaBackend::alloc_kv(int64_t rows, int64_t cols) {
  return alloc(DType::F16, rows, cols, Usage::KvCache);
}

Tensor CudaBackend::upload_weight(const HostWeight& w) {
  cuda::WeightArgs a;
  a.dtype = w.dtype;
  a.rows = w.rows;
  a.cols = w.cols;
  const std::string what = "weight " + w.name;
  const auto copy = [&](void* dst, const void* src, size_t bytes) {
    check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "upload of " + what);
  };
  if (!w.quantized()) {
    if (w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
      fail(what + " has the unsupported dtype " + std::string(dtype_name(w.dtype)));
    const size_t bytes = size_t(w.rows * w.cols) * dtype_size(w.dtype);
    if (w.nbytes < bytes)
      fail(what + " holds " + std::to_string(w.nbytes) + " bytes, expected " +
           std::to_string(bytes));
    void* p = device_alloc(bytes, what, Usage::Weights);
    copy(p, w.data, bytes);
    a.data = p;
    return add_buffer(p, a);
  }

  if (!w.quant) fail(what + " is 4-bit but has no quantization state");
  const QuantState& q = *w.quant;
  const int64_t n = w.rows * w.cols;
  if (q.numel() != n) fail(what + ": the quantization state's shape does not match the weight");
  const auto power_of_two = [](int n) { return n > 0 && (n & (n - 1)) == 0; };
  if (!power_of_two(q.blocksize) || (q.nested && !power_of_two(q.nested_blocksize)))
    fail(what + ": the CUDA backend needs power-of-two quantization block sizes");
  const size_t packed = size_t(n + 1) / 2, blocks = size_t(q.num_blocks());
  const size_t nested_blocks =
      q.nested ? (blocks + q.nested_blocksize - 1) / q.nested_blocksize : 0;
  if (w.nbytes < packed) fail(what + " holds too few bytes for its shape");
  if (q.nested ? (q.absmax_q.size() < blocks || q.nested_absmax.size() < nested_blocks)
               : q.absmax.size() < blocks)
    fail(what + ": the quantization state has too few absmax values");

  // One allocation: codes | code table | absmax (or quantized absmax | nested absmax | its code).
  const cuda::QuantLayout at = cuda::quant_layout(n, q.blocksize, q.nested, q.nested_blocksize);
  char* p = static_cast<char*>(device_alloc(at.bytes, what, Usage::Weights));
  cuda::point_at(a, p, at, q.blocksize, q.nested, q.nested_blocksize);
  a.compute = w.compute;
  copy(p, w.data, packed);
  copy(p + at.code_at, q.code.data(), 16 * sizeof(float));
  if (q.nested) {
    copy(p + at.absmax_at, q.absmax_q.data(), blocks);
    copy(p + at.nested_absmax_at, q.nested_absmax.data(), nested_blocks * sizeof(float));
    copy(p + at.nested_code_at, q.nested_code.data(), 256 * sizeof(float));
    a.offset = q.offset;
  } else {
    copy(p + at.absmax_at, q.absmax.data(), blocks * sizeof(float));
  }
  return add_buffer(p, a);
}

Tensor CudaBackend::upload_quantized(const HostWeight& w, const QuantSpec& spec) {
  // NIBBLE_QUANTIZE_ON=cpu keeps the host's quantizer, for comparison.
  const char* on = std::getenv("NIBBLE_QUANTIZE_ON");
  if ((on && std::string_view(on) == "cpu") || !cuda::Quantizer::supports(w, spec))
    return Backend::upload_quantized(w, spec);
  const cuda::QuantLayout at =
      cuda::quant_layout(w.rows * w.cols, spec.blocksize, spec.double_quant, kNestedBlocksize);
  char* p = static_cast<char*>(device_alloc(at.bytes, "weight " + w.name, Usage::Weights));
  cuda::WeightArgs a;
  a.dtype = packed_dtype(spec.type);
  a.rows = w.rows;
  a.cols = w.cols;
  a.compute = w.compute;
  cuda::point_at(a, p, at, spec.blocksize, spec.double_quant, kNestedBlocksize);
  const size_t index = buffers_.size();  // the offset of double quantization arrives later
  quantizer_->quantize(w, spec, p,
                       [this, index](float offset) { buffers_[index].weight.offset = offset; });
  return add_buffer(p, a);
}

MemoryInfo CudaBackend::memory() const {
  MemoryInfo m = memory_;
  size_t free = 0, total = 0;
  if (cudaMemGetInfo(&free, &total) == cudaSuccess) {
    m.device_used = total - free;
    m.device_budget = total;
  }
  return m;
}

double CudaBackend::measure_bandwidth() {
  const size_t bytes = size_t(1) << 30;
  char* buf = static_cast<char*>(device_alloc(2 * bytes, "the bandwidth test", Usage::Activations));
  cudaEvent_t start = nullptr, stop = nullptr;
  double best = 0;
  cudaError_t e = cudaEventCreate(&start);
  if (e == cudaSuccess) e = cudaEventCreate(&stop);
  for (int rep = 0; rep < 4 && e == cudaSuccess; ++rep) {  // the first is a warm-up
    float ms = 0;
    e = cudaEventRecord(start, stream_);
    if (e == cudaSuccess)
      e = cudaMemcpyAsync(buf + bytes, buf, bytes, cudaMemcpyDeviceToDevice, stream_);
    if (e == cudaSuccess) e = cudaEventRecord(stop, stream_);
    if (e == cudaSuccess) e = cudaEventSynchronize(stop);
    if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, start, stop);
    if (e == cudaSuccess && rep > 0) best = std::max(best, 2.0 * double(bytes) / (ms * 1e-3) / 1e9);
  }
  if (start) cudaEventDestroy(start);
  if (stop) cudaEventDestroy(stop);
  cudaFree(buf);
  memory_.activations -= 2 * bytes;
  check(e, "measure_bandwidth");
  return best;  // read + written bytes per second, as the other backends report
}

void* CudaBackend::scratch_memory(Scratch which, size_t bytes, const char* op) {
  ScratchBuffer& b = scratch_[int(which)];
  if (bytes <= b.bytes) return b.ptr;
  // Ops recorded or captured so far point at the old scratch: run them, then forget the graph.
  const std::string what = std::string(op) + " (scratch)";
  if (recording_) run_recorded_ops();
  destroy_graphs();
  check(cudaStreamSynchronize(stream_), what);
  check(cudaFree(b.ptr), what);
  memory_.activations -= b.bytes;
  b = {};
  b.ptr = device_alloc(bytes, what, Usage::Activations);
  b.bytes = bytes;
  if (which == Scratch::kCounts) check(cudaMemsetAsync(b.ptr, 0, bytes, stream_), what);
  return b.ptr;
}

const uint16_t* CudaBackend::operands_of(Tensor t, ComputeDType compute) const {
  const Tensor& k = kept_.of;
  const bool same = k.buffer == t.buffer && k.dtype == t.dtype && k.rows == t.rows &&
                    k.cols == t.cols && k.row_offset == t.row_offset;
  return same && kept_.compute == compute && kept_.after == ops_enqueued_ ? kept_.at : nullptr;
}

void CudaBackend::keep_operands(Tensor t, const uint16_t* at, ComputeDType compute) {
  kept_ = {t, at, compute, ops_enqueued_};
}

// --- transfers ----------------------------------------------------------------------------------

void CudaBackend::write(Tensor dst, const void* src) {
  if (!pending_.empty()) run_recorded_ops();  // keep the write after the ops issued before it
  kept_ = {};  // the write may change the tensor whose operands were kept
  check(cudaMemcpyAsync(ptr<char>(dst), src, size_t(dst.numel()) * dtype_size(dst.dtype),
                        cudaMemcpyHostToDevice, stream_),
        "write");
}

void CudaBackend::read(Tensor src, void* dst) {
  if (const Buffer& b = buffer(src); b.host && b.written_in <= steps_) {
    if (b.written_in > 0)
      check(cudaEventSynchronize(step_done_[b.written_in % 2]), "read (the step that wrote it)");
    const size_t size = dtype_size(src.dtype);
    std::memcpy(dst, static_cast<const char*>(b.host) + size_t(src.row_offset * src.cols) * size,
                size_t(src.numel()) * size);
    return;
  }
  if (!pending_.empty()) run_recorded_ops();
  check(cudaMemcpyAsync(dst, ptr<char>(src), size_t(src.numel()) * dtype_size(src.dtype),
                        cudaMemcpyDeviceToHost, stream_),
        "read");
  check(cudaStreamSynchronize(stream_), "read (the ops before it)");
}

// --- steps and graphs ---------------------------------------------------------------------------

void CudaBackend::begin_step(const StepInfo& step) {
  step_ = step;
  kept_ = {};  // operands are handed on within a step only
  const int32_t state[3] = {step.pos0, step.n_tokens, std::bit_cast<int32_t>(step.u)};
  // Pageable source: the copy is staged before this returns, so `state` may go out of scope.
  check(cudaMemcpyAsync(step_state_, state, sizeof state, cudaMemcpyHostToDevice, stream_),
        "begin_step");
  // Decode steps are recorded and replayed as one graph; timing needs the launches one by one.
  recording_ = step.n_tokens == 1 && !profiling_;
  // In a decode step each kernel's start overlaps the tail of the one before it (H100: 7B tg128
  // +11 %, TinyLlama +10 %); prompt steps lost 7-8 % with it (docs/PERF.md, "Decode", session 11).
  cuda::set_programmatic_launch(programmatic_ && step.n_tokens == 1);
}

void CudaBackend::end_step() {
  if (!pending_.empty()) {
    if (graphs_[1].exec && graphs_[1].signature == signature_) std::swap(graphs_[0], graphs_[1]);
    const Graph& g =
        graphs_[0].exec && graphs_[0].signature == signature_ ? graphs_[0] : capture_graph();
    check(cudaGraphLaunch(g.exec, stream_), "decode step (graph launch)");
  }
  pending_.clear();
  signature_.clear();
  recording_ = false;
  check(cudaEventRecord(step_done_[++steps_ % 2], stream_), "end_step (cudaEventRecord)");
  if (profiling_) {
    last_marks_ = std::move(marks_);
    marks_.clear();
    event_set_ ^= 1;
    events_used_ = 0;
  }
}

void CudaBackend::enqueue(const char* op, std::span<const Tensor> tensors,
                          std::initializer_list<double> params, Launch launch) {
  ++ops_enqueued_;
  if (!recording_) {
    check(launch(stream_), op);
    return;
  }
  signature_ += op;
  for (const Tensor& t : tensors) {
    append_bytes(signature_, t.buffer);
    append_bytes(signature_, t.dtype);
    append_bytes(signature_, t.rows);
    append_bytes(signature_, t.cols);
    append_bytes(signature_, t.row_offset);
  }
  for (double p : params) append_bytes(signature_, p);
  pending_.push_back({op, std::move(launch)});
}

void CudaBackend::run_recorded_ops() {
  recording_ = false;
  std::vector<PendingOp> ops = std::move(pending_);
  pending_.clear();
  signature_.clear();
  for (PendingOp& p : ops) check(p.launch(stream_), p.op);
}

void CudaBackend::destroy_graphs() {
  for (Graph& g : graphs_) {
    if (g.exec) cudaGraphExecDestroy(g.exec);
    g = {};
  }
}

CudaBackend::Graph& CudaBackend::capture_graph() {
  std::swap(graphs_[0], graphs_[1]);  // the one used longest ago goes
  Graph& g = graphs_[0];
  if (g.exec) cudaGraphExecDestroy(g.exec);
  g = {};
  check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "decode graph capture");
  for (PendingOp& p : pending_) {
    if (const cudaError_t e = p.launch(stream_); e != cudaSuccess) {
      cudaGraph_t broken = nullptr;
      cudaStreamEndCapture(stream_, &broken);
      if (broken) cudaGraphDestroy(broken);
      check(e, std::string(p.op) + " (decode graph capture)");
    }
  }
  cudaGraph_t graph = nullptr;
  check(cudaStreamEndCapture(stream_, &graph), "decode graph capture");
  const cudaError_t e = cudaGraphInstantiate(&g.exec, graph, 0);
  cudaGraphDestroy(graph);
  if (e != cudaSuccess) g.exec = nullptr;
  check(e, "decode graph instantiation");
  g.signature = signature_;
  return g;
}

// --- ops ----------------------------------------------------------------------------------------

void CudaBackend::require(bool ok, const char* op, const std::string& what) const {
  if (!ok) fail(std::string("cuda ") + op + ": " + what);
}

cuda::WeightArgs CudaBackend::weight_args(Tensor t, const char* op) const {
  cuda::WeightArgs w = buffer(t).weight;
  if (t.row_offset == 0 && t.rows == w.rows) return w;
  const bool is_4bit = w.dtype == DType::NF4 || w.dtype == DType::FP4;
  require(!is_4bit && t.row_offset + t.rows <= w.rows, op, "invalid view of a weight");
  w.data = static_cast<const char*>(w.data) + t.row_offset * w.cols * int64_t(dtype_size(w.dtype));
  w.rows = t.rows;
  return w;
}

void CudaBackend::embed(Tensor out, Tensor table, Tensor ids) {
  const cuda::WeightArgs w = weight_args(table, "embed");
  require(out.cols == w.cols && ids.numel() == out.rows, "embed", "shape mismatch");
  float* o = ptr<float>(out);
  const int32_t* id = ptr<int32_t>(ids);
  const int64_t rows = out.rows;
  enqueue("embed", {out, table, ids}, {},
          [=](cudaStream_t s) { return cuda::launch_embed(s, o, rows, w, id); });
}

void CudaBackend::rms_norm(Tensor out, Tensor x, Tensor weight, float eps) {
  cuda::WeightArgs w = weight_args(weight, "rms_norm");
  require(w.rows * w.cols == x.cols && out.rows == x.rows && out.cols == x.cols, "rms_norm",
          "shape mismatch");
  w.rows = 1;
  w.cols = x.cols;
  float* o = ptr<float>(out);
  const float* in = ptr<float>(x);
  const int64_t rows = x.rows;
  enqueue("rms_norm", {out, x, weight}, {eps},
          [=](cudaStream_t s) { return cuda::launch_rms_norm(s, o, in, rows, w, eps); });
}

void CudaBackend::rms_norm_operands(Tensor xn, Tensor x, Tensor norm, float eps,
                                    ComputeDType compute) {
  if (compute == ComputeDType::F32 || x.cols % 2 != 0) return rms_norm(xn, x, norm, eps);
  cuda::WeightArgs w = weight_args(norm, "rms_norm");
  require(w.rows * w.cols == x.cols && xn.rows == x.rows && xn.cols == x.cols, "rms_norm",
          "shape mismatch");
  w.rows = 1;
  w.cols = x.cols;
  uint16_t* operands = static_cast<uint16_t*>(
      scratch_memory(Scratch::kOperands, size_t(x.rows * x.cols) * 2, "rms_norm"));
  float* o = ptr<float>(xn);
  const float* in = ptr<float>(x);
  const int64_t rows = x.rows;
  enqueue("rms_norm", {xn, x, norm}, {eps, double(compute)}, [=](cudaStream_t s) {
    return cuda::launch_rms_norm(s, o, in, rows, w, eps, operands, compute);
  });
  keep_operands(xn, operands, compute);
}

void CudaBackend::matmul(Tensor out, Tensor x, Tensor wt) {
  const cuda::WeightArgs w = weight_args(wt, "matmul");
  require(x.cols == w.cols && out.cols == w.rows && out.rows == x.rows, "matmul", "shape mismatch");
  float* o = ptr<float>(out);
  const float* in = ptr<float>(x);
  const int64_t rows = x.rows;
  if (tensor_core_products_fit(x, {{out, wt}}))
    return tensor_core_products("matmul", x, {{out, wt}}, false);
  enqueue("matmul", {out, x, wt}, {},
          [=](cudaStream_t s) { return cuda::launch_matmul(s, o, in, rows, w); });
}

CudaBackend::Products CudaBackend::products(const char* op, Tensor x,
                                            std::initializer_list<Projection> projections) const {
  require(projections.size() <= cuda::kMaxGemvTargets, op, "too many products for one launch");
  Products pr;
  pr.tensors[0] = x;
  for (const Projection& p : projections) {
    const cuda::WeightArgs w = weight_args(p.w, op);
    require(x.cols == w.cols && p.out.cols == w.rows && p.out.rows == x.rows, op, "shape mismatch");
    pr.tensors[1 + 2 * pr.count] = p.out;
    pr.tensors[2 + 2 * pr.count] = p.w;
    pr.targets[pr.count++] = {w, ptr<float>(p.out)};
  }
  return pr;
}

bool CudaBackend::tensor_core_products_fit(Tensor x,
                                           std::initializer_list<Projection> projections) const {
  if (x.rows < 2 || projections.size() > cuda::kMaxGemvTargets) return false;
  const ComputeDType compute = buffer(projections.begin()->w).weight.compute;
  for (const Projection& p : projections) {
    const cuda::WeightArgs& w = buffer(p.w).weight;
    // One compute dtype for all: the operands are x rounded to it.
    if (p.w.row_offset != 0 || p.w.rows != w.rows || w.compute != compute ||
        !cuda::gemm_4bit_fits(w))
      return false;
  }
  return true;
}

void CudaBackend::tensor_core_products(const char* op, Tensor x,
                                       std::initializer_list<Projection> projections,
                                       bool accumulate) {
  const Products pr = products(op, x, projections);
  const std::array<cuda::GemvTarget, cuda::kMaxGemvTargets> targets = pr.targets;
  const size_t count = pr.count;
  const uint16_t* x16 = operands_of(x, targets[0].w.compute);  // else converted here
  const int64_t rows = x.rows, n = rows * x.cols;
  const float* in = ptr<float>(x);
  uint16_t* operands =
      x16 ? nullptr : static_cast<uint16_t*>(scratch_memory(Scratch::kOperands, size_t(n) * 2, op));
  const uint16_t* from = x16 ? x16 : operands;
  const ComputeDType compute = targets[0].w.compute;
  enqueue(op, pr.signature(), {double(accumulate), double(!x16)}, [=](cudaStream_t s) {
    cudaError_t e = operands ? cuda::launch_operands(s, operands, in, n, compute) : cudaSuccess;
    for (size_t i = 0; i < count && e == cudaSuccess; ++i)
      e = cuda::launch_gemm_4bit(s, targets[i].out, from, rows, targets[i].w, accumulate);
    return e;
  });
}

bool CudaBackend::one_gemv_launch(Tensor x, std::initializer_list<Projection> projections) const {
  if (x.rows != 1 || projections.size() > cuda::kMaxGemvTargets) return false;
  const cuda::WeightArgs first = buffer(projections.begin()->w).weight;
  for (const Projection& p : projections) {
    const cuda::WeightArgs& w = buffer(p.w).weight;
    if (p.w.row_offset != 0 || p.w.rows != w.rows || w.compute != first.compute ||
        !cuda::gemv_4bit_fits(ptr<float>(x), w))
      return false;
  }
  return true;
}

void CudaBackend::gemv_4bit(const char* op, Tensor x, std::initializer_list<Projection> projections,
                            cuda::GemvEpilogue epilogue) {
  const Products pr = products(op, x, projections);
  const std::array<cuda::GemvTarget, cuda::kMaxGemvTargets> targets = pr.targets;
  const size_t n = pr.count;
  const uint16_t* x16 = operands_of(x, targets[0].w.compute);  // else the kernel rounds x
  const float* in = ptr<float>(x);
  enqueue(op, pr.signature(), {double(epilogue), double(!x16)}, [=](cudaStream_t s) {
    return cuda::launch_gemv_4bit(s, in, x16, targets.data(), n, epilogue);
  });
}

void CudaBackend::matmul_add(Tensor out, Tensor x, Tensor w, Tensor scratch) {
  if (one_gemv_launch(x, {{out, w}}))
    return gemv_4bit("matmul_add", x, {{out, w}}, cuda::GemvEpilogue::kAdd);
  if (tensor_core_products_fit(x, {{out, w}}))
    return tensor_core_products("matmul_add", x, {{out, w}}, true);
  Backend::matmul_add(out, x, w, scratch);
}

void CudaBackend::norm_matmuls(Tensor x, Tensor norm, float eps, Tensor xn,
                               std::initializer_list<Projection> projections) {
  const bool gemv = one_gemv_launch(xn, projections);
  if (!gemv && !tensor_core_products_fit(xn, projections))
    return Backend::norm_matmuls(x, norm, eps, xn, projections);
  rms_norm_operands(xn, x, norm, eps, buffer(projections.begin()->w).weight.compute);
  if (gemv) return gemv_4bit("norm_matmuls", xn, projections, cuda::GemvEpilogue::kStore);
  tensor_core_products("norm_matmuls", xn, projections, false);
}

void CudaBackend::norm_matmul_swiglu(Tensor out, Tensor x, Tensor norm, float eps, Tensor xn,
                                     Tensor gate, Tensor up, Tensor scratch) {
  // Both products of one x together, then the SwiGLU (in the GEMV's store it lost: TinyLlama
  // tg128 693 -> 650 tok/s on the H100, docs/PERF.md "Decode", session 13).
  const std::initializer_list<Projection> both = {{out, gate}, {scratch, up}};
  const bool gemv = one_gemv_launch(xn, both);
  if (!gemv && !tensor_core_products_fit(xn, both))
    return Backend::norm_matmul_swiglu(out, x, norm, eps, xn, gate, up, scratch);
  rms_norm_operands(xn, x, norm, eps, buffer(gate).weight.compute);
  if (gemv)
    gemv_4bit("norm_matmul_swiglu", xn, both, cuda::GemvEpilogue::kStore);
  else
    tensor_core_products("norm_matmul_swiglu", xn, both, false);
  swiglu_operands(out, out, scratch, buffer(gate).weight.compute);
}

void CudaBackend::rope(Tensor x, int n_heads, int head_dim, Tensor inv_freq) {
  require(int64_t(n_heads) * head_dim <= x.cols && head_dim % 2 == 0 &&
              inv_freq.numel() >= head_dim / 2,
          "rope", "shape mismatch");
  float* data = ptr<float>(x);
  const float* inv = ptr<float>(inv_freq);
  const int64_t rows = x.rows, cols = x.cols;
  const int32_t* step = step_state_;
  enqueue("rope", {x, inv_freq}, {double(n_heads), double(head_dim)}, [=](cudaStream_t s) {
    return cuda::launch_rope(s, data, rows, cols, n_heads, head_dim, inv, step);
  });
}

void CudaBackend::require_kv_store(const char* op, Tensor k_cache, Tensor v_cache, Tensor k,
                                   Tensor v) const {
  require(k_cache.dtype == DType::F16 && v_cache.dtype == DType::F16, op,
          "the caches must come from alloc_kv");
  require(k.cols == k_cache.cols && v.cols == v_cache.cols && k.cols == v.cols &&
              k.rows == v.rows && k_cache.rows == v_cache.rows,
          op, "shape mismatch");
  require(step_.pos0 >= 0 && step_.pos0 + k.rows <= k_cache.rows, op,
          "the step's positions are outside the cache");
}

void CudaBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v) {
  require_kv_store("kv_store", k_cache, v_cache, k, v);
  uint16_t* kc = ptr<uint16_t>(k_cache);
  uint16_t* vc = ptr<uint16_t>(v_cache);
  const float* kd = ptr<float>(k);
  const float* vd = ptr<float>(v);
  const int64_t rows = k.rows, cols = k.cols;
  const int32_t* step = step_state_;
  enqueue("kv_store", {k_cache, v_cache, k, v}, {}, [=](cudaStream_t s) {
    return cuda::launch_kv_store(s, kc, vc, kd, vd, rows, cols, step);
  });
}

void CudaBackend::rope_kv_store(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                                const AttentionShape& shape, Tensor inv_freq) {
  const int64_t q_width = int64_t(shape.n_heads) * shape.head_dim;
  if (k.cols != int64_t(shape.n_kv_heads) * shape.head_dim || q.cols < q_width)  // a tail: unfused
    return Backend::rope_kv_store(q, k, v, k_cache, v_cache, shape, inv_freq);
  require_kv_store("rope_kv_store", k_cache, v_cache, k, v);
  require(shape.head_dim % 2 == 0 && inv_freq.numel() >= shape.head_dim / 2 && q.rows == k.rows,
          "rope_kv_store", "shape mismatch");
  float* qd = ptr<float>(q);
  float* kd = ptr<float>(k);
  const float* vd = ptr<float>(v);
  uint16_t* kc = ptr<uint16_t>(k_cache);
  uint16_t* vc = ptr<uint16_t>(v_cache);
  const float* inv = ptr<float>(inv_freq);
  const cuda::RopeKvShape sh{q.rows,        q.cols,           k.cols,
                             shape.n_heads, shape.n_kv_heads, shape.head_dim};
  const int32_t* step = step_state_;
  enqueue("rope_kv_store", {q, k, v, k_cache, v_cache, inv_freq},
          {double(shape.n_heads), double(shape.n_kv_heads), double(shape.head_dim)},
          [=](cudaStream_t s) {
            return cuda::launch_rope_kv_store(s, qd, kd, vd, kc, vc, sh, inv, step);
          });
}

void CudaBackend::attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                            const AttentionShape& shape) {
  attention("attention", out, q, k_cache, v_cache, shape, std::nullopt);
}

void CudaBackend::rope_kv_attention(Tensor out, Tensor q, Tensor k, Tensor v, Tensor k_cache,
                                    Tensor v_cache, const AttentionShape& shape, Tensor inv_freq) {
  // One query whose heads fill q, k and v, with 16-byte aligned cache rows; else unfused.
  const bool fused = q.rows == 1 && q.cols == int64_t(shape.n_heads) * shape.head_dim &&
                     k.cols == int64_t(shape.n_kv_heads) * shape.head_dim &&
                     cuda::attention_rows_wide(k_cache.cols, shape);
  if (!fused) return Backend::rope_kv_attention(out, q, k, v, k_cache, v_cache, shape, inv_freq);
  require_kv_store("rope_kv_attention", k_cache, v_cache, k, v);
  require(inv_freq.numel() >= shape.head_dim / 2 && q.rows == k.rows, "rope_kv_attention",
          "shape mismatch");
  attention("rope_kv_attention", out, q, k_cache, v_cache, shape,
            std::array<Tensor, 3>{k, v, inv_freq});
}

void CudaBackend::attention(const char* op, Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                            const AttentionShape& shape,
                            std::optional<std::array<Tensor, 3>> rope) {
  require(shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0 &&
              shape.head_dim % 2 == 0 && shape.head_dim <= 256,
          op, "unsupported head configuration");
  require(int64_t(shape.n_heads) * shape.head_dim <= q.cols &&
              int64_t(shape.n_kv_heads) * shape.head_dim <= k_cache.cols &&
              k_cache.cols == v_cache.cols && out.rows == q.rows && out.cols == q.cols &&
              k_cache.dtype == DType::F16 && v_cache.dtype == DType::F16,
          op, "shape mismatch");
  require(step_.pos0 >= 0 && step_.pos0 + q.rows <= k_cache.rows, op,
          "the step's positions are outside the cache");
  float* o = ptr<float>(out);
  const float* qd = ptr<float>(q);
  const uint16_t* kc = ptr<uint16_t>(k_cache);
  const uint16_t* vc = ptr<uint16_t>(v_cache);
  const int64_t rows = q.rows, q_cols = q.cols, kv_cols = k_cache.cols;
  const int32_t* step = step_state_;
  // The o projection's operands beside the output, where the model computes in 16 bits and the
  // heads fill q's columns (so that every operand is written).
  uint16_t* operands =
      shape.compute != ComputeDType::F32 && int64_t(shape.n_heads) * shape.head_dim == q_cols
          ? static_cast<uint16_t*>(
                scratch_memory(Scratch::kOperands, size_t(rows * q_cols) * 2, op))
          : nullptr;
  if (!rope && cuda::attention_prompt_fits(rows, q_cols, kv_cols, shape)) {  // on the tensor cores
    enqueue(op, {out, q, k_cache, v_cache},
            {double(shape.n_heads), double(shape.n_kv_heads), double(shape.head_dim),
             double(shape.sliding_window), double(shape.compute)},
            [=](cudaStream_t s) {
              return cuda::launch_attention_prompt(s, o, qd, rows, q_cols, kc, vc, kv_cols, shape,
                                                   step, operands);
            });
    return keep_operands(out, operands, shape.compute);
  }
  // A recorded graph is replayed at later positions: size it for the whole cache.
  const int64_t max_keys = recording_ ? k_cache.rows : step_.pos0 + q.rows;
  float* partials = static_cast<float*>(scratch_memory(
      Scratch::kPartials,
      size_t(cuda::attention_scratch_floats(q.rows, shape, max_keys)) * sizeof(float), op));
  unsigned* counts = static_cast<unsigned*>(
      scratch_memory(Scratch::kCounts, size_t(rows * shape.n_heads) * sizeof(unsigned), op));
  std::array<Tensor, 7> tensors{out, q, k_cache, v_cache};  // the step's signature
  std::optional<cuda::AttentionRope> fused;
  if (rope) {
    const auto [k, v, inv_freq] = *rope;
    std::copy(rope->begin(), rope->end(), tensors.begin() + 4);
    fused = cuda::AttentionRope{ptr<float>(k), ptr<float>(v), ptr<float>(inv_freq),
                                ptr<uint16_t>(k_cache), ptr<uint16_t>(v_cache)};
  }
  enqueue(op, tensors,
          {double(shape.n_heads), double(shape.n_kv_heads), double(shape.head_dim),
           double(shape.sliding_window), double(max_keys), double(shape.compute)},
          [=](cudaStream_t s) {
            return cuda::launch_attention(s, o, qd, rows, q_cols, kc, vc, kv_cols, shape, max_keys,
                                          partials, counts, step, operands,
                                          fused ? &*fused : nullptr);
          });
  keep_operands(out, operands, shape.compute);
}

void CudaBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  swiglu_operands(out, gate, up, ComputeDType::F32);
}

void CudaBackend::swiglu_operands(Tensor out, Tensor gate, Tensor up, ComputeDType compute) {
  require(out.numel() == gate.numel() && out.numel() == up.numel(), "swiglu", "shape mismatch");
  float* o = ptr<float>(out);
  const float* g = ptr<float>(gate);
  const float* u = ptr<float>(up);
  const int64_t n = out.numel();
  uint16_t* operands =
      compute == ComputeDType::F32
          ? nullptr
          : static_cast<uint16_t*>(scratch_memory(Scratch::kOperands, size_t(n) * 2, "swiglu"));
  enqueue("swiglu", {out, gate, up}, {double(compute)},
          [=](cudaStream_t s) { return cuda::launch_swiglu(s, o, g, u, n, operands, compute); });
  keep_operands(out, operands, compute);
}

void CudaBackend::add(Tensor x, Tensor y) {
  require(x.numel() == y.numel(), "add", "shape mismatch");
  float* a = ptr<float>(x);
  const float* b = ptr<float>(y);
  const int64_t n = x.numel();
  enqueue("add", {x, y}, {}, [=](cudaStream_t s) { return cuda::launch_add(s, a, b, n); });
}

void CudaBackend::argmax(Tensor ids, Tensor logits) {
  require(ids.numel() == logits.rows, "argmax", "shape mismatch");
  int32_t* o = ptr<int32_t>(ids);
  const float* l = ptr<float>(logits);
  const int64_t rows = logits.rows, cols = logits.cols;
  buffers_[ids.buffer - 1].written_in = steps_ + 1;  // by the step being enqueued
  enqueue("argmax", {ids, logits}, {},
          [=](cudaStream_t s) { return cuda::launch_argmax(s, o, l, rows, cols); });
}

void CudaBackend::sample(Tensor ids, Tensor logits, const SamplerConfig& config) {
  require(logits.rows == 1 && ids.numel() == 1, "sample", "one row of logits, one id");
  int32_t* o = ptr<int32_t>(ids);
  const float* l = ptr<float>(logits);
  const int64_t cols = logits.cols;
  const SamplerConfig c = config;
  buffers_[ids.buffer - 1].written_in = steps_ + 1;  // by the step being enqueued
  const cuda::StepPtr step = step_state_;
  enqueue("sample", {ids, logits}, {c.temperature, double(c.top_k), c.top_p, c.min_p},
          [=](cudaStream_t s) {
            return cuda::launch_sample(s, o, l, cols, step, c.temperature, c.top_k, c.top_p,
                                       c.min_p);
          });
}

// --- per-layer timing ---------------------------------------------------------------------------

cudaEvent_t CudaBackend::next_event() {
  std::vector<cudaEvent_t>& set = events_[event_set_];
  if (events_used_ == set.size()) {
    cudaEvent_t e = nullptr;
    check(cudaEventCreate(&e), "profiling (cudaEventCreate)");
    set.push_back(e);
  }
  return set[events_used_++];
}

void CudaBackend::phase_begin(int layer, Phase phase) {
  if (!profiling_) return;
  const cudaEvent_t begin = next_event();
  check(cudaEventRecord(begin, stream_), "phase_begin");
  marks_.push_back({layer, phase, begin, nullptr});
}

void CudaBackend::phase_end(int layer, Phase phase) {
  if (!profiling_ || marks_.empty() || marks_.back().end) return;
  Mark& m = marks_.back();
  if (m.layer != layer || m.phase != phase) return;
  m.end = next_event();
  check(cudaEventRecord(m.end, stream_), "phase_end");
}

std::vector<LayerTime> CudaBackend::step_times() {
  std::vector<LayerTime> times;
  for (const Mark& m : last_marks_) {
    if (!m.end) continue;
    float ms = 0;
    check(cudaEventSynchronize(m.end), "step_times");
    check(cudaEventElapsedTime(&ms, m.begin, m.end), "step_times");
    times.push_back({m.layer, m.phase, double(ms)});
  }
  return times;
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device) {
  return std::make_unique<CudaBackend>(device);
}

}  // namespace nibble
