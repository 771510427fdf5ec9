#include "engine/cuda/quantizer.h"

#include <algorithm>
#include <bit>
#include <thread>

#include "engine/error.h"
#include "loader/parallel_copy.h"
#include "loader/quantize.h"

namespace nibble::cuda {

namespace {

// 4 chunks in flight: the host fills one while the device copies and quantizes the others.
constexpr size_t kSlots = 4;
// Weights whose results (status, offset) are read back in one go; more drain the pending ones.
constexpr size_t kMaxPending = 1024;
constexpr uint32_t kNoError = 0xffffffffu;

void check(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) fail("CUDA error in " + what + ": " + cudaGetErrorString(e));
}

size_t align_up(size_t n) {
  return (n + 255) / 256 * 256;
}

bool power_of_two(int v) {
  return v > 0 && (v & (v - 1)) == 0;
}

}  // namespace

QuantLayout quant_layout(int64_t numel, int blocksize, bool nested, int nested_blocksize) {
  const size_t packed = size_t(numel + 1) / 2, blocks = size_t((numel + blocksize - 1) / blocksize);
  const size_t nested_blocks = nested ? (blocks + nested_blocksize - 1) / nested_blocksize : 0;
  QuantLayout at;
  at.code_at = align_up(packed);
  at.absmax_at = at.code_at + align_up(16 * sizeof(float));
  at.nested_absmax_at = at.absmax_at + align_up(nested ? blocks : blocks * sizeof(float));
  at.nested_code_at = at.nested_absmax_at + align_up(nested_blocks * sizeof(float));
  at.bytes = nested ? at.nested_code_at + 256 * sizeof(float) : at.nested_absmax_at;
  return at;
}

void point_at(WeightArgs& a, char* p, const QuantLayout& at, int blocksize, bool nested,
              int nested_blocksize) {
  a.data = p;
  a.code = reinterpret_cast<const float*>(p + at.code_at);
  a.block_shift = std::countr_zero(unsigned(blocksize));
  a.nested = nested;
  if (nested) {
    a.absmax_q = reinterpret_cast<const uint8_t*>(p + at.absmax_at);
    a.nested_absmax = reinterpret_cast<const float*>(p + at.nested_absmax_at);
    a.nested_code = reinterpret_cast<const float*>(p + at.nested_code_at);
    a.nested_shift = std::countr_zero(unsigned(nested_blocksize));
  } else {
    a.absmax = reinterpret_cast<const float*>(p + at.absmax_at);
  }
}

// --- the quantizer
// --------------------------------------------------------------------------------

// A weight whose result has not been read back yet.
struct Quantizer::Pending {
  std::string name;  // for the error message
  bool double_quant = false;
  std::function<void(float)> set_offset;
};

Quantizer::Quantizer(cudaStream_t stream, size_t chunk_bytes, unsigned copy_threads)
    : stream_(stream),
      chunk_bytes_(std::max<size_t>(chunk_bytes / 16384 * 16384, 16384)),
      copy_threads_(copy_threads ? copy_threads
                                 : std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u)) {}

Quantizer::~Quantizer() {
  release();  // the owner has waited for the stream; errors cannot be reported here
}

bool Quantizer::supports(const HostWeight& w, const QuantSpec& spec) {
  const int64_t numel = w.rows * w.cols;
  return (w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16) &&
         power_of_two(spec.blocksize) && spec.blocksize >= 64 && spec.blocksize <= 4096 &&
         numel > 0 && numel < (int64_t(1) << 31) && w.nbytes >= size_t(numel) * dtype_size(w.dtype);
}

void Quantizer::start() {
  started_ = true;  // release() frees whatever was allocated, even after a failure part-way
  check(cudaStreamCreateWithFlags(&copy_stream_, cudaStreamNonBlocking), "quantizer stream");
  for (size_t i = 0; i < kSlots; ++i) {
    void* host = nullptr;
    check(cudaHostAlloc(&host, chunk_bytes_, cudaHostAllocDefault), "the quantizer's staging");
    pinned_.push_back(static_cast<uint8_t*>(host));
    void* device = nullptr;
    check(cudaMalloc(&device, chunk_bytes_), "the quantizer's staging");
    device_slots_.push_back(device);
    for (auto* events : {&copied_, &used_}) {
      cudaEvent_t e = nullptr;
      check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "quantizer event");
      events->push_back(e);
    }
  }
  // The code tables every weight's allocation gets a copy of: NF4 | FP4 | the nested code.
  std::vector<float> tables(quant_code(QuantType::NF4).begin(), quant_code(QuantType::NF4).end());
  tables.insert(tables.end(), quant_code(QuantType::FP4).begin(), quant_code(QuantType::FP4).end());
  tables.insert(tables.end(), dynamic_map_signed().begin(), dynamic_map_signed().end());
  check(cudaMalloc(&tables_, tables.size() * 4), "the quantizer's tables");
  check(cudaMemcpy(tables_, tables.data(), tables.size() * 4, cudaMemcpyHostToDevice),
        "the quantizer's tables");
  void* results = nullptr;
  check(cudaMalloc(&results, kMaxPending * 8), "the quantizer's results");
  results_ = static_cast<uint32_t*>(results);
  void* readback = nullptr;
  check(cudaHostAlloc(&readback, kMaxPending * 8, cudaHostAllocDefault), "the quantizer's results");
  readback_ = static_cast<uint32_t*>(readback);
  copier_ = std::make_unique<ParallelCopy>(copy_threads_);
}

float* Quantizer::scratch(size_t floats) {
  if (floats > scratch_floats_) {
    // cudaFree waits for the device: the kernels still reading the old scratch are done.
    check(cudaFree(scratch_), "the quantizer's scratch");
    scratch_ = nullptr;
    scratch_floats_ = 0;
    const size_t size = std::max<size_t>(floats, 1 << 20);
    void* p = nullptr;
    check(cudaMalloc(&p, size * 4), "the quantizer's scratch");
    scratch_ = static_cast<float*>(p);
    scratch_floats_ = size;
  }
  return scratch_;
}

void Quantizer::quantize(const HostWeight& w, const QuantSpec& spec, char* dst,
                         std::function<void(float)> set_offset) {
  if (!started_) start();
  if (pending_.size() == kMaxPending) drain();
  const size_t index = pending_.size();
  pending_.push_back({w.name, spec.double_quant, std::move(set_offset)});
  uint32_t* status = results_ + 2 * index;
  float* offset = reinterpret_cast<float*>(status + 1);
  const std::string what = "quantizing " + w.name;

  const int64_t numel = w.rows * w.cols, blocks = (numel + spec.blocksize - 1) / spec.blocksize;
  const QuantLayout at = quant_layout(numel, spec.blocksize, spec.double_quant, kNestedBlocksize);
  const TorchReduce reduce = torch_cuda_reduce(blocks);
  float* absmax = spec.double_quant ? scratch(size_t(blocks + reduce.blocks))
                                    : reinterpret_cast<float*>(dst + at.absmax_at);
  check(cudaMemsetAsync(status, 0xff, 4, stream_), what);
  const float* code = static_cast<const float*>(tables_) + (spec.type == QuantType::NF4 ? 0 : 16);
  check(cudaMemcpyAsync(dst + at.code_at, code, 64, cudaMemcpyDeviceToDevice, stream_), what);

  const size_t element = dtype_size(w.dtype);
  const int64_t chunk = int64_t(chunk_bytes_ / element) / 4096 * 4096;  // whole blocks
  for (int64_t first = 0; first < numel; first += chunk) {
    const int64_t count = std::min(chunk, numel - first);
    const size_t slot = next_slot_, bytes = size_t(count) * element;
    next_slot_ = (next_slot_ + 1) % kSlots;
    // The slot's pinned memory is free once its last upload is done; its device memory once the
    // kernel that read it is done.
    check(cudaEventSynchronize(copied_[slot]), what);
    copier_->copy(pinned_[slot], w.data + first * int64_t(element), bytes);
    check(cudaStreamWaitEvent(copy_stream_, used_[slot]), what);
    check(cudaMemcpyAsync(device_slots_[slot], pinned_[slot], bytes, cudaMemcpyHostToDevice,
                          copy_stream_),
          what);
    check(cudaEventRecord(copied_[slot], copy_stream_), what);
    check(cudaStreamWaitEvent(stream_, copied_[slot]), what);
    const Pass1Args args{device_slots_[slot],
                         reinterpret_cast<uint32_t*>(dst + first / 2),
                         absmax + first / spec.blocksize,
                         status,
                         uint32_t(count),
                         uint32_t(first),
                         uint32_t(spec.blocksize)};
    check(launch_quantize_4bit(stream_, args, w.dtype, spec.type), what);
    check(cudaEventRecord(used_[slot], stream_), what);
  }
  if (spec.double_quant) {
    check(launch_absmax_mean(stream_, absmax, blocks, absmax + blocks, offset), what);
    check(launch_quantize_nested(stream_, absmax, blocks, offset,
                                 reinterpret_cast<uint8_t*>(dst + at.absmax_at),
                                 reinterpret_cast<float*>(dst + at.nested_absmax_at)),
          what);
    check(cudaMemcpyAsync(dst + at.nested_code_at, static_cast<const float*>(tables_) + 32, 256 * 4,
                          cudaMemcpyDeviceToDevice, stream_),
          what);
  }
  check(cudaMemcpyAsync(readback_ + 2 * index, status, 8, cudaMemcpyDeviceToHost, stream_), what);
}

void Quantizer::drain() {
  check(cudaStreamSynchronize(stream_), "quantizing weights");
  std::vector<Pending> pending = std::move(pending_);
  pending_.clear();
  for (size_t i = 0; i < pending.size(); ++i) {
    const uint32_t status = readback_[2 * i];
    if (status != kNoError) {
      const std::string message = "tensor " + pending[i].name + " has a non-finite value (" +
                                  (status & 1 ? "inf" : "NaN") + ") at element " +
                                  std::to_string(status >> 1) + "; it cannot be quantized";
      release();  // the backend stays usable for another model
      fail(message);
    }
    if (pending[i].double_quant) pending[i].set_offset(std::bit_cast<float>(readback_[2 * i + 1]));
  }
}

void Quantizer::finish() {
  if (!started_) return;
  drain();
  release();
}

void Quantizer::release() {
  if (copy_stream_) cudaStreamSynchronize(copy_stream_);
  if (stream_) cudaStreamSynchronize(stream_);
  copier_.reset();
  for (uint8_t* p : pinned_) cudaFreeHost(p);
  for (void* p : device_slots_) cudaFree(p);
  for (cudaEvent_t e : copied_) cudaEventDestroy(e);
  for (cudaEvent_t e : used_) cudaEventDestroy(e);
  pinned_.clear();
  device_slots_.clear();
  copied_.clear();
  used_.clear();
  cudaFree(tables_);
  cudaFree(results_);
  cudaFreeHost(readback_);
  cudaFree(scratch_);
  tables_ = nullptr;
  results_ = nullptr;
  readback_ = nullptr;
  scratch_ = nullptr;
  scratch_floats_ = 0;
  if (copy_stream_) cudaStreamDestroy(copy_stream_);
  copy_stream_ = nullptr;
  pending_.clear();
  next_slot_ = 0;
  started_ = false;
}

}  // namespace nibble::cuda
