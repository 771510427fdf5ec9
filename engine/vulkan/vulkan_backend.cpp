// The Backend on Vulkan: each step's ops become one command list (a barrier only where a dispatch
// depends on an earlier one), recorded into the step's command buffer unless it equals the list
// that buffer holds, which is then submitted again (decode); submitted by end_step and waited for
// only when the host reads what the step wrote. Two steps may be in flight, each with its own
// command buffer and host-written data, so the host can record and submit the next while one runs.
#include "engine/vulkan/vulkan_backend.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>

#include "engine/error.h"
#include "engine/quant.h"
#include "engine/sampler.h"
#include "engine/vulkan/gemm_split.h"
#include "engine/vulkan/vk_check.h"
#include "engine/vulkan/vk_device.h"
#include "engine/vulkan/vk_memory.h"
#include "engine/vulkan/vk_op_timer.h"
#include "engine/vulkan/vk_pipelines.h"
#include "engine/vulkan/vk_quantizer.h"
#include "engine/vulkan/vk_step_commands.h"
#include "loader/quantize.h"

namespace nibble {

namespace {

constexpr VkDeviceSize kStagingBytes = VkDeviceSize(16) << 20;
constexpr VkDeviceSize kStepStagingBytes = VkDeviceSize(1) << 20;
constexpr uint32_t kMaxPhases = 1024;  // timed phases per step
constexpr uint64_t kHostTensorBytes = 64 * 1024;
constexpr uint64_t kMirrorBytes = 1 << 20;  // Usage::Output tensors up to this get a host mirror
constexpr uint64_t kStepTimeoutNs = 600ull * 1000 * 1000 * 1000;
constexpr uint32_t kMaxGroups = 65535;  // per grid dimension, the minimum devices support

// --- push constants, mirroring the `Push` blocks of shaders/*.comp (std430 layout) ------------
// Without padding bytes (gaps are `pad` fields): end_step compares a step's push constants byte
// for byte with the previous step's, and a padding byte would hold whatever the stack did.

// shaders/weight.glsl `Weight`.
struct WeightRef {
  uint64_t data = 0;
  uint32_t values = 0, absmax = 0, nested_absmax = 0, code = 0;
  uint32_t blocksize = 1, nested_blocksize = 1;
  float offset = 0;
  uint32_t pad = 0;
};
static_assert(sizeof(WeightRef) == 40);

struct MatmulPush {
  WeightRef w;
  uint64_t out, x;
  uint32_t rows, n, k, pad = 0;
};
// shaders/matmul_coopmat.comp, matmul_coopmat_x.comp, matmul_coopmat_w.comp
struct MatmulCoopPush {
  WeightRef w;
  uint64_t out, x, x16, w16;
  uint32_t rows, n, k, out_stride, k_stride, pad = 0;
};
// shaders/sum_parts.comp
struct SumPartsPush {
  uint64_t out, parts;
  uint32_t rows, cols, count, out_stride;
};
struct CoopXPush {
  uint64_t x, x16;
  uint32_t count, pad = 0;
};
struct CoopWPush {
  WeightRef w;
  uint64_t w16;
  uint32_t n0, count, k, pad = 0;
};
constexpr uint32_t kCoopMatTile = 128;  // shaders/matmul_coopmat.comp: 128x128 output tiles
constexpr uint32_t kCoopMatK = 64;      // and 64-wide k slices
// Dequantized weight rows the prompt GEMM holds at a time (a 7B model's largest matrix is 90 MB).
constexpr uint64_t kCoopMatWeightBytes = uint64_t(128) << 20;
// shaders/matvec.glsl
struct MatvecPush {
  WeightRef w, up;
  uint64_t out, x;
  uint32_t n, k;
  uint64_t norm;
  float eps;
  uint32_t pad = 0;
  uint64_t out16;
};
struct RopeKvPush {
  uint64_t q, k, v, k_cache, v_cache, inv_freq, step;
  uint32_t rows, q_cols, kv_cols, n_heads, n_kv_heads, head_dim;
};
struct EmbedPush {
  WeightRef table;
  uint64_t out, ids;
  uint32_t rows, cols;
};
struct RmsNormPush {
  WeightRef g;
  uint64_t out, x;
  uint32_t rows, cols;
  float eps;
  uint32_t slices;   // workgroups per row
  uint64_t x16 = 0;  // GEMM_OPERANDS only
};
bool contains(const std::vector<uint32_t>& ids, uint32_t id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}
bool same_view(Tensor a, Tensor b) {
  return a.buffer == b.buffer && a.row_offset == b.row_offset && a.rows == b.rows &&
         a.cols == b.cols;
}
// A compute dtype as the shaders' ROUND: 0 float32 (no rounding), 1 float16, 2 bfloat16.
constexpr uint32_t kRoundBF16 = 2;
uint32_t round_of(ComputeDType c) {
  return c == ComputeDType::F16 ? 1 : c == ComputeDType::BF16 ? kRoundBF16 : 0;
}
// shaders/rms_norm.comp's slices: a decode row's in 512-value slices, a prompt row in one.
uint32_t rms_norm_slices(Tensor x) {
  return x.rows == 1 ? uint32_t(std::max<int64_t>(1, (x.cols + 511) / 512)) : 1;
}
struct RopePush {
  uint64_t x, inv_freq, step;
  uint32_t rows, cols, n_heads, head_dim;
};
struct KvStorePush {
  uint64_t k_cache, v_cache, k, v, step;
  uint32_t rows, cols;
};
struct AttentionPush {
  uint64_t q, k_cache, v_cache, partial, step;
  uint64_t k = 0, v = 0, inv_freq = 0;  // ROPE only
  uint32_t q_cols, kv_cols, n_heads, n_kv_heads, window, split_len;
  float scale;
  uint32_t out_cols;
  uint64_t out16 = 0;  // OUT16 only
  uint64_t out = 0, counts = 0;
};
// shaders/attention_prefill.comp, attention_coopmat.comp
struct AttentionPrefillPush {
  uint64_t q, k_cache, v_cache, out, step;
  uint32_t rows, q_cols, kv_cols, out_cols, n_heads, n_kv_heads, window;
  float scale;
  uint64_t x16 = 0;  // attention_coopmat.comp's GEMM_OPERANDS only
};
struct ElementwisePush {
  uint64_t out, a, b;
  uint32_t n, pad = 0;
  uint64_t x16 = 0;  // GEMM_OPERANDS only
};
struct CopyPush {
  uint64_t dst, src;
  uint32_t n, pad = 0;
};
struct ArgmaxPush {
  uint64_t ids, logits;
  uint32_t rows, cols;
};
struct SamplePush {
  uint64_t ids, logits, step;
  uint32_t cols;
  float inverse_temperature;
  uint32_t top_k;
  float top_p, min_p;
  uint32_t pad = 0;
};

// The attention splits the context of a step whose rows x heads are fewer than this (decode,
// short prompts) over up to 16 workgroups per (row, head), each covering whole 128-position
// tiles: past 2 048 positions a split loops over several (H100 tg128 after 4 096 tokens with at
// most 64 / 16 / 8 splits: 7B 236.3 / 246.7 / 242.4 tok/s, TinyLlama 740.6 / 743.1 / 709.2;
// docs/PERF.md "Decode", session 15).
constexpr uint64_t kSplitItems = 512;
constexpr int64_t kSplitTile = 128, kMaxSplits = 16;
struct AttentionSplit {
  uint32_t count, len;  // workgroups per (row, head), positions each
};
// The split depends on the length only through its count of tiles, so a decode step's commands
// change once per 128 positions and can be replayed in between (the shader reads the length
// itself from the step data).
AttentionSplit attention_split(int64_t length, int64_t max_splits) {
  const int64_t tiles = std::max<int64_t>(1, (length + kSplitTile - 1) / kSplitTile);
  const int64_t tiles_per_split = (tiles + max_splits - 1) / max_splits;
  return {uint32_t((tiles + tiles_per_split - 1) / tiles_per_split),
          uint32_t(kSplitTile * tiles_per_split)};
}
// Bytes of the split attention's partial results for any step within `context` positions:
// allocated once at this size, as the suballocator does not free. (No length below `context`
// splits more often than one tile per split.)
uint64_t attention_partial_bytes(int64_t context, int head_dim) {
  const uint64_t splits =
      std::clamp<int64_t>((context + kSplitTile - 1) / kSplitTile, 1, kMaxSplits);
  return splits > 1 ? (kSplitItems - 1) * splits * (2 + uint64_t(head_dim)) * sizeof(float) : 0;
}

// Storage kinds of shaders/weight.glsl (WKIND) and operand rounding (ROUND).
enum WeightKind : uint32_t { kF32 = 0, kF16 = 1, kBF16 = 2, kQ4 = 3, kQ4Nested = 4 };

std::string shape_label(uint32_t kind, Tensor w) {
  static const char* const names[] = {"f32", "f16", "bf16", "4bit", "4bit+dq"};
  return std::string(names[kind]) + " " + std::to_string(w.rows) + "x" + std::to_string(w.cols);
}

bool pow2(uint32_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

class VulkanBackend final : public Backend {
 public:
  explicit VulkanBackend(int device);
  ~VulkanBackend() override;

  std::string name() const override { return "vulkan"; }
  std::string device_name() const override { return ctx_.info.name; }

  Tensor alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) override;
  Tensor upload_weight(const HostWeight& w) override;
  Tensor upload_quantized(const HostWeight& w, const QuantSpec& spec) override;
  void finish_uploads() override { quantizer_.finish(); }
  Tensor alloc_kv(int64_t rows, int64_t cols) override;
  MemoryInfo memory() const override { return memory_.info(); }
  uint64_t scratch_bytes(const ModelConfig& c, int context, int max_batch) const override;
  void reserve_scratch(const ModelConfig& c, int context, int max_batch) override;
  double measure_bandwidth() override;

  void write(Tensor dst, const void* src) override;
  void read(Tensor src, void* dst) override;

  void begin_step(const StepInfo& step) override;
  void end_step() override;
  StepStats step_stats() const override { return stats_; }

  void embed(Tensor out, Tensor table, Tensor ids) override;
  void rms_norm(Tensor out, Tensor x, Tensor weight, float eps) override;
  void matmul(Tensor out, Tensor x, Tensor w) override;
  void rope(Tensor x, int n_heads, int head_dim, Tensor inv_freq) override;
  void kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v) override;
  void attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                 const AttentionShape& shape) override;
  void rope_kv_attention(Tensor out, Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                         const AttentionShape& shape, Tensor inv_freq) override;
  struct RopeInputs {
    Tensor k, v, inv_freq;
  };
  void split_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                       const AttentionShape& shape, const RopeInputs* rope);
  void check_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                       const AttentionShape& shape) const;
  // Whether shaders/attention.comp reads both caches with 16-byte loads (K_VEC): rows and heads
  // on 16-byte boundaries. Its fused rope prologue needs them.
  bool vec_caches(Tensor k_cache, Tensor v_cache, const AttentionShape& shape);
  void check_rope_kv(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                     const AttentionShape& shape, Tensor inv_freq) const;
  void swiglu(Tensor out, Tensor gate, Tensor up) override;
  void add(Tensor x, Tensor y) override;
  void argmax(Tensor ids, Tensor logits) override;
  // shaders/sample.comp's workgroup of 512 (devices allow 1 024; Vulkan promises 128).
  bool can_sample() const override { return ctx_.info.max_workgroup >= 512; }
  void sample(Tensor ids, Tensor logits, const SamplerConfig& config) override;
  void matmul_add(Tensor out, Tensor x, Tensor w, Tensor scratch) override;
  void matmul_swiglu(Tensor out, Tensor x, Tensor gate, Tensor up, Tensor scratch) override;
  void rope_kv_store(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                     const AttentionShape& shape, Tensor inv_freq) override;
  void norm_matmuls(Tensor x, Tensor norm, float eps, Tensor xn,
                    std::initializer_list<Projection> projections) override;
  void norm_matmul_swiglu(Tensor out, Tensor x, Tensor norm, float eps, Tensor xn, Tensor gate,
                          Tensor up, Tensor scratch) override;

  void phase_begin(int layer, Phase phase) override;
  void phase_end(int layer, Phase phase) override;
  std::vector<LayerTime> step_times() override;

 private:
  struct Buffer {
    vk::Allocation alloc;
    std::string name;  // the weight's name, for errors
    // How shaders read it as a weight (matmul, embed, rms_norm operand).
    uint32_t kind = kF32, round = 0;
    WeightRef ref;
    std::array<float, 16> code{};  // 4-bit: the code table (also in the allocation, at ref.code)
    bool host = false;             // in host memory: read() copies straight from the mapping
    uint64_t written_in = 0;       // the last step that writes it (numbered from 1), for read()
    // Usage::Output (a row of logits): a host copy, copied out by the step that writes the
    // buffer right after the barrier behind its writes (beside the commands that read it next),
    // so that read() needs no submission of its own (0.2 ms on the H100 for 128 KB of logits).
    vk::Allocation mirror;
  };

  Buffer& buffer(Tensor t);
  // Device address of the view's first element (its byte offset must be 4-aligned).
  uint64_t address(Tensor t);
  const Buffer& weight(Tensor t, const char* op);
  Tensor add_buffer(Buffer b, DType dtype, int64_t rows, int64_t cols);
  // A 4-bit weight's buffer laid out as `at`, allocated but not yet filled; `code` is its code
  // table (Buffer::code).
  Buffer quantized_buffer(const HostWeight& w, const vk::QuantLayout& at, int blocksize,
                          bool nested, int nested_blocksize, const std::array<float, 16>& code);

  void upload(const vk::Allocation& dst, VkDeviceSize offset, const void* src, size_t bytes);
  template <class Record>
  void one_shot(Record record);
  void submit(VkCommandBuffer cmd, VkFence fence);
  void wait(VkFence fence, const char* what);
  // A step's own resources. Steps use the two slots in turn, so that the host can record and
  // submit step t + 1 while step t runs (Model::forward_picked): each holds what the host writes
  // for its step (positions, write()'s bytes) and the command buffer recorded for it, submitted
  // again while the slot's steps repeat its commands (every other step: the step data's address
  // is part of them).
  struct StepSlot {
    VkCommandBuffer cmd = VK_NULL_HANDLE;
    VkFence fence = VK_NULL_HANDLE;
    vk::Allocation data, staging;  // the step data (pos0, n_tokens, u); write()'s bytes
    VkDeviceSize staging_used = 0;
    vk::StepCommands recorded;  // what cmd holds (empty when nothing valid)
    uint64_t step = 0;          // the step it was submitted for last (numbered from 1)
    bool in_flight = false;
    // Timestamps of that step's timed phases (profiling), two per phase: a pool per slot, so that
    // the per-layer times of the desktop app need not keep the steps from overlapping.
    VkQueryPool queries = VK_NULL_HANDLE;
    std::vector<LayerTime> phases;
  };
  StepSlot& slot() { return slots_[slot_]; }
  // Waits for the submitted steps up to number `step` (they finish in order), collecting their
  // timestamps; wait_steps() for all of them.
  void wait_steps(uint64_t step = UINT64_MAX);
  void require_step(const char* op) const;
  // `label` names the dispatch for NIBBLE_VK_OP_TIMES (default: the shader).
  template <class Push>
  void dispatch(std::string_view shader, std::span<const uint32_t> spec, const Push& push,
                uint64_t groups_x, uint32_t groups_y = 1, const std::string& label = {});
  template <class Push>
  void dispatch(std::string_view shader, std::initializer_list<uint32_t> spec, const Push& push,
                uint64_t groups_x, uint32_t groups_y = 1, const std::string& label = {}) {
    dispatch(shader, std::span<const uint32_t>(spec.begin(), spec.size()), push, groups_x, groups_y,
             label);
  }
  template <class Push>
  void add_dispatch(vk::StepCommands& to, std::string_view shader, std::span<const uint32_t> spec,
                    const Push& push, uint64_t groups_x, uint32_t groups_y);
  // Records that the next command reads and writes these buffers, first placing a barrier if it
  // depends on (or overwrites) what a command since the last barrier touched. Independent
  // commands (the q/k/v or gate/up matmuls) thus run without one between them.
  void access(std::initializer_list<uint32_t> reads, std::initializer_list<uint32_t> writes);
  // `gemm_round`: out also as the prompt GEMM's operands (keep_gemm_operands).
  void elementwise(uint32_t op, Tensor out, Tensor a, Tensor b, uint32_t gemm_round = 0);
  // shaders/matvec.glsl for one activation row; `up` only with epilogue 2 (SwiGLU); x
  // rms-normalized by `norm` first when given.
  enum class Epilogue : uint32_t { Store = 0, Add = 1, SwiGlu = 2 };
  struct FusedNorm {
    const Buffer* weight = nullptr;
    float eps = 0;
  };
  // The rms_norm folded across a decode residual product into the products after it
  // (shaders/matvec.glsl NORM_SUMS, X_SCALE): `sums`, the address of its fixed-point sum of
  // squares in norm_sums_. With `g`, the residual product recorded as step command `command`
  // is recorded again to also store g * out as operands at out16 and add its squares to the
  // sums; without, a product reading those operands (x16) scales its results by the norm's
  // scale, with `eps`.
  struct NormFold {  // no member initializers: it is a default argument below
    const Buffer* g;
    uint64_t sums;
    float eps;
    size_t command;
  };
  // x16: x is read as its packed compute-dtype operands at that address (the shader's X16);
  // out16: the results are also stored there as such operands (OUT16).
  void matvec(Tensor out, Tensor x, Tensor w, const Buffer* up, Epilogue epilogue, FusedNorm norm,
              uint64_t x16 = 0, uint64_t out16 = 0, NormFold fold = {nullptr, 0, 0, 0});
  // Whether the decode residual product into `out` (4-bit weight w) may have the next rms_norm
  // folded in; then norm_sums_ exists.
  bool may_fold_norm(Tensor out, Tensor w);
  // Folds the rms_norm of x by `norm` into the residual product recorded last, where it wrote x
  // and the products after it read operands rounded as `round` at xn; the sums for those
  // products, or no sums where it cannot.
  NormFold fold_norm(Tensor x, Tensor norm, float eps, Tensor xn, uint32_t round);
  // Whether matvec can fuse the rms_norm of x by `norm` (a float vector of x's width).
  bool fusable_norm(Tensor x, Tensor norm);
  // Whether matvec's 16-byte path can take weight w's blocks: 4-bit ones whose sizes are powers
  // of two from 32 (shifts find a chunk's block, and a chunk never straddles two).
  static bool vec_blocks(const Buffer& w) {
    return w.kind < kQ4 ||
           (w.ref.blocksize >= 32 && pow2(w.ref.blocksize) && pow2(w.ref.nested_blocksize));
  }
  // Whether matvec can read x (one row) as packed operands for weight w: 4-bit weights on the
  // 16-byte path with 16-bit compute.
  bool takes_operands(Tensor x, Tensor w);
  // rms_norm(x) by `norm` into out (checked shapes): float32, or with `round` (1, 2) the packed
  // operands of products that compute in float16 / bfloat16 (rms_norm.comp OPERAND).
  // With `gemm_round`, a prompt's rows also as the prompt GEMM's operands (keep_gemm_operands).
  void normalize(Tensor out, Tensor x, Tensor norm, float eps, uint32_t round,
                 uint32_t gemm_round = 0);
  // Whether a prompt product can take x as float16 operands converted once (coopmat_x_): rows
  // of whole 16-byte groups of operands, 16-byte aligned.
  bool gemm_input(Tensor x) { return x.rows > 1 && x.cols % 32 == 0 && address(x) % 16 == 0; }
  // The rounding of x's float16 operands where a prompt product with weight w converts x once
  // for the matrix units, else 0.
  uint32_t gemm_round(Tensor x, Tensor w);
  // Where an op that writes `out` also stores it as the prompt GEMM's float16 operands rounded as
  // `round`, sparing the products that read `out` next their conversion (coopmat_x_; called
  // after the op's own access); 0 (nothing to store) for round 0 or where out is no gemm_input.
  uint64_t keep_gemm_operands(Tensor out, uint32_t round);
  // rms_norm(x) into xn for a prompt whose `projections` read xn, writing their operands too
  // where they all take the same.
  void prompt_norm(Tensor xn, Tensor x, Tensor norm, float eps,
                   std::initializer_list<Projection> projections);
  // The address of x's packed operands when a matvec stored them (OUT16) for weight w, else 0.
  uint64_t operands_of(Tensor x, Tensor w);
  // Where an op that writes `out` (one row) also stores it as packed operands rounded as
  // `round` (0: nowhere; no rounding, no operands), for the matvec that reads it next.
  uint64_t keep_operands(Tensor out, uint32_t round);
  // A weight's operand rounding where matvec can read packed operands for it, else 0.
  uint32_t operand_round(Tensor w);
  void close_phase();

  vk::Context ctx_;
  vk::Memory memory_;
  vk::Pipelines pipelines_;
  vk::OpTimer op_timer_;
  vk::Quantizer quantizer_;
  vk::SimulatedDeviceLoss simulated_loss_;  // NIBBLE_VK_SIMULATE_DEVICE_LOSS, for tests
  VkCommandPool pool_ = VK_NULL_HANDLE;
  VkCommandBuffer transfer_cmd_ = VK_NULL_HANDLE;
  VkFence transfer_fence_ = VK_NULL_HANDLE;
  StepSlot slots_[2];
  uint32_t slot_ = 0;  // the slot of the step being recorded, or of the last one submitted

  std::vector<Buffer> buffers_;
  vk::Allocation staging_, readback_, partial_;
  // The prompt GEMM's operands as float16: x's, and two buffers of weight rows, used in turn so
  // that one weight's conversion needs no barrier after the previous weight's GEMM (it can take
  // the SMs the GEMM leaves idle, not share the GEMM's: docs/PERF.md, "Prefill", session 8).
  vk::Allocation coopmat_x_, coopmat_w_[2];
  uint32_t coopmat_w_turn_ = 0;
  // The prompt GEMM on x's and a weight's float16 operands, the columns past the device's whole
  // waves in k parts (coopmat_gemm), and the sum of its last parts, recorded once something
  // touches its output or its parts buffer (access) or the step ends: the next weight's
  // conversion, recorded after it, then still needs no barrier behind the GEMM.
  void coopmat_gemm(MatmulCoopPush c, uint32_t out_buffer, uint32_t w_id, const Buffer& w,
                    const std::string& label);
  void flush_sum();
  vk::Allocation coopmat_parts_[2];  // in turn, so that a sum can run beside the next GEMM
  uint32_t coopmat_parts_turn_ = 0;
  struct PendingSum {
    uint32_t out_buffer, parts;
    SumPartsPush push;
  };
  std::optional<PendingSum> pending_sum_;
  // Whose 16-bit operands a scratch buffer holds: a tensor's, rounded as `round`. Valid until a
  // command writes that tensor's buffer or the scratch, or the step ends.
  struct OperandsOf {
    uint32_t buffer = 0;  // 0: nothing valid
    int64_t row_offset = 0, rows = 0, cols = 0;
    uint32_t round = 0;
    OperandsOf() = default;
    OperandsOf(Tensor t, uint32_t r)
        : buffer(t.buffer), row_offset(t.row_offset), rows(t.rows), cols(t.cols), round(r) {}
    bool operator==(const OperandsOf&) const = default;
    // Forgets them when `written` (a buffer id) is their tensor's buffer or `scratch`.
    void forget_if(uint32_t written, uint32_t scratch) {
      if (written == buffer || written == scratch) *this = {};
    }
  };
  // coopmat_x_'s: the prompt products that read one x (q, k and v; gate and up) convert it once.
  OperandsOf coopmat_x_of_;
  // operands_: the last decode matvec output's (OUT16), for the product that reads it next.
  vk::Allocation operands_;
  OperandsOf operands_of_;
  // The last recorded command, where it is a decode residual product (matmul_add) whose output
  // the next op may normalize: its index in step_commands_ and what it computed. Any access or
  // dispatch after it forgets it.
  struct LastResidual {
    size_t command;
    Tensor out, x, w;
    uint64_t x16;
  };
  std::optional<LastResidual> last_residual_;
  // The folded norms' fixed-point sums of squares (kNormSumBytes each), zeroed at every step's
  // start.
  vk::Allocation norm_sums_;
  uint32_t norm_sums_used_ = 0;
  // The split attention's counts of finished splits per (row, head) (shaders/attention.comp):
  // zeroed once, by the first step after they are allocated; then the merging workgroup leaves
  // its count at zero for the next dispatch.
  vk::Allocation attention_counts_;
  bool zero_attention_counts_ = false;
  void zero_attention_counts();  // in the step being recorded, before the next attention
  // The rounding of the step's last normalized operands (norm_matmuls), which the attention's
  // output takes for the o projection: every model rounds all its 4-bit products alike (and
  // operands_of checks that the consumer does).
  uint32_t step_round_ = 0;
  // The work buffers' sizes for a model (scratch_bytes, reserve_scratch).
  struct Scratch {
    uint64_t partial = 0, counts = 0, coopmat_x = 0, coopmat_w = 0, coopmat_parts = 0, operands = 0,
             norm_sums = 0;
  };
  Scratch scratch_for(const ModelConfig& c, int context, int max_batch) const;

  StepInfo step_;
  bool recording_ = false;
  vk::StepCommands step_commands_;  // the step being recorded
  bool replay_ = true;              // NIBBLE_VK_NO_REPLAY=1 records every step
  bool fold_norms_ = true;          // NIBBLE_VK_NO_NORM_FOLD=1 runs every decode rms_norm by itself
  StepStats stats_;
  std::vector<LayerTime> phases_, last_times_;
  std::vector<uint32_t> written_, read_;  // buffers touched since the last barrier
  std::vector<uint32_t> unmirrored_;      // buffers with a mirror written since the last barrier
  void copy_mirrors();                    // of unmirrored_, behind a barrier
};

constexpr uint32_t kScratchBuffer = 0xffffffffu;                   // attention's partial results
constexpr uint32_t kCoopMatX = 0xfffffffeu;                        // coopmat_x_
constexpr uint32_t kCoopMatW[2] = {0xfffffffdu, 0xfffffffbu};      // coopmat_w_
constexpr uint32_t kOperands = 0xfffffffcu;                        // operands_
constexpr uint32_t kCoopMatParts[2] = {0xfffffffau, 0xfffffff9u};  // coopmat_parts_
constexpr uint32_t kNormSums = 0xfffffff8u;                        // norm_sums_
constexpr uint32_t kAttentionCounts = 0xfffffff7u;                 // attention_counts_
// One folded norm's fixed-point sum: 16 copies of 4 words, 128 bytes apart (shaders/matvec.glsl).
constexpr uint64_t kNormSumBytes = 16 * 128;

VulkanBackend::VulkanBackend(int device)
    : ctx_(device),
      memory_(ctx_),
      pipelines_(ctx_.device, ctx_.pipeline_statistics),
      op_timer_(ctx_),
      quantizer_(ctx_, memory_, pipelines_) {
  // Lets the tests (and anyone chasing a driver bug) run the shared-memory fallbacks on a device
  // that has subgroup arithmetic.
  if (const char* off = std::getenv("NIBBLE_VK_NO_SUBGROUP_ARITHMETIC"); off && *off == '1')
    ctx_.info.subgroup_arithmetic = false;
  if (const char* off = std::getenv("NIBBLE_VK_NO_REPLAY"); off && *off == '1') replay_ = false;
  if (const char* off = std::getenv("NIBBLE_VK_NO_NORM_FOLD"); off && *off == '1')
    fold_norms_ = false;
  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = ctx_.queue_family;
  vk::check(vkCreateCommandPool(ctx_.device, &pci, nullptr, &pool_), "vkCreateCommandPool");
  VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  ai.commandPool = pool_;
  ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  ai.commandBufferCount = 1;
  VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  vk::check(vkAllocateCommandBuffers(ctx_.device, &ai, &transfer_cmd_), "vkAllocateCommandBuffers");
  vk::check(vkCreateFence(ctx_.device, &fci, nullptr, &transfer_fence_), "vkCreateFence");
  for (StepSlot& s : slots_) {
    vk::check(vkAllocateCommandBuffers(ctx_.device, &ai, &s.cmd), "vkAllocateCommandBuffers");
    vk::check(vkCreateFence(ctx_.device, &fci, nullptr, &s.fence), "vkCreateFence");
    s.data = memory_.host(sizeof(int32_t) * 3);
    s.staging = memory_.host(kStepStagingBytes);
  }
  if (ctx_.info.timestamps)
    for (StepSlot& s : slots_) {
      VkQueryPoolCreateInfo qci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
      qci.queryType = VK_QUERY_TYPE_TIMESTAMP;
      qci.queryCount = 2 * kMaxPhases;
      vk::check(vkCreateQueryPool(ctx_.device, &qci, nullptr, &s.queries), "vkCreateQueryPool");
    }
  staging_ = memory_.host(kStagingBytes);
}

VulkanBackend::~VulkanBackend() {
  vkDeviceWaitIdle(ctx_.device);  // nothing to report on failure: we are tearing down
  for (StepSlot& s : slots_) {
    if (s.queries) vkDestroyQueryPool(ctx_.device, s.queries, nullptr);
    vkDestroyFence(ctx_.device, s.fence, nullptr);
  }
  vkDestroyFence(ctx_.device, transfer_fence_, nullptr);
  vkDestroyCommandPool(ctx_.device, pool_, nullptr);
}

// --- memory -------------------------------------------------------------------------------------

VulkanBackend::Buffer& VulkanBackend::buffer(Tensor t) {
  if (t.buffer == 0 || t.buffer > buffers_.size()) fail("internal error: not a vulkan tensor");
  return buffers_[t.buffer - 1];
}

uint64_t VulkanBackend::address(Tensor t) {
  const uint64_t offset = uint64_t(t.row_offset * t.cols) * dtype_size(t.dtype);
  if (offset % 4) fail("internal error: a tensor view that is not 4-byte aligned");
  return buffer(t).alloc.address + offset;
}

Tensor VulkanBackend::add_buffer(Buffer b, DType dtype, int64_t rows, int64_t cols) {
  buffers_.push_back(std::move(b));
  return Tensor{uint32_t(buffers_.size()), dtype, rows, cols, 0};
}

Tensor VulkanBackend::alloc(DType dtype, int64_t rows, int64_t cols, Usage usage) {
  if (dtype_size(dtype) == 0) fail("alloc: packed 4-bit tensors come only from upload_weight");
  Buffer b;
  b.name = "a " + std::string(dtype_name(dtype)) + " tensor";
  const uint64_t bytes = uint64_t(rows * cols) * dtype_size(dtype);
  // Token ids live in host memory: the GPU reads or writes a few bytes of them per step, and
  // the host gets the sampled token without a copy submission.
  b.host = dtype == DType::I32 && bytes <= kHostTensorBytes;
  b.alloc = b.host ? memory_.host(bytes) : memory_.device(bytes, usage, b.name);
  if (usage == Usage::Output && !b.host && bytes <= kMirrorBytes) b.mirror = memory_.host(bytes);
  b.kind = dtype == DType::F16 ? kF16 : dtype == DType::BF16 ? kBF16 : kF32;
  b.ref.data = b.alloc.address;
  return add_buffer(std::move(b), dtype, rows, cols);
}

Tensor VulkanBackend::alloc_kv(int64_t rows, int64_t cols) {
  if (cols % 2) fail("the Vulkan KV cache needs an even row length, got " + std::to_string(cols));
  return alloc(DType::F16, rows, cols, Usage::KvCache);
}

Tensor VulkanBackend::upload_weight(const HostWeight& w) {
  Buffer b;
  b.name = w.name;
  const int64_t numel = w.rows * w.cols;
  if (!w.quantized()) {
    if (w.dtype != DType::F32 && w.dtype != DType::F16 && w.dtype != DType::BF16)
      fail("weight " + w.name + " has an unsupported dtype " + std::string(dtype_name(w.dtype)));
    if (w.nbytes < size_t(numel) * dtype_size(w.dtype))
      fail("weight " + w.name + " holds fewer bytes than its shape needs");
    b.kind = w.dtype == DType::F16 ? kF16 : w.dtype == DType::BF16 ? kBF16 : kF32;
    b.alloc = memory_.device(w.nbytes, Usage::Weights, "weight " + w.name);
    upload(b.alloc, 0, w.data, size_t(numel) * dtype_size(w.dtype));
    b.ref.data = b.alloc.address;
    return add_buffer(std::move(b), w.dtype, w.rows, w.cols);
  }

  // One allocation: packed codes | absmax (f32, or u8 when nested) | nested absmax | code tables.
  if (!w.quant) fail("weight " + w.name + " is 4-bit but has no quantization state");
  const QuantState& q = *w.quant;
  const int64_t blocks = (numel + q.blocksize - 1) / q.blocksize;
  const bool consistent =
      q.numel() == numel && q.blocksize > 0 && w.nbytes >= size_t(numel + 1) / 2 &&
      (q.nested ? q.absmax_q.size() >= size_t(blocks) && q.nested_blocksize > 0 &&
                      q.nested_absmax.size() >=
                          size_t((blocks + q.nested_blocksize - 1) / q.nested_blocksize)
                : q.absmax.size() >= size_t(blocks));
  if (!consistent)
    fail("weight " + w.name + ": its 4-bit quantization state does not match its shape");
  const size_t packed_bytes = size_t(numel + 1) / 2;
  const size_t absmax_bytes = q.nested ? q.absmax_q.size() : q.absmax.size() * 4;
  const size_t nested_bytes = q.nested ? q.nested_absmax.size() * 4 : 0;
  std::vector<float> codes(q.code.begin(), q.code.end());
  if (q.nested) codes.insert(codes.end(), q.nested_code.begin(), q.nested_code.end());
  const vk::QuantLayout at =
      vk::quant_layout(packed_bytes, absmax_bytes, nested_bytes, codes.size());
  b = quantized_buffer(w, at, q.blocksize, q.nested, q.nested_blocksize, q.code);
  b.ref.offset = q.offset;
  upload(b.alloc, 0, w.data, packed_bytes);
  upload(b.alloc, at.absmax_at,
         q.nested ? static_cast<const void*>(q.absmax_q.data()) : q.absmax.data(), absmax_bytes);
  if (q.nested) upload(b.alloc, at.nested_at, q.nested_absmax.data(), nested_bytes);
  upload(b.alloc, at.code_at, codes.data(), codes.size() * 4);
  return add_buffer(std::move(b), w.dtype, w.rows, w.cols);
}

VulkanBackend::Buffer VulkanBackend::quantized_buffer(const HostWeight& w,
                                                      const vk::QuantLayout& at, int blocksize,
                                                      bool nested, int nested_blocksize,
                                                      const std::array<float, 16>& code) {
  Buffer b;
  b.name = w.name;
  b.alloc = memory_.device(at.bytes, Usage::Weights, "weight " + w.name);
  b.kind = nested ? kQ4Nested : kQ4;
  b.round = round_of(w.compute);
  b.ref.data = b.alloc.address;
  b.ref.absmax = nested ? at.absmax_at : at.absmax_at / 4;
  b.ref.nested_absmax = at.nested_at / 4;
  b.ref.code = at.code_at / 4;
  b.ref.blocksize = uint32_t(blocksize);
  b.ref.nested_blocksize = uint32_t(std::max(1, nested_blocksize));
  b.code = code;
  return b;
}

Tensor VulkanBackend::upload_quantized(const HostWeight& w, const QuantSpec& spec) {
  // NIBBLE_QUANTIZE_ON=cpu keeps the host's quantizer, for comparison.
  const char* on = std::getenv("NIBBLE_QUANTIZE_ON");
  if ((on && std::string_view(on) == "cpu") || !vk::Quantizer::supports(w, spec))
    return Backend::upload_quantized(w, spec);
  Buffer b = quantized_buffer(w, vk::quant_layout(w.rows * w.cols, spec), spec.blocksize,
                              spec.double_quant, kNestedBlocksize, quant_code(spec.type));
  const size_t index = buffers_.size();  // the offset of double quantization arrives later
  quantizer_.quantize(w, spec, b.alloc,
                      [this, index](float offset) { buffers_[index].ref.offset = offset; });
  return add_buffer(std::move(b), packed_dtype(spec.type), w.rows, w.cols);
}

const VulkanBackend::Buffer& VulkanBackend::weight(Tensor t, const char* op) {
  const Buffer& b = buffer(t);
  if (t.row_offset != 0) fail(std::string(op) + ": weight views must start at row 0");
  if (t.dtype == DType::I32 || t.dtype == DType::U8)
    fail(std::string(op) + ": " + b.name + " is not a float weight");
  return b;
}

// --- transfers ----------------------------------------------------------------------------------

void VulkanBackend::submit(VkCommandBuffer cmd, VkFence fence) {
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &cmd;
  vk::check(vkResetFences(ctx_.device, 1, &fence), "vkResetFences");
  vk::check(vkQueueSubmit(ctx_.queue, 1, &si, fence), "vkQueueSubmit");
}

void VulkanBackend::wait(VkFence fence, const char* what) {
  const VkResult r = simulated_loss_.after_wait(
      vkWaitForFences(ctx_.device, 1, &fence, VK_TRUE, kStepTimeoutNs), fence != transfer_fence_);
  if (r == VK_TIMEOUT)
    fail(std::string("the Vulkan device did not finish ") + what + " within 10 minutes (hung?)");
  vk::check(r, what);
}

template <class Record>
void VulkanBackend::one_shot(Record record) {
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  vk::check(vkBeginCommandBuffer(transfer_cmd_, &bi), "vkBeginCommandBuffer");
  record(transfer_cmd_);
  vk::check(vkEndCommandBuffer(transfer_cmd_), "vkEndCommandBuffer");
  submit(transfer_cmd_, transfer_fence_);
  wait(transfer_fence_, "a transfer");
}

void VulkanBackend::upload(const vk::Allocation& dst, VkDeviceSize offset, const void* src,
                           size_t bytes) {
  const auto* p = static_cast<const uint8_t*>(src);
  for (size_t done = 0; done < bytes; done += kStagingBytes) {
    const size_t n = std::min<size_t>(kStagingBytes, bytes - done);
    std::memcpy(staging_.mapped, p + done, n);
    one_shot([&](VkCommandBuffer cmd) {
      VkBufferCopy region{staging_.offset, dst.offset + offset + done, n};
      vkCmdCopyBuffer(cmd, staging_.buffer, dst.buffer, 1, &region);
      VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
      vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                           VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb, 0, nullptr, 0, nullptr);
    });
  }
}

void VulkanBackend::write(Tensor dst, const void* src) {
  const size_t bytes = size_t(dst.numel()) * dtype_size(dst.dtype);
  const VkDeviceSize offset = VkDeviceSize(dst.row_offset * dst.cols) * dtype_size(dst.dtype);
  const vk::Allocation& target = buffer(dst).alloc;
  if (!recording_) {
    upload(target, offset, src, bytes);
    if (const vk::Allocation& m = buffer(dst).mirror; m.size)
      std::memcpy(m.mapped + offset, src, bytes);
    return;
  }
  // Inside a step: the bytes travel in the step's command buffer, ahead of the ops after it.
  StepSlot& s = slot();
  const VkDeviceSize size = (bytes + 255) / 256 * 256;
  if (s.staging_used + size > s.staging.size) {
    s.staging = memory_.host(std::max(size, kStepStagingBytes));
    s.staging_used = 0;
  }
  std::memcpy(s.staging.mapped + s.staging_used, src, bytes);
  VkBufferCopy region{s.staging.offset + s.staging_used, target.offset + offset, bytes};
  s.staging_used += size;
  access({}, {dst.buffer});
  step_commands_.copy(s.staging.buffer, target.buffer, region);
}

void VulkanBackend::read(Tensor src, void* dst) {
  if (recording_) fail("internal error: read() inside a step");
  const size_t bytes = size_t(src.numel()) * dtype_size(src.dtype);
  const VkDeviceSize offset = VkDeviceSize(src.row_offset * src.cols) * dtype_size(src.dtype);
  const Buffer& b = buffer(src);
  const vk::Allocation& from = b.alloc;
  if (b.host || b.mirror.size) {  // ready once the step that wrote it is, whatever runs after it
    wait_steps(b.written_in);
    std::memcpy(dst, (b.host ? from : b.mirror).mapped + offset, bytes);
    return;
  }
  wait_steps();  // the copy would wait for every step in flight anyway
  if (readback_.size < bytes) readback_ = memory_.host(bytes);
  one_shot([&](VkCommandBuffer cmd) {
    VkBufferCopy region{from.offset + offset, readback_.offset, bytes};
    vkCmdCopyBuffer(cmd, from.buffer, readback_.buffer, 1, &region);
    VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    mb.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
    mb.dstAccessMask = VK_ACCESS_HOST_READ_BIT;
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &mb,
                         0, nullptr, 0, nullptr);
  });
  std::memcpy(dst, readback_.mapped, bytes);
}

// --- steps --------------------------------------------------------------------------------------

void VulkanBackend::wait_steps(uint64_t step) {
  for (;;) {
    StepSlot* oldest = nullptr;
    for (StepSlot& s : slots_)
      if (s.in_flight && s.step <= step && (!oldest || s.step < oldest->step)) oldest = &s;
    if (!oldest) return;
    wait(oldest->fence, "a step");
    oldest->in_flight = false;
    // The op timer runs with one step in flight at a time (begin_step): its queries are this one's.
    op_timer_.collect();
    last_times_.clear();
    if (oldest->phases.empty()) continue;
    std::vector<uint64_t> ticks(oldest->phases.size() * 2);
    vk::check(vkGetQueryPoolResults(ctx_.device, oldest->queries, 0, uint32_t(ticks.size()),
                                    ticks.size() * 8, ticks.data(), 8,
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
              "vkGetQueryPoolResults");
    last_times_ = oldest->phases;
    for (size_t i = 0; i < last_times_.size(); ++i)
      last_times_[i].ms =
          double(ticks[2 * i + 1] - ticks[2 * i]) * ctx_.info.timestamp_period_ns * 1e-6;
  }
}

void VulkanBackend::require_step(const char* op) const {
  if (!recording_) fail(std::string("internal error: ") + op + " outside begin_step/end_step");
}

void VulkanBackend::begin_step(const StepInfo& step) {
  if (recording_) fail("internal error: begin_step inside a step");
  // The op timer's steps share its query pool: one in flight at a time.
  if (op_timer_.enabled()) wait_steps();
  slot_ ^= 1;
  StepSlot& s = slot();
  wait_steps(s.step);  // its step data, staging and command buffer are reused
  step_ = step;
  const int32_t data[3] = {step.pos0, step.n_tokens, std::bit_cast<int32_t>(step.u)};
  std::memcpy(s.data.mapped, data, sizeof data);
  s.staging_used = 0;
  phases_.clear();
  step_commands_.clear();
  if (profiling_ && s.queries) step_commands_.reset_queries(s.queries, 2 * kMaxPhases);
  op_timer_.begin_step(step_commands_);
  written_.clear();
  read_.clear();
  operands_of_ = {};
  coopmat_x_of_ = {};
  step_round_ = 0;
  last_residual_.reset();
  norm_sums_used_ = 0;
  if (norm_sums_.size) {  // the sums start from zero; a barrier precedes any product before them
    step_commands_.zero(norm_sums_.buffer, norm_sums_.offset, norm_sums_.size);
    written_.push_back(kNormSums);
  }
  if (zero_attention_counts_) zero_attention_counts();
  recording_ = true;
}

void VulkanBackend::end_step() {
  require_step("end_step");
  flush_sum();
  close_phase();
  step_commands_.barrier();  // the step's results, visible to the transfers of later submissions
  copy_mirrors();
  step_commands_.host_barrier();  // and to the host (token ids, mirrors)
  recording_ = false;
  // The slot's recording is submitted again when nothing but the step data changed (it has
  // finished: begin_step waited for it).
  StepSlot& s = slot();
  const bool replay = replay_ && step_commands_ == s.recorded;
  if (!replay) {
    s.recorded.clear();  // s.cmd holds nothing valid until it is recorded again
    vk::check(vkResetCommandBuffer(s.cmd, 0), "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vk::check(vkBeginCommandBuffer(s.cmd, &bi), "vkBeginCommandBuffer");
    step_commands_.emit(s.cmd, pipelines_.layout());
    vk::check(vkEndCommandBuffer(s.cmd), "vkEndCommandBuffer");
    std::swap(s.recorded, step_commands_);  // the next begin_step clears the other
  }
  submit(s.cmd, s.fence);
  s.in_flight = true;
  s.step = ++stats_.steps;
  s.phases = phases_;
  stats_.replayed += replay;
  stats_.dispatches += s.recorded.dispatches();
  stats_.barriers += s.recorded.barriers();
}

void VulkanBackend::access(std::initializer_list<uint32_t> reads,
                           std::initializer_list<uint32_t> writes) {
  last_residual_.reset();
  if (pending_sum_) {
    bool touches = false;
    for (uint32_t r : reads) touches |= r == pending_sum_->out_buffer;
    for (uint32_t w : writes) touches |= w == pending_sum_->out_buffer || w == pending_sum_->parts;
    if (touches) flush_sum();
  }
  bool conflict = false;
  for (uint32_t r : reads) conflict |= contains(written_, r);
  for (uint32_t w : writes) conflict |= contains(written_, w) || contains(read_, w);
  if (conflict) {
    step_commands_.barrier();
    written_.clear();
    read_.clear();
    copy_mirrors();
  }
  read_.insert(read_.end(), reads);
  written_.insert(written_.end(), writes);
  for (uint32_t w : writes) {
    operands_of_.forget_if(w, kOperands);
    coopmat_x_of_.forget_if(w, kCoopMatX);
    if (w == 0 || w > buffers_.size()) continue;
    Buffer& b = buffers_[w - 1];
    b.written_in = stats_.steps + 1;
    if (b.mirror.size && !contains(unmirrored_, w)) unmirrored_.push_back(w);
  }
}

void VulkanBackend::copy_mirrors() {
  for (uint32_t id : unmirrored_) {
    const Buffer& b = buffers_[id - 1];
    step_commands_.copy(
        b.alloc.buffer, b.mirror.buffer,
        VkBufferCopy{b.alloc.offset, b.mirror.offset, std::min(b.alloc.size, b.mirror.size)});
    read_.push_back(id);  // a later write waits for the copy
  }
  unmirrored_.clear();
}

template <class Push>
void VulkanBackend::dispatch(std::string_view shader, std::span<const uint32_t> spec,
                             const Push& push, uint64_t groups_x, uint32_t groups_y,
                             const std::string& label) {
  last_residual_.reset();
  add_dispatch(step_commands_, shader, spec, push, groups_x, groups_y);
  if (op_timer_.enabled())
    op_timer_.after(step_commands_, label.empty() ? std::string(shader) : label);
}

template <class Push>
void VulkanBackend::add_dispatch(vk::StepCommands& to, std::string_view shader,
                                 std::span<const uint32_t> spec, const Push& push,
                                 uint64_t groups_x, uint32_t groups_y) {
  static_assert(sizeof(Push) <= vk::kPushConstantBytes);
  if (groups_x == 0 || groups_y == 0) return;
  // A long 1-D grid folds into y; shaders use group_index() and bound-check it.
  if (groups_x > kMaxGroups) {
    if (groups_y != 1) fail("internal error: grid too large for " + std::string(shader));
    groups_y = uint32_t((groups_x + kMaxGroups - 1) / kMaxGroups);
    groups_x = kMaxGroups;
  }
  if (groups_y > kMaxGroups) fail("internal error: grid too large for " + std::string(shader));
  to.dispatch(pipelines_.get(shader, spec), &push, sizeof(Push), uint32_t(groups_x), groups_y);
}

// --- ops ----------------------------------------------------------------------------------------

void VulkanBackend::embed(Tensor out, Tensor table, Tensor ids) {
  require_step("embed");
  const Buffer& t = weight(table, "embed");
  if (out.cols != table.cols || ids.rows != out.rows) fail("embed shape mismatch for " + t.name);
  const EmbedPush p{t.ref, address(out), address(ids), uint32_t(out.rows), uint32_t(out.cols)};
  access({table.buffer, ids.buffer}, {out.buffer});
  dispatch("embed", {t.kind, t.round}, p, (uint64_t(out.numel()) + 255) / 256);
}

void VulkanBackend::rms_norm(Tensor out, Tensor x, Tensor weight_t, float eps) {
  require_step("rms_norm");
  const Buffer& g = weight(weight_t, "rms_norm");
  if (weight_t.numel() != x.cols || out.cols != x.cols || out.rows != x.rows)
    fail("rms_norm shape mismatch for " + g.name);
  normalize(out, x, weight_t, eps, 0);
}

void VulkanBackend::matmul(Tensor out, Tensor x, Tensor wt) {
  require_step("matmul");
  const Buffer& w = weight(wt, "matmul");
  if (x.cols != wt.cols || out.cols != wt.rows || out.rows != x.rows)
    fail("matmul shape mismatch for " + w.name);
  const MatmulPush p{
      w.ref, address(out), address(x), uint32_t(x.rows), uint32_t(wt.rows), uint32_t(wt.cols)};
  access({x.buffer, wt.buffer}, {out.buffer});
  if (x.rows == 1) {  // decode
    matvec(out, x, wt, nullptr, Epilogue::Store, {});
  } else if (ctx_.info.coopmat_f16 && w.kind >= kQ4 && w.round != 0) {
    // prompt, on the matrix units: 4-bit weights with float16/bfloat16 compute, whose operands a
    // float16 fragment holds (shaders/matmul_coopmat.comp). Where k % 32 == 0 (every real model)
    // x, then the weight in chunks of whole rows, become float16 operands first: once per matmul
    // rather than once per tile.
    const bool vec = gemm_round(x, wt) != 0;
    const std::string label =
        op_timer_.enabled() ? "matmul_coopmat " + shape_label(w.kind, wt) : "";
    MatmulCoopPush c{w.ref, p.out, p.x, 0, 0, p.rows, p.n, p.k, p.n, p.k};
    if (!vec) {
      // x: the row tiles, so that consecutive workgroups share a column tile's weight rows.
      dispatch("matmul_coopmat", {w.kind, w.round, 0u}, c,
               (p.rows + kCoopMatTile - 1) / kCoopMatTile, (c.n + kCoopMatTile - 1) / kCoopMatTile,
               label);
    } else {
      const uint64_t x_groups = uint64_t(x.rows * x.cols) / 8;
      const uint64_t chunk = std::min<uint64_t>(
          wt.rows, std::max<uint64_t>(128, kCoopMatWeightBytes / (2 * wt.cols) / 128 * 128));
      if (coopmat_x_.size < x_groups * 16) {
        coopmat_x_ = memory_.device(x_groups * 16, Usage::Activations, "prompt matmul scratch");
        coopmat_x_of_ = {};
      }
      for (vk::Allocation& buf : coopmat_w_)
        if (buf.size < chunk * wt.cols * 2)
          buf = memory_.device(chunk * wt.cols * 2, Usage::Activations, "prompt matmul scratch");
      c.x16 = coopmat_x_.address;
      const OperandsOf x_of(x, w.round);
      if (coopmat_x_of_ != x_of) {
        access({x.buffer}, {kCoopMatX});
        dispatch("matmul_coopmat_x", {w.round}, CoopXPush{p.x, c.x16, uint32_t(x_groups)},
                 (x_groups + 255) / 256);
        coopmat_x_of_ = x_of;
      }
      for (uint64_t n0 = 0; n0 < uint64_t(wt.rows); n0 += chunk) {
        c.n = uint32_t(std::min<uint64_t>(chunk, wt.rows - n0));
        c.out = p.out + n0 * sizeof(float);
        c.w16 = coopmat_w_[coopmat_w_turn_].address;
        const uint32_t w_id = kCoopMatW[coopmat_w_turn_];
        coopmat_w_turn_ ^= 1;
        const uint64_t w_groups = uint64_t(c.n) * p.k / 8;
        access({wt.buffer}, {w_id});
        dispatch("matmul_coopmat_w", {w.kind, w.round},
                 CoopWPush{w.ref, c.w16, uint32_t(n0), uint32_t(w_groups), p.k},
                 (w_groups + 255) / 256);
        coopmat_gemm(c, out.buffer, w_id, w, label);
      }
    }
  } else {  // prompt: shaders/matmul.comp, 64x64 tiles in float32
    dispatch("matmul", {w.kind, w.round}, p, uint64_t(wt.rows + 63) / 64,
             uint32_t((x.rows + 63) / 64),
             op_timer_.enabled() ? "matmul " + shape_label(w.kind, wt) : "");
  }
}

void VulkanBackend::coopmat_gemm(MatmulCoopPush c, uint32_t out_buffer, uint32_t w_id,
                                 const Buffer& w, const std::string& label) {
  const uint32_t row_tiles = (c.rows + kCoopMatTile - 1) / kCoopMatTile;
  const uint32_t column_tiles = (c.n + kCoopMatTile - 1) / kCoopMatTile;
  const vk::GemmSplit plan = vk::plan_gemm_split(
      row_tiles, column_tiles, (c.k + kCoopMatK - 1) / kCoopMatK, ctx_.info.multiprocessors);
  // x: the row tiles, so that consecutive workgroups share a column tile's weight rows.
  MatmulCoopPush whole = c;
  whole.n = std::min(c.n, plan.whole_columns * kCoopMatTile);
  if (whole.n > 0) {
    access({kCoopMatX, w_id}, {out_buffer});
    dispatch("matmul_coopmat", {w.kind, w.round, 1u}, whole, row_tiles, plan.whole_columns, label);
  }
  if (plan.parts == 1) return;
  flush_sum();  // one pending at a time: its parts buffer is the other one
  const uint32_t n0 = whole.n, cols = c.n - n0, turn = coopmat_parts_turn_;
  coopmat_parts_turn_ ^= 1;
  const uint64_t part_floats = uint64_t(c.rows) * cols;
  vk::Allocation& parts = coopmat_parts_[turn];
  if (parts.size < plan.parts * part_floats * 4)  // a model reserved them; an op test did not
    parts =
        memory_.device(plan.parts * part_floats * 4, Usage::Activations, "prompt matmul scratch");
  access({kCoopMatX, w_id}, {kCoopMatParts[turn]});
  for (uint32_t j = 0; j < plan.parts; ++j) {
    const uint32_t k0 = j * plan.part_slices * kCoopMatK;
    MatmulCoopPush part = c;
    part.x16 = c.x16 + uint64_t(k0) * 2;
    part.w16 = c.w16 + (uint64_t(n0) * c.k + k0) * 2;
    part.k = std::min(plan.part_slices * kCoopMatK, c.k - k0);
    part.n = cols;
    part.out = parts.address + j * part_floats * 4;
    part.out_stride = cols;
    dispatch("matmul_coopmat", {w.kind, w.round, 1u}, part, row_tiles,
             column_tiles - plan.whole_columns, label.empty() ? label : label + " part");
  }
  pending_sum_ = PendingSum{out_buffer, kCoopMatParts[turn],
                            SumPartsPush{c.out + uint64_t(n0) * 4, parts.address, c.rows, cols,
                                         plan.parts, c.out_stride}};
}

void VulkanBackend::flush_sum() {
  if (!pending_sum_) return;
  const PendingSum s = *pending_sum_;
  pending_sum_.reset();
  access({s.parts}, {s.out_buffer});
  dispatch("sum_parts", {}, s.push, (uint64_t(s.push.rows) * s.push.cols + 255) / 256);
}

// Decode: shaders/matvec.glsl, 4 output columns per workgroup of 128 invocations, 2 per workgroup
// of 64 for narrower rows (measured on the H100 against 32/64/256 invocations and 2/4/8 rows:
// `nibble bench --kernels` and tg128, docs/PERF.md "Decode").
// The caller has checked the shapes and recorded the accesses.
void VulkanBackend::matvec(Tensor out, Tensor x, Tensor wt, const Buffer* up, Epilogue epilogue,
                           FusedNorm norm, uint64_t x16, uint64_t out16, NormFold fold) {
  const Buffer& w = weight(wt, "matmul");
  MatvecPush p{w.ref,
               up ? up->ref : WeightRef{},
               address(out),
               x16 ? x16 : address(x),
               uint32_t(wt.rows),
               uint32_t(wt.cols),
               norm.weight ? norm.weight->ref.data : 0,
               norm.eps,
               0,
               out16};
  if (fold.g) {
    p.up.data = fold.sums;
    p.norm = fold.g->ref.data;
  } else if (fold.sums) {
    p.norm = fold.sums;
    p.eps = fold.eps;
  }
  const uint32_t per_chunk = w.kind >= kQ4 ? 32 : w.kind == kF32 ? 4 : 8;
  const bool vec = wt.cols % per_chunk == 0 && p.x % 16 == 0 && vec_blocks(w);
  const bool subgroups =
      ctx_.info.subgroup_arithmetic && ctx_.info.subgroup_shuffle && ctx_.info.subgroup_size >= 8;
  const char* shader = subgroups ? "matvec_subgroup" : "matvec";
  const uint32_t norm_kind = norm.weight ? norm.weight->kind + 1 : fold.g ? fold.g->kind + 1 : 0;
  // An invocation per 16-byte chunk of a row, up to 128: rows of 2048 4-bit values (TinyLlama)
  // would leave half of 128 idle.
  const uint32_t invocations = wt.cols / per_chunk >= 128 ? 128 : 64;
  // and so half the rows: twice the workgroups keep as many loads in flight (TinyLlama tg128
  // 732 -> 782 tok/s; 2 rows of 128 invocations lose on the 7B: 273 -> 270).
  const uint32_t rows = invocations == 128 ? 4 : 2;
  // The nested code in shared memory costs every workgroup 1 KiB of loads per weight: worth it
  // for 4 rows of 4 096 values and more (7B tg128 +1 %), not for 2 of 2 048 (TinyLlama -3 %).
  const bool nested_shared = vec && w.kind == kQ4Nested && invocations == 128;
  // The 4-bit code table as specialization constants (CODE_SPEC), where both weights share it,
  // so that a workgroup starts without loading it (H100 tg128: 7B +0.6 %, TinyLlama +1.2 %;
  // docs/PERF.md "Decode", session 11).
  const bool code_spec = vec && w.kind >= kQ4 && (!up || up->code == w.code);
  std::array<uint32_t, 29> spec = {w.kind,
                                   w.round,
                                   uint32_t(vec),
                                   uint32_t(epilogue),
                                   rows,
                                   invocations,
                                   norm_kind,
                                   uint32_t(x16 != 0),
                                   uint32_t(out16 != 0),
                                   uint32_t(nested_shared),
                                   uint32_t(fold.sums != 0 && !fold.g),
                                   uint32_t(fold.g != nullptr),
                                   uint32_t(code_spec)};
  if (code_spec)
    for (size_t i = 0; i < w.code.size(); ++i) spec[13 + i] = std::bit_cast<uint32_t>(w.code[i]);
  const std::string label = op_timer_.enabled()
                                ? std::string(shader) + " " + shape_label(w.kind, wt) +
                                      (vec ? " vec" : "") + (norm.weight ? " +norm" : "") +
                                      (x16 ? " x16" : "") + (out16 ? " +out16" : "") +
                                      (fold.g      ? " +norm sums"
                                       : fold.sums ? " +scale"
                                                   : "") +
                                      (epilogue == Epilogue::Add      ? " +add"
                                       : epilogue == Epilogue::SwiGlu ? " +swiglu"
                                                                      : "")
                                : "";
  if (fold.g) {  // the residual product recorded last, again, now with the norm's part
    step_commands_.replace_dispatch(fold.command, pipelines_.get(shader, spec), &p, sizeof p);
    op_timer_.relabel_last(label);
    return;
  }
  dispatch(shader, spec, p, (uint64_t(wt.rows) + rows - 1) / rows, 1, label);
}

bool VulkanBackend::takes_operands(Tensor x, Tensor wt) {
  const Buffer& w = weight(wt, "matmul");
  return x.rows == 1 && w.kind >= kQ4 && w.round != 0 && wt.cols % 32 == 0 && vec_blocks(w);
}

void VulkanBackend::normalize(Tensor out, Tensor x, Tensor norm, float eps, uint32_t round,
                              uint32_t gemm_round) {
  const Buffer& g = weight(norm, "rms_norm");
  RmsNormPush p{g.ref, address(out),      address(x), uint32_t(x.rows), uint32_t(x.cols),
                eps,   rms_norm_slices(x)};
  access({x.buffer, norm.buffer}, {out.buffer});
  p.x16 = keep_gemm_operands(out, gemm_round);
  dispatch("rms_norm", {g.kind, g.round, round, p.x16 ? gemm_round : 0}, p,
           uint64_t(x.rows) * p.slices, 1,
           op_timer_.enabled() && round ? "rms_norm x16 " + std::to_string(x.cols) : "");
}

uint32_t VulkanBackend::gemm_round(Tensor x, Tensor wt) {
  const Buffer& w = weight(wt, "matmul");
  const bool once = ctx_.info.coopmat_f16 && w.kind >= kQ4 && w.round != 0 && gemm_input(x) &&
                    w.ref.blocksize % 16 == 0;
  return once ? w.round : 0;
}

uint64_t VulkanBackend::keep_gemm_operands(Tensor out, uint32_t round) {
  if (round == 0 || !gemm_input(out)) return 0;
  const uint64_t bytes = uint64_t(out.numel()) * 2;
  if (coopmat_x_.size < bytes)  // a model reserved them; an op test did not
    coopmat_x_ = memory_.device(bytes, Usage::Activations, "prompt matmul scratch");
  access({}, {kCoopMatX});  // after the op's own access, which may have invalidated them
  coopmat_x_of_ = OperandsOf(out, round);
  return coopmat_x_.address;
}

void VulkanBackend::prompt_norm(Tensor xn, Tensor x, Tensor norm, float eps,
                                std::initializer_list<Projection> projections) {
  const Buffer& g = weight(norm, "rms_norm");
  if (norm.numel() != x.cols || xn.cols != x.cols || xn.rows != x.rows)
    fail("rms_norm shape mismatch for " + g.name);
  uint32_t round = gemm_round(xn, projections.begin()->w);
  for (const Projection& pr : projections)
    if (gemm_round(xn, pr.w) != round) round = 0;
  normalize(xn, x, norm, eps, 0, round);
}

uint64_t VulkanBackend::operands_of(Tensor x, Tensor wt) {
  const bool ok =
      takes_operands(x, wt) && operands_of_ == OperandsOf(x, weight(wt, "matmul").round);
  return ok ? operands_.address : 0;
}

uint32_t VulkanBackend::operand_round(Tensor wt) {
  const Buffer& w = weight(wt, "matmul");
  return w.kind >= kQ4 ? w.round : 0;
}

uint64_t VulkanBackend::keep_operands(Tensor out, uint32_t round) {
  if (out.rows != 1 || round == 0 || out.cols % 2) return 0;
  if (operands_.size < uint64_t(out.cols) * 2)  // a model reserved them; an op test did not
    operands_ = memory_.device(uint64_t(out.cols) * 2, Usage::Activations, "decode operands");
  access({}, {kOperands});  // after the op's own access, which may have invalidated them
  operands_of_ = OperandsOf(out, round);
  return operands_.address;
}

bool VulkanBackend::fusable_norm(Tensor x, Tensor norm) {
  const Buffer& g = weight(norm, "rms_norm");
  if (norm.numel() != x.cols) fail("rms_norm shape mismatch for " + g.name);
  return x.rows == 1 && g.kind <= kBF16 && g.ref.values == 0;
}

void VulkanBackend::norm_matmuls(Tensor x, Tensor norm, float eps, Tensor xn,
                                 std::initializer_list<Projection> projections) {
  require_step("norm_matmuls");
  if (x.rows > 1) {
    prompt_norm(xn, x, norm, eps, projections);
    for (const Projection& pr : projections) matmul(pr.out, xn, pr.w);
    return;
  }
  if (!fusable_norm(x, norm)) return Backend::norm_matmuls(x, norm, eps, xn, projections);
  for (const Projection& pr : projections)
    if (x.cols != pr.w.cols || pr.out.cols != pr.w.rows || pr.out.rows != 1)
      fail("matmul shape mismatch for " + weight(pr.w, "matmul").name);
  // 16-bit compute: the norm writes the products' operands once (into xn, packed), which they
  // read at half the bytes; otherwise every product normalizes x itself. Either way they read
  // the same input, so they run side by side.
  const uint32_t round = weight(projections.begin()->w, "matmul").round;
  bool operands = address(xn) % 16 == 0;
  for (const Projection& pr : projections)
    operands &= takes_operands(x, pr.w) && weight(pr.w, "matmul").round == round;
  NormFold fold{};
  if (operands) {
    fold = fold_norm(x, norm, eps, xn, round);
    if (!fold.sums) normalize(xn, x, norm, eps, round);
    step_round_ = round;
  }
  for (const Projection& pr : projections) {
    if (operands) {
      access({xn.buffer, pr.w.buffer, fold.sums ? kNormSums : xn.buffer}, {pr.out.buffer});
      matvec(pr.out, x, pr.w, nullptr, Epilogue::Store, {}, address(xn), 0, fold);
    } else {
      access({x.buffer, norm.buffer, pr.w.buffer}, {pr.out.buffer});
      matvec(pr.out, x, pr.w, nullptr, Epilogue::Store, {&buffer(norm), eps});
    }
  }
}

void VulkanBackend::norm_matmul_swiglu(Tensor out, Tensor x, Tensor norm, float eps, Tensor xn,
                                       Tensor gate, Tensor up, Tensor scratch) {
  require_step("norm_matmul_swiglu");
  if (x.rows > 1) {
    prompt_norm(xn, x, norm, eps, {{out, gate}, {scratch, up}});
    return matmul_swiglu(out, xn, gate, up, scratch);
  }
  const Buffer& g = weight(gate, "matmul");
  const Buffer& u = weight(up, "matmul");
  if (!fusable_norm(x, norm) || g.kind != u.kind || g.round != u.round || gate.rows != up.rows ||
      gate.cols != up.cols)
    return Backend::norm_matmul_swiglu(out, x, norm, eps, xn, gate, up, scratch);
  if (x.cols != gate.cols || out.cols != gate.rows || out.rows != 1)
    fail("matmul shape mismatch for " + g.name);
  if (takes_operands(x, gate) && address(xn) % 16 == 0) {  // as in norm_matmuls
    const NormFold fold = fold_norm(x, norm, eps, xn, g.round);
    if (!fold.sums) normalize(xn, x, norm, eps, g.round);
    access({xn.buffer, gate.buffer, up.buffer, fold.sums ? kNormSums : xn.buffer}, {out.buffer});
    matvec(out, x, gate, &u, Epilogue::SwiGlu, {}, address(xn), keep_operands(out, g.round), fold);
  } else {
    access({x.buffer, norm.buffer, gate.buffer, up.buffer}, {out.buffer});
    matvec(out, x, gate, &u, Epilogue::SwiGlu, {&buffer(norm), eps}, 0,
           keep_operands(out, operand_round(gate)));
  }
}

void VulkanBackend::matmul_add(Tensor out, Tensor x, Tensor wt, Tensor scratch) {
  require_step("matmul_add");
  if (x.rows != 1) return Backend::matmul_add(out, x, wt, scratch);
  if (x.cols != wt.cols || out.cols != wt.rows || out.rows != 1)
    fail("matmul shape mismatch for " + weight(wt, "matmul").name);
  // x's operands, where the product that made x kept them (the MLP's SwiGLU output).
  const uint64_t x16 = operands_of(x, wt);
  // Where the next rms_norm may fold into this product, it may write the sums too.
  const bool fold = may_fold_norm(out, wt);
  access({x16 ? kOperands : x.buffer, wt.buffer, out.buffer},
         {out.buffer, fold ? kNormSums : out.buffer});
  matvec(out, x, wt, nullptr, Epilogue::Add, {}, x16);
  if (fold) last_residual_ = LastResidual{step_commands_.last_dispatch(), out, x, wt, x16};
}

bool VulkanBackend::may_fold_norm(Tensor out, Tensor wt) {
  // Not while profiling: the product and the norm's products sit in different phases.
  // The sums' copies take at most 2^11 workgroups each (shaders/matvec.glsl): rows of 65 536.
  if (!fold_norms_ || (profiling_ && ctx_.info.timestamps) || !takes_operands(out, wt) ||
      weight(wt, "matmul").round != kRoundBF16 || out.cols % 2 || out.cols > 65536)
    return false;
  if (!norm_sums_.size) {  // a model reserved them; an op test did not
    norm_sums_ = memory_.device(64 * kNormSumBytes, Usage::Activations, "folded norm sums");
    access({}, {kNormSums});
    step_commands_.zero(norm_sums_.buffer, norm_sums_.offset, norm_sums_.size);
  }
  return true;
}

VulkanBackend::NormFold VulkanBackend::fold_norm(Tensor x, Tensor norm, float eps, Tensor xn,
                                                 uint32_t round) {
  // The product wrote x, and nothing since the barrier before it touched xn, which it will write.
  const std::optional<LastResidual> r = last_residual_;
  if (!r || !same_view(r->out, x) || round != kRoundBF16 ||
      (norm_sums_used_ + 1) * kNormSumBytes > norm_sums_.size || contains(written_, xn.buffer) ||
      contains(read_, xn.buffer))
    return NormFold{};
  const NormFold fold{&buffer(norm), norm_sums_.address + norm_sums_used_++ * kNormSumBytes, eps,
                      r->command};
  access({norm.buffer}, {xn.buffer});  // no barrier: checked above
  matvec(r->out, r->x, r->w, nullptr, Epilogue::Add, {}, r->x16, address(xn), fold);
  return {nullptr, fold.sums, eps, 0};
}

void VulkanBackend::matmul_swiglu(Tensor out, Tensor x, Tensor gate, Tensor up, Tensor scratch) {
  require_step("matmul_swiglu");
  if (x.rows > 1) {
    // A prompt: the SwiGLU also writes the down projection's operands (as the gate's compute
    // dtype rounds them: the down projection checks that it does too).
    matmul(out, x, gate);
    matmul(scratch, x, up);
    return elementwise(1, out, out, scratch, gemm_round(x, gate));
  }
  const Buffer& g = weight(gate, "matmul");
  const Buffer& u = weight(up, "matmul");
  // One pass needs both weights stored alike (they always are within a model).
  if (x.rows != 1 || g.kind != u.kind || g.round != u.round || gate.rows != up.rows ||
      gate.cols != up.cols)
    return Backend::matmul_swiglu(out, x, gate, up, scratch);
  if (x.cols != gate.cols || out.cols != gate.rows || out.rows != 1)
    fail("matmul shape mismatch for " + g.name);
  access({x.buffer, gate.buffer, up.buffer}, {out.buffer});
  matvec(out, x, gate, &u, Epilogue::SwiGlu, {}, 0, keep_operands(out, operand_round(gate)));
}

void VulkanBackend::rope_kv_store(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                                  const AttentionShape& s, Tensor inv_freq) {
  require_step("rope_kv_store");
  // The fused shader writes whole words of the float16 cache: two neighbouring rotations each.
  if (s.head_dim % 4 || k.cols % 2)
    return Backend::rope_kv_store(q, k, v, k_cache, v_cache, s, inv_freq);
  check_rope_kv(q, k, v, k_cache, v_cache, s, inv_freq);
  const RopeKvPush p{address(q),          address(k),          address(v),
                     address(k_cache),    address(v_cache),    address(inv_freq),
                     slot().data.address, uint32_t(q.rows),    uint32_t(q.cols),
                     uint32_t(k.cols),    uint32_t(s.n_heads), uint32_t(s.n_kv_heads),
                     uint32_t(s.head_dim)};
  access({q.buffer, k.buffer, v.buffer, inv_freq.buffer},
         {q.buffer, k_cache.buffer, v_cache.buffer});
  // Items: quarter-heads of q, then of k, then word pairs of v (see shaders/rope_kv.comp).
  const uint64_t items =
      uint64_t(q.rows) *
      ((uint64_t(s.n_heads) + s.n_kv_heads) * (s.head_dim / 4) + uint64_t(v.cols) / 2);
  dispatch("rope_kv", {}, p, (items + 255) / 256);
}

void VulkanBackend::rope(Tensor x, int n_heads, int head_dim, Tensor inv_freq) {
  require_step("rope");
  if (head_dim % 2 || int64_t(n_heads) * head_dim > x.cols || inv_freq.numel() < head_dim / 2)
    fail("rope shape mismatch");
  const RopePush p{address(x),       address(inv_freq), slot().data.address, uint32_t(x.rows),
                   uint32_t(x.cols), uint32_t(n_heads), uint32_t(head_dim)};
  access({x.buffer, inv_freq.buffer}, {x.buffer});
  dispatch("rope", {}, p, (uint64_t(x.rows) * n_heads * (head_dim / 2) + 255) / 256);
}

void VulkanBackend::kv_store(Tensor k_cache, Tensor v_cache, Tensor k, Tensor v) {
  require_step("kv_store");
  if (k_cache.dtype != DType::F16 || v_cache.dtype != DType::F16 || k.cols != k_cache.cols ||
      v.cols != v_cache.cols || k.cols != v.cols || k.rows != v.rows || k.cols % 2)
    fail("kv_store shape mismatch");
  if (step_.pos0 + k.rows > k_cache.rows)
    fail("kv_store: positions " + std::to_string(step_.pos0 + k.rows) + " exceed the cache's " +
         std::to_string(k_cache.rows));
  const KvStorePush p{address(k_cache),    address(v_cache), address(k),      address(v),
                      slot().data.address, uint32_t(k.rows), uint32_t(k.cols)};
  access({k.buffer, v.buffer}, {k_cache.buffer, v_cache.buffer});
  dispatch("kv_store", {}, p, (uint64_t(k.numel()) / 2 + 255) / 256);
}

void VulkanBackend::check_rope_kv(Tensor q, Tensor k, Tensor v, Tensor k_cache, Tensor v_cache,
                                  const AttentionShape& s, Tensor inv_freq) const {
  if (int64_t(s.n_heads) * s.head_dim > q.cols || int64_t(s.n_kv_heads) * s.head_dim > k.cols ||
      inv_freq.numel() < s.head_dim / 2 || q.rows != k.rows)
    fail("rope shape mismatch");
  if (k_cache.dtype != DType::F16 || v_cache.dtype != DType::F16 || k.cols != k_cache.cols ||
      v.cols != v_cache.cols || k.cols != v.cols || k.rows != v.rows)
    fail("kv_store shape mismatch");
  if (step_.pos0 + k.rows > k_cache.rows)
    fail("kv_store: positions " + std::to_string(step_.pos0 + k.rows) + " exceed the cache's " +
         std::to_string(k_cache.rows));
}

void VulkanBackend::check_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                                    const AttentionShape& s) const {
  if (s.head_dim % 2 || s.head_dim > 256 || s.n_kv_heads <= 0 || s.n_heads % s.n_kv_heads ||
      int64_t(s.n_heads) * s.head_dim > q.cols ||
      int64_t(s.n_kv_heads) * s.head_dim > k_cache.cols || k_cache.cols != v_cache.cols ||
      out.rows != q.rows || out.cols < q.cols || k_cache.dtype != DType::F16 ||
      v_cache.dtype != DType::F16)
    fail("attention shape mismatch (the Vulkan backend supports even head_dim <= 256)");
  // The last row sees positions [0, pos0 + rows).
  if (step_.pos0 + q.rows > k_cache.rows) fail("attention: the step runs past the KV cache");
}

bool VulkanBackend::vec_caches(Tensor k_cache, Tensor v_cache, const AttentionShape& s) {
  return k_cache.cols % 8 == 0 && s.head_dim % 8 == 0 && address(k_cache) % 16 == 0 &&
         address(v_cache) % 16 == 0;
}

// Decode: the rotation and the KV store fused into the attention's prologue (shaders/attention.comp
// ROPE), where its caches take 16-byte loads; otherwise the two ops.
void VulkanBackend::rope_kv_attention(Tensor out, Tensor q, Tensor k, Tensor v, Tensor k_cache,
                                      Tensor v_cache, const AttentionShape& s, Tensor inv_freq) {
  require_step("rope_kv_attention");
  const bool fused =
      q.rows == 1 && uint64_t(s.n_heads) < kSplitItems && vec_caches(k_cache, v_cache, s);
  if (!fused) return Backend::rope_kv_attention(out, q, k, v, k_cache, v_cache, s, inv_freq);
  check_rope_kv(q, k, v, k_cache, v_cache, s, inv_freq);
  check_attention(out, q, k_cache, v_cache, s);
  const RopeInputs rope{k, v, inv_freq};
  split_attention(out, q, k_cache, v_cache, s, &rope);
}

void VulkanBackend::attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                              const AttentionShape& s) {
  require_step("attention");
  check_attention(out, q, k_cache, v_cache, s);
  const uint64_t items = uint64_t(q.rows) * s.n_heads;
  // A prompt: 32 queries per workgroup share each key/value tile (shaders/attention_prefill.comp,
  // 16-byte loads of the caches).
  if (items >= 512 && s.head_dim <= 128 && vec_caches(k_cache, v_cache, s) &&
      ctx_.info.subgroup_shuffle && ctx_.info.subgroup_size % 4 == 0) {
    // On the matrix units where the model computes in 16 bits (shaders/attention_coopmat.comp),
    // else in float32 (attention_prefill.comp: 32 queries per workgroup).
    const bool coopmat =
        ctx_.info.coopmat_f16 && s.compute != ComputeDType::F32 && s.head_dim % 16 == 0;
    AttentionPrefillPush a{address(q),
                           address(k_cache),
                           address(v_cache),
                           address(out),
                           slot().data.address,
                           uint32_t(q.rows),
                           uint32_t(q.cols),
                           uint32_t(k_cache.cols),
                           uint32_t(out.cols),
                           uint32_t(s.n_heads),
                           uint32_t(s.n_kv_heads),
                           uint32_t(std::max(0, s.sliding_window)),
                           1.0f / std::sqrt(float(s.head_dim))};
    access({q.buffer, k_cache.buffer, v_cache.buffer}, {out.buffer});
    if (coopmat) {
      // The o projection's operands too, rounded as the model computes.
      const uint32_t round = round_of(s.compute);
      a.x16 = keep_gemm_operands(out, round);
      // 16 queries per subgroup. Without GQA every query head reads its own keys and values, and
      // each staged tile is shared by more queries with 8 subgroups than 4 (H100 7B pp512 after
      // 2 048 / 4 096 tokens: 9 705 -> 10 196, 8 149 -> 8 938 tok/s); where query heads share a
      // KV head, its tiles come from the L2 cache and 4 stay ahead (TinyLlama: 38 040 -> 37 332,
      // 29 863 -> 29 715; docs/PERF.md "Prefill", session 15).
      const uint32_t wg = s.n_heads == s.n_kv_heads ? 256 : 128, queries = wg / 2;
      dispatch("attention_coopmat", {uint32_t(s.head_dim), a.x16 ? round : 0, wg}, a,
               (uint64_t(q.rows) + queries - 1) / queries, uint32_t(s.n_heads));
    } else {
      dispatch("attention_prefill", {uint32_t(s.head_dim)}, a, (uint64_t(q.rows) + 31) / 32,
               uint32_t(s.n_heads));
    }
    return;
  }
  split_attention(out, q, k_cache, v_cache, s, nullptr);
}

// shaders/attention.comp over split contexts (decode, short prompts); `rope` (decode only) fuses
// the rotation of q and k and the KV store in front.
void VulkanBackend::split_attention(Tensor out, Tensor q, Tensor k_cache, Tensor v_cache,
                                    const AttentionShape& s, const RopeInputs* rope) {
  const int64_t length = step_.pos0 + q.rows;
  const uint64_t items = uint64_t(q.rows) * s.n_heads;
  // Split the context when rows x heads alone would leave the GPU idle (decode, short prompts).
  const AttentionSplit split = attention_split(length, items >= kSplitItems ? 1 : kMaxSplits);
  const uint32_t splits = split.count;
  // One split writes the output itself; several write partial results, which the last of them
  // to finish merges (shaders/attention.glsl).
  const bool final = splits == 1;
  if (!final && partial_.size < items * splits * (2 + s.head_dim) * sizeof(float))
    partial_ = memory_.device(attention_partial_bytes(k_cache.rows, s.head_dim), Usage::Activations,
                              "attention scratch");
  if (!final && !attention_counts_.size) {  // a model reserved them; an op test did not
    attention_counts_ =
        memory_.device(kSplitItems * sizeof(uint32_t), Usage::Activations, "attention scratch");
    zero_attention_counts();
  }
  AttentionPush p{address(q),
                  address(k_cache),
                  address(v_cache),
                  final ? 0 : partial_.address,
                  slot().data.address,
                  rope ? address(rope->k) : 0,
                  rope ? address(rope->v) : 0,
                  rope ? address(rope->inv_freq) : 0,
                  uint32_t(q.cols),
                  uint32_t(k_cache.cols),
                  uint32_t(s.n_heads),
                  uint32_t(s.n_kv_heads),
                  uint32_t(std::max(0, s.sliding_window)),
                  split.len,
                  1.0f / std::sqrt(float(s.head_dim)),
                  uint32_t(out.cols)};
  p.out = address(out);
  p.counts = final ? 0 : attention_counts_.address;
  const bool k_vec = vec_caches(k_cache, v_cache, s);
  // (A single split touches neither the partials nor the counts; declaring them costs nothing.)
  if (rope)
    access({q.buffer, rope->k.buffer, rope->v.buffer, rope->inv_freq.buffer, k_cache.buffer,
            v_cache.buffer},
           {out.buffer, kScratchBuffer, kAttentionCounts, k_cache.buffer, v_cache.buffer});
  else
    access({q.buffer, k_cache.buffer, v_cache.buffer},
           {out.buffer, kScratchBuffer, kAttentionCounts});
  // A decode step's output also as the o projection's operands (whose rounding norm_matmuls
  // gave).
  const uint32_t round = q.rows == 1 ? step_round_ : 0;
  p.out16 = keep_operands(out, round);
  // The softmax's reductions by subgroup arithmetic where the device has it (2 barriers each
  // instead of 9; docs/PERF.md "Decode", session 15).
  dispatch(ctx_.info.subgroup_arithmetic ? "attention_subgroup" : "attention",
           {uint32_t(s.head_dim), uint32_t(k_vec), uint32_t(final), uint32_t(rope != nullptr),
            p.out16 ? round : 0},
           p, splits, uint32_t(items));
}

void VulkanBackend::zero_attention_counts() {
  access({}, {kAttentionCounts});
  step_commands_.zero(attention_counts_.buffer, attention_counts_.offset, attention_counts_.size);
  zero_attention_counts_ = false;
}

void VulkanBackend::elementwise(uint32_t op, Tensor out, Tensor a, Tensor b, uint32_t gemm_round) {
  if (out.numel() != a.numel() || a.numel() != b.numel()) fail("elementwise shape mismatch");
  ElementwisePush p{address(out), address(a), address(b), uint32_t(out.numel())};
  access({a.buffer, b.buffer}, {out.buffer});
  p.x16 = keep_gemm_operands(out, gemm_round);
  const uint64_t per_invocation = p.x16 ? 2 : 1;  // pairs for the operands
  dispatch("elementwise", {op, p.x16 ? gemm_round : 0}, p,
           (uint64_t(out.numel()) / per_invocation + 255) / 256);
}

void VulkanBackend::swiglu(Tensor out, Tensor gate, Tensor up) {
  require_step("swiglu");
  elementwise(1, out, gate, up);
}

void VulkanBackend::add(Tensor x, Tensor y) {
  require_step("add");
  elementwise(0, x, x, y);
}

void VulkanBackend::argmax(Tensor ids, Tensor logits) {
  require_step("argmax");
  if (ids.numel() != logits.rows) fail("argmax shape mismatch");
  const ArgmaxPush p{address(ids), address(logits), uint32_t(logits.rows), uint32_t(logits.cols)};
  access({logits.buffer}, {ids.buffer});
  dispatch("argmax", {}, p, uint64_t(logits.rows));
}

void VulkanBackend::sample(Tensor ids, Tensor logits, const SamplerConfig& config) {
  require_step("sample");
  if (logits.rows != 1 || ids.numel() != 1) fail("sample: one row of logits, one id");
  const SamplePush p{address(ids),
                     address(logits),
                     slot().data.address,
                     uint32_t(logits.cols),
                     1.0f / config.temperature,
                     uint32_t(std::max(config.top_k, 0)),
                     config.top_p,
                     config.min_p};
  access({logits.buffer}, {ids.buffer});
  dispatch("sample", {}, p, 1);
}

// attention's partial results (when a step has few rows x heads, the context is split), the
// decode operands a matvec keeps for the next (operands_) and, on cooperative-matrix devices,
// the prompt GEMM's float16 operands (see matmul and attention).
VulkanBackend::Scratch VulkanBackend::scratch_for(const ModelConfig& c, int context,
                                                  int max_batch) const {
  Scratch s;
  s.partial = attention_partial_bytes(context, c.head_dim);
  s.counts = s.partial > 0 ? kSplitItems * sizeof(uint32_t) : 0;
  s.operands =
      (uint64_t(std::max({c.hidden_size, c.q_dim(), c.intermediate_size})) * 2 + 15) / 16 * 16;
  s.norm_sums = 2 * uint64_t(c.num_hidden_layers) * kNormSumBytes;
  if (ctx_.info.coopmat_f16 && max_batch > 1) {
    const uint64_t d = uint64_t(c.hidden_size), q = uint64_t(c.q_dim()), kv = uint64_t(c.kv_dim()),
                   f = uint64_t(c.intermediate_size);
    s.coopmat_x = uint64_t(max_batch) * std::max({d, q, f}) * 2;
    for (const auto& [rows, cols] : {std::pair{q, d}, {kv, d}, {d, q}, {f, d}, {d, f}}) {
      const uint64_t chunk =
          std::min(rows, std::max<uint64_t>(128, kCoopMatWeightBytes / (2 * cols) / 128 * 128));
      s.coopmat_w = std::max(s.coopmat_w, chunk * cols * 2);  // each of the two buffers
      // The parts of a GEMM of every prompt length (each of the two buffers).
      for (const uint64_t n : {chunk, rows % chunk})
        for (uint64_t m = kCoopMatTile; n > 0 && m < max_batch + kCoopMatTile; m += kCoopMatTile) {
          const vk::GemmSplit plan = vk::plan_gemm_split(
              uint32_t(m / kCoopMatTile), uint32_t((n + kCoopMatTile - 1) / kCoopMatTile),
              uint32_t((cols + kCoopMatK - 1) / kCoopMatK), ctx_.info.multiprocessors);
          if (plan.parts > 1)
            s.coopmat_parts =
                std::max(s.coopmat_parts, plan.parts * std::min<uint64_t>(m, max_batch) *
                                              (n - plan.whole_columns * kCoopMatTile) * 4);
        }
    }
  }
  return s;
}

uint64_t VulkanBackend::scratch_bytes(const ModelConfig& c, int context, int max_batch) const {
  const Scratch s = scratch_for(c, context, max_batch);
  return s.partial + s.counts + s.coopmat_x + 2 * (s.coopmat_w + s.coopmat_parts) + s.operands +
         s.norm_sums;
}

// Allocated now at their bounds: growing them later would leave each smaller one behind (the
// suballocator does not free).
void VulkanBackend::reserve_scratch(const ModelConfig& c, int context, int max_batch) {
  const Scratch s = scratch_for(c, context, max_batch);
  if (partial_.size < s.partial)
    partial_ = memory_.device(s.partial, Usage::Activations, "attention scratch");
  if (attention_counts_.size < s.counts) {
    attention_counts_ = memory_.device(s.counts, Usage::Activations, "attention scratch");
    zero_attention_counts_ = true;
  }
  if (coopmat_x_.size < s.coopmat_x)
    coopmat_x_ = memory_.device(s.coopmat_x, Usage::Activations, "prompt matmul scratch");
  for (vk::Allocation& buf : coopmat_w_)
    if (buf.size < s.coopmat_w)
      buf = memory_.device(s.coopmat_w, Usage::Activations, "prompt matmul scratch");
  for (vk::Allocation& buf : coopmat_parts_)
    if (buf.size < s.coopmat_parts)
      buf = memory_.device(s.coopmat_parts, Usage::Activations, "prompt matmul scratch");
  if (operands_.size < s.operands)
    operands_ = memory_.device(s.operands, Usage::Activations, "decode operands");
  if (norm_sums_.size < s.norm_sums)
    norm_sums_ = memory_.device(s.norm_sums, Usage::Activations, "folded norm sums");
}

// --- bandwidth ----------------------------------------------------------------------------------

double VulkanBackend::measure_bandwidth() {
  const VkQueryPool queries = slots_[0].queries;
  if (!queries || recording_) return 0;
  wait_steps();
  // 1 GiB each way on a GPU (far beyond its caches); 8 MiB and few workgroups (each costs tens
  // of microseconds there) on a CPU device. The buffers stay allocated: bench measures on a
  // backend of its own.
  const bool cpu = ctx_.info.type_rank == 3;
  const VkDeviceSize bytes =
      cpu ? VkDeviceSize(8) << 20
          : std::min<VkDeviceSize>(VkDeviceSize(1) << 30, ctx_.info.max_allocation / 2 / 256 * 256);
  const vk::Allocation src = memory_.device(bytes, Usage::Activations, "the bandwidth test");
  const vk::Allocation dst = memory_.device(bytes, Usage::Activations, "the bandwidth test");
  const CopyPush p{dst.address, src.address, uint32_t(bytes / 16)};
  const int repeats = 5;
  const uint64_t groups = cpu ? 64 : std::min<uint64_t>(bytes / 16 / 256, 4 * kMaxGroups);
  vk::StepCommands copies;
  copies.reset_queries(queries, 2);
  copies.timestamp(queries, 0);
  for (int i = 0; i < repeats; ++i) {
    add_dispatch(copies, "copy", {}, p, groups, 1);
    copies.barrier();
  }
  copies.timestamp(queries, 1);
  double best_ms = 0;
  for (int round = 0; round < 2; ++round) {  // the first round warms up (pipeline, clocks)
    one_shot([&](VkCommandBuffer cmd) { copies.emit(cmd, pipelines_.layout()); });
    uint64_t ticks[2] = {};
    vk::check(vkGetQueryPoolResults(ctx_.device, queries, 0, 2, sizeof ticks, ticks, 8,
                                    VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
              "vkGetQueryPoolResults");
    best_ms = double(ticks[1] - ticks[0]) * ctx_.info.timestamp_period_ns * 1e-6;
  }
  return best_ms > 0 ? 2.0 * double(bytes) * repeats / (best_ms * 1e-3) / 1e9 : 0;
}

// --- timing -------------------------------------------------------------------------------------

// Phases are timed with a timestamp pair each; an open phase has ms < 0 until it is closed, and
// every phase is closed before the step is submitted so that no query is left unwritten.
void VulkanBackend::phase_begin(int layer, Phase phase) {
  if (!profiling_ || !slot().queries || !recording_) return;
  close_phase();
  if (phases_.size() >= kMaxPhases) return;
  step_commands_.timestamp(slot().queries, uint32_t(2 * phases_.size()));
  phases_.push_back({layer, phase, -1.0});
}

void VulkanBackend::phase_end(int, Phase) {
  if (recording_) close_phase();
}

void VulkanBackend::close_phase() {
  if (phases_.empty() || phases_.back().ms >= 0) return;
  step_commands_.timestamp(slot().queries, uint32_t(2 * phases_.size() - 1));
  phases_.back().ms = 0;
}

std::vector<LayerTime> VulkanBackend::step_times() {
  wait_steps();
  return last_times_;
}

}  // namespace

std::unique_ptr<Backend> make_vulkan_backend(int device) {
  return std::make_unique<VulkanBackend>(device);
}

}  // namespace nibble
