// The seam between the one model forward (engine/model.cpp) and the devices that run it.
//
// Every op is *enqueued* on device buffers; nothing waits for the device until the host reads a
// value back (`read`). A backend may therefore record a whole step into one command buffer (Vulkan)
// or one graph (CUDA). Positions are step state (`begin_step`), not op arguments, so a recorded
// decode step can be replayed with only the position changing.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "engine/dtype.h"
#include "engine/model_config.h"
#include "engine/weights.h"

namespace nibble {

struct SamplerConfig;  // engine/sampler.h (C++20, which the CUDA sources including this are not)

// A 2-D view [rows, cols] of a buffer owned by a backend.
struct Tensor {
  uint32_t buffer = 0;  // backend-specific id; 0 is "no tensor"
  DType dtype = DType::F32;
  int64_t rows = 0, cols = 0;
  int64_t row_offset = 0;  // first row of this view inside its buffer

  Tensor slice_rows(int64_t first, int64_t count) const {
    Tensor t = *this;
    t.row_offset += first;
    t.rows = count;
    return t;
  }
  int64_t numel() const { return rows * cols; }
};

// Tokens [pos0, pos0 + n_tokens) are processed in this step.
struct StepInfo {
  int pos0 = 0;
  int n_tokens = 1;
  float u = 0;  // the draw in [0, 1) of the step's sample op (Sampler::draw)
};

struct AttentionShape {
  int n_heads = 0, n_kv_heads = 0, head_dim = 0;
  int sliding_window = 0;  // 0: no window
  // The model's matmul compute dtype. With a 16-bit one a backend may multiply float16 operands
  // on its matrix units (q and the probabilities rounded; the KV cache is float16 anyway);
  // with float32 it keeps float32 arithmetic, as the CPU reference does.
  ComputeDType compute = ComputeDType::F32;
};

enum class Phase : uint8_t { Attention, Mlp };
struct LayerTime {
  int layer = 0;
  Phase phase = Phase::Attention;
  double ms = 0;
};

// What the steps submitted so far held, counted from the backend's creation (all zero where a
// backend does not count): for `nibble bench`'s per-token figures.
struct StepStats {
  uint64_t steps = 0;
  uint64_t replayed = 0;    // steps submitted as recorded for the step before (Vulkan)
  uint64_t dispatches = 0;  // kernel launches
  uint64_t barriers = 0;    // pipeline barriers

  // What the steps between two readings held.
  StepStats operator-(const StepStats& earlier) const {
    return {steps - earlier.steps, replayed - earlier.replayed, dispatches - earlier.dispatches,
            barriers - earlier.barriers};
  }
};

// Output: activations the host reads after the steps that write them (a row of logits, the
// picked token ids); a backend may keep them where the host reads them fastest, and a read may
// wait only for the step that wrote them. Tallied as activations.
enum class Usage : uint8_t { Weights, KvCache, Activations, Output };
struct MemoryInfo {
  uint64_t weights = 0, kv_cache = 0, activations = 0;  // our own allocation tally
  uint64_t device_used = 0;    // what the driver reports for the whole process (0: unknown)
  uint64_t device_budget = 0;  // what we may use on the device (0: unlimited, e.g. host RAM)
  uint64_t total() const { return weights + kv_cache + activations; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;         // "cpu", "vulkan", "cuda"
  virtual std::string device_name() const = 0;  // e.g. "NVIDIA H100 80GB HBM3"

  // --- memory ---------------------------------------------------------------------------------
  virtual Tensor alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) = 0;
  virtual Tensor upload_weight(const HostWeight& w) = 0;
  // Stores a 16/32-bit weight in the 4-bit format `spec`, byte for byte what quantize_4bit
  // (loader/quantize.h) makes of it. The default quantizes on the host and calls upload_weight;
  // a GPU backend may quantize on the device while the next weights stream in, so the tensor is
  // complete (and a bad value reported) only once finish_uploads() has returned.
  virtual Tensor upload_quantized(const HostWeight& w, const QuantSpec& spec);
  // Completes the uploads still in flight and frees what only loading needed. Model calls it
  // after uploading its weights.
  virtual void finish_uploads() {}
  // A KV cache of `rows` positions x `cols` values, of element type kv_dtype().
  virtual Tensor alloc_kv(int64_t rows, int64_t cols) = 0;
  virtual DType kv_dtype() const { return DType::F16; }
  virtual MemoryInfo memory() const = 0;
  // At most how much device memory the ops allocate for themselves on first use (work buffers
  // beyond the model's tensors) for model `c` with that context and batch: part of the memory
  // plan, so that a model that cannot fit is refused before anything is allocated.
  virtual uint64_t scratch_bytes(const ModelConfig& /*c*/, int /*context*/,
                                 int /*max_batch*/) const {
    return 0;
  }
  // Allocates those work buffers now (Model does, after its weights), so that what the plan
  // counted is held from the start and never grows.
  virtual void reserve_scratch(const ModelConfig& /*c*/, int /*context*/, int /*max_batch*/) {}
  // Device memory bandwidth in GB/s, measured with a large buffer copy (bytes read + written per
  // second); 0 when the backend cannot measure it. For `nibble bench`'s roofline.
  virtual double measure_bandwidth() { return 0; }

  // --- transfers ------------------------------------------------------------------------------
  virtual void write(Tensor dst, const void* src) = 0;  // enqueued; src is copied before return
  virtual void read(Tensor src, void* dst) = 0;         // waits for the device

  // --- steps ----------------------------------------------------------------------------------
  virtual void begin_step(const StepInfo& step) = 0;
  virtual void end_step() = 0;  // submits; does not wait
  virtual StepStats step_stats() const { return {}; }

  // --- ops (out-of-place unless noted); all activations are F32, ids are I32 --------------------
  virtual void embed(Tensor out, Tensor table, Tensor ids) = 0;  // out[i] = table[ids[i]]
  virtual void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) = 0;  // per row
  virtual void matmul(Tensor out, Tensor x, Tensor w) = 0;                    // out = x · wᵀ
  virtual void rope(Tensor x, int n_heads, int head_dim,
                    Tensor inv_freq) = 0;  // in place, HF rotate_half
  virtual void kv_store(Tensor k_cache, Tensor v_cache, Tensor k,
                        Tensor v) = 0;  // at the step's positions
  virtual void attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                         const AttentionShape& shape) = 0;      // causal
  virtual void swiglu(Tensor out, Tensor gate, Tensor up) = 0;  // silu(gate) * up
  virtual void add(Tensor x, Tensor y) = 0;                     // x += y
  virtual void argmax(Tensor ids, Tensor logits) = 0;           // per row
  // ids[0] = draw_token(logits (one row), config, the step's u) (engine/sampler.h), where
  // can_sample(): a backend that samples on the device spares the host the logits.
  virtual bool can_sample() const { return false; }
  virtual void sample(Tensor ids, Tensor logits, const SamplerConfig& config);

  // --- fused ops: steps the model always takes together, so that a backend can run them as one
  // kernel (one pass over the weights, no round trip through memory, one barrier fewer). The
  // defaults run the ops above; `scratch` (shaped like `out`) is theirs to use.
  virtual void matmul_add(Tensor out, Tensor x, Tensor w, Tensor scratch) {  // out += x · wᵀ
    matmul(scratch, x, w);
    add(out, scratch);
  }
  // out = silu(x · gateᵀ) * (x · upᵀ)
  virtual void matmul_swiglu(Tensor out, Tensor x, Tensor gate, Tensor up, Tensor scratch) {
    matmul(out, x, gate);
    matmul(scratch, x, up);
    swiglu(out, out, scratch);
  }
  // The projections that read one rms-normalized x: outs = rms_norm(x) · wᵀ for each (out, w),
  // the attention's q, k and v. `xn` (x's shape) holds rms_norm(x) where it is computed first.
  struct Projection {
    Tensor out, w;
  };
  virtual void norm_matmuls(Tensor x, Tensor norm, float eps, Tensor xn,
                            std::initializer_list<Projection> projections) {
    rms_norm(xn, x, norm, eps);
    for (const Projection& p : projections) matmul(p.out, xn, p.w);
  }
  // out = silu(n · gateᵀ) * (n · upᵀ) with n = rms_norm(x): the MLP's first half
  virtual void norm_matmul_swiglu(Tensor out, Tensor x, Tensor norm, float eps, Tensor xn,
                                  Tensor gate, Tensor up, Tensor scratch) {
    rms_norm(xn, x, norm, eps);
    matmul_swiglu(out, xn, gate, up, scratch);
  }
  // rope on q and k, then k and v into the caches
  virtual void rope_kv_store(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                             const AttentionShape& shape, Tensor inv_freq) {
    rope(q, shape.n_heads, shape.head_dim, inv_freq);
    rope(k, shape.n_kv_heads, shape.head_dim, inv_freq);
    kv_store(k_cache, v_cache, k, v);
  }
  // rope_kv_store, then the attention of the rotated q over the caches; q and k are scratch
  // afterwards (a fused implementation need not rotate them in place).
  virtual void rope_kv_attention(Tensor out, Tensor q, Tensor k, Tensor v, Tensor k_cache,
                                 Tensor v_cache, const AttentionShape& shape, Tensor inv_freq) {
    rope_kv_store(q, k, v, k_cache, v_cache, shape, inv_freq);
    attention(out, q, k_cache, v_cache, shape);
  }

  // --- per-layer timing -------------------------------------------------------------------------
  virtual void set_profiling(bool on) { profiling_ = on; }
  virtual void phase_begin(int /*layer*/, Phase /*phase*/) {}
  virtual void phase_end(int /*layer*/, Phase /*phase*/) {}
  // Times of the last finished step (empty unless profiling).
  virtual std::vector<LayerTime> step_times() { return {}; }

 protected:
  bool profiling_ = false;
};

}  // namespace nibble
