#include "engine/vulkan/vk_quantizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <span>
#include <string_view>
#include <thread>

#include "engine/error.h"
#include "engine/vulkan/vk_check.h"
#include "loader/parallel_copy.h"
#include "loader/quantize.h"

namespace nibble::vk {

namespace {

// 8 chunks of 16 MiB in flight: enough to keep copying while the device catches up, and far
// below what a weight takes (the 16-bit data never all sits in memory at once).
constexpr size_t kSlots = 8;
constexpr VkDeviceSize kSlotBytes = VkDeviceSize(16) << 20;
constexpr size_t kRecords = 3;  // weights between pass 1 and completion: see retire()
constexpr VkDeviceSize kResultBytes = 16;
constexpr uint64_t kTimeoutNs = 600ull * 1000 * 1000 * 1000;
constexpr uint32_t kNoError = 0xffffffffu;
constexpr uint32_t kMaxGroups = 65535;

// A record's device scratch: status word (lowest bad element), sum, partial sums, float32 absmax.
constexpr VkDeviceSize kStatusAt = 0, kSumAt = 4, kPartialAt = 256;

// shaders/quantize.glsl `QuantConstants` (std430).
struct Constants {
  std::array<uint32_t, 32> rcp_table;
  std::array<float, 15> nf4;
  std::array<float, 7> fp4;
  std::array<uint32_t, 8> fp4_index;
  std::array<float, 256> nested_code;
};
static_assert(sizeof(Constants) == (32 + 15 + 7 + 8 + 256) * 4);

// Push constants of shaders/quantize_*.comp.
struct Pass1Push {
  uint64_t src, packed, absmax, constants, status;
  uint32_t count, first, blocksize;
};
struct SumPush {
  uint64_t values, out;
  uint32_t n, blocks, lanes, vectorized, phase;
};
struct NestedPush {
  uint64_t absmax, absmax_q, nested_absmax, constants;
  uint32_t n;
  float offset, offset_scaled;
};

VkDeviceSize align256(VkDeviceSize bytes) {
  return (bytes + 255) / 256 * 256;
}

uint32_t align4(size_t bytes) {
  return uint32_t((bytes + 3) / 4 * 4);
}

// Everything before it (copies, dispatches) is done and visible to everything after it,
// device and host.
void full_barrier(VkCommandBuffer cmd) {
  VkMemoryBarrier mb{VK_STRUCTURE_TYPE_MEMORY_BARRIER};
  mb.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT;
  mb.dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                     VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT |
                     VK_ACCESS_HOST_READ_BIT;
  vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
                       VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT |
                           VK_PIPELINE_STAGE_HOST_BIT,
                       0, 1, &mb, 0, nullptr, 0, nullptr);
}

bool power_of_two(int v) {
  return v > 0 && (v & (v - 1)) == 0;
}

template <class Push>
void dispatch(Pipelines& pipelines, VkCommandBuffer cmd, std::string_view shader,
              std::span<const uint32_t> spec, const Push& push, uint32_t groups) {
  vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipelines.get(shader, spec));
  vkCmdPushConstants(cmd, pipelines.layout(), VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof push, &push);
  const uint32_t x = std::min(groups, kMaxGroups);  // wider grids fold into y (group_index())
  vkCmdDispatch(cmd, x, (groups + x - 1) / x, 1);
}

}  // namespace

QuantLayout quant_layout(size_t packed_bytes, size_t absmax_bytes, size_t nested_bytes,
                         size_t code_floats) {
  QuantLayout at;
  at.absmax_at = align4(packed_bytes);
  at.nested_at = at.absmax_at + align4(absmax_bytes);
  at.code_at = at.nested_at + align4(nested_bytes);
  at.bytes = at.code_at + uint32_t(code_floats * 4);
  return at;
}

QuantLayout quant_layout(int64_t numel, const QuantSpec& spec) {
  const size_t blocks = size_t((numel + spec.blocksize - 1) / spec.blocksize);
  const size_t nested_blocks = (blocks + kNestedBlocksize - 1) / kNestedBlocksize;
  return spec.double_quant
             ? quant_layout(size_t(numel + 1) / 2, blocks, nested_blocks * 4, 16 + 256)
             : quant_layout(size_t(numel + 1) / 2, blocks * 4, 0, 16);
}

// --- the ring and the weights in flight -------------------------------------------------------

struct Quantizer::Slot {
  uint8_t* mapped = nullptr;  // its staging memory
  VkDeviceAddress address = 0;
  VkCommandBuffer cmd = VK_NULL_HANDLE;
  VkFence fence = VK_NULL_HANDLE;
  uint64_t submission = 0;  // the number of its last submission
  bool busy = false;        // that submission may still run
};

struct Quantizer::Record {
  enum class State { Free, Quantizing, Nesting } state = State::Free;
  uint64_t sequence = 0;  // age
  std::string name;       // for the error message
  DType input = DType::BF16;
  QuantSpec spec;
  Allocation dst, scratch;
  QuantLayout at;
  std::function<void(float)> set_offset;
  int64_t blocks = 0;
  TorchReduce reduce;
  VkDeviceSize absmax_at = 0;  // in scratch
  uint64_t last = 0;           // its last submission
  uint32_t* result = nullptr;  // host-visible: status, sum
};

Quantizer::Quantizer(const Context& ctx, Memory& memory, Pipelines& pipelines,
                     unsigned copy_threads)
    : ctx_(ctx),
      memory_(memory),
      pipelines_(pipelines),
      slots_(kSlots),
      records_(kRecords),
      copy_threads_(copy_threads ? copy_threads
                                 : std::clamp(std::thread::hardware_concurrency() / 2, 1u, 8u)) {
  VkCommandPoolCreateInfo pci{VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pci.flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT;
  pci.queueFamilyIndex = ctx_.queue_family;
  check(vkCreateCommandPool(ctx_.device, &pci, nullptr, &pool_), "vkCreateCommandPool");
  for (Slot& s : slots_) {
    VkCommandBufferAllocateInfo ai{VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    ai.commandPool = pool_;
    ai.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    ai.commandBufferCount = 1;
    check(vkAllocateCommandBuffers(ctx_.device, &ai, &s.cmd), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fci{VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    check(vkCreateFence(ctx_.device, &fci, nullptr, &s.fence), "vkCreateFence");
  }
}

Quantizer::~Quantizer() {
  // The owner has waited for the device (VulkanBackend's destructor): nothing is in flight, and a
  // lost device must not make the destructor throw.
  for (Slot& s : slots_) s.busy = false;
  release();
  for (Slot& s : slots_) vkDestroyFence(ctx_.device, s.fence, nullptr);
  vkDestroyCommandPool(ctx_.device, pool_, nullptr);
}

bool Quantizer::supports(const HostWeight& w, const QuantSpec& spec) {
  const int64_t numel = w.rows * w.cols;
  const size_t element = dtype_size(w.dtype);
  return (w.dtype == DType::F32 || w.dtype == DType::F16 || w.dtype == DType::BF16) &&
         power_of_two(spec.blocksize) && spec.blocksize >= 64 && spec.blocksize <= 4096 &&
         numel > 0 && numel < (int64_t(1) << 31) && w.nbytes >= size_t(numel) * element;
}

void Quantizer::start() {
  staging_ = memory_.temporary(kSlots * kSlotBytes + kRecords * kResultBytes, false,
                               "the quantizer's staging ring");
  constants_ = memory_.temporary(sizeof(Constants), true, "the quantizer's tables");
  for (size_t i = 0; i < kSlots; ++i) {
    slots_[i].mapped = staging_.mapped + i * kSlotBytes;
    slots_[i].address = staging_.address + i * kSlotBytes;
  }
  for (size_t i = 0; i < kRecords; ++i)
    records_[i].result =
        reinterpret_cast<uint32_t*>(staging_.mapped + kSlots * kSlotBytes + i * kResultBytes);
  copier_ = std::make_unique<ParallelCopy>(copy_threads_);
  started_ = true;

  Constants c{};
  c.rcp_table = bnb_reciprocal_table();
  const FourBitThresholds& t = four_bit_thresholds();
  c.nf4 = t.nf4;
  c.fp4 = t.fp4;
  c.fp4_index = t.fp4_index;
  c.nested_code = dynamic_map_signed();
  Slot& s = acquire();
  vkCmdUpdateBuffer(s.cmd, constants_.buffer, constants_.offset, sizeof c, &c);
  full_barrier(s.cmd);
  submit(s);
}

void Quantizer::release() {
  for (Slot& s : slots_) wait(s);
  for (Record& r : records_) {
    if (r.scratch.buffer) memory_.release(r.scratch);
    r = Record{};
  }
  if (staging_.buffer) memory_.release(staging_);
  if (constants_.buffer) memory_.release(constants_);
  staging_ = constants_ = Allocation{};
  copier_.reset();
  started_ = false;
}

void Quantizer::wait(Slot& s) {
  if (!s.busy) return;
  const VkResult r = vkWaitForFences(ctx_.device, 1, &s.fence, VK_TRUE, kTimeoutNs);
  if (r == VK_TIMEOUT)
    fail("the Vulkan device did not finish quantizing a weight within 10 minutes (hung?)");
  check(r, "vkWaitForFences (quantizing)");
  s.busy = false;
}

Quantizer::Slot& Quantizer::acquire() {
  Slot& s = slots_[next_slot_];
  next_slot_ = (next_slot_ + 1) % kSlots;
  wait(s);
  check(vkResetCommandBuffer(s.cmd, 0), "vkResetCommandBuffer");
  VkCommandBufferBeginInfo bi{VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  bi.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
  check(vkBeginCommandBuffer(s.cmd, &bi), "vkBeginCommandBuffer");
  return s;
}

void Quantizer::submit(Slot& s) {
  check(vkEndCommandBuffer(s.cmd), "vkEndCommandBuffer");
  VkSubmitInfo si{VK_STRUCTURE_TYPE_SUBMIT_INFO};
  si.commandBufferCount = 1;
  si.pCommandBuffers = &s.cmd;
  check(vkResetFences(ctx_.device, 1, &s.fence), "vkResetFences");
  check(vkQueueSubmit(ctx_.queue, 1, &si, s.fence), "vkQueueSubmit");
  s.submission = ++submitted_;
  s.busy = true;
}

bool Quantizer::done(uint64_t submission) {
  for (Slot& s : slots_)
    if (s.busy && s.submission == submission) {
      if (vkGetFenceStatus(ctx_.device, s.fence) != VK_SUCCESS) return false;
      s.busy = false;
    }
  return true;  // its slot has been waited for since
}

void Quantizer::wait_for(uint64_t submission) {
  for (Slot& s : slots_)
    if (s.submission == submission) wait(s);
}

void Quantizer::ensure_scratch(Record& r, VkDeviceSize bytes) {
  if (r.scratch.size >= bytes) return;
  if (r.scratch.buffer) memory_.release(r.scratch);
  r.scratch = memory_.temporary(std::max(bytes, VkDeviceSize(4) << 20), true,
                                "the quantizer's scratch memory");
}

Quantizer::Record& Quantizer::free_record() {
  Record* oldest = nullptr;
  for (Record& r : records_) {
    if (r.state == Record::State::Free) return r;
    if (r.state == Record::State::Nesting && (!oldest || r.sequence < oldest->sequence))
      oldest = &r;
  }
  if (!oldest) fail("internal error: no free quantizer record");
  wait_for(oldest->last);
  *oldest = Record{.scratch = oldest->scratch, .result = oldest->result};
  return *oldest;
}

void Quantizer::quantize(const HostWeight& w, const QuantSpec& spec, const Allocation& dst,
                         std::function<void(float)> set_offset) {
  if (!started_) start();
  retire(true);
  Record& r = free_record();
  r.state = Record::State::Quantizing;
  r.sequence = ++sequence_;
  r.name = w.name;
  r.input = w.dtype;
  r.spec = spec;
  r.dst = dst;
  r.set_offset = std::move(set_offset);
  const int64_t numel = w.rows * w.cols;
  r.at = quant_layout(numel, spec);
  r.blocks = (numel + spec.blocksize - 1) / spec.blocksize;
  r.reduce = torch_cuda_reduce(r.blocks);
  r.absmax_at = kPartialAt + align256(VkDeviceSize(r.reduce.blocks) * 4);
  ensure_scratch(r, spec.double_quant ? r.absmax_at + VkDeviceSize(r.blocks) * 4 : kPartialAt);

  const size_t element = dtype_size(w.dtype);
  const int64_t chunk = int64_t(kSlotBytes / element) / 4096 * 4096;  // whole blocks, words
  for (int64_t first = 0; first < numel; first += chunk) {
    const int64_t count = std::min(chunk, numel - first);
    Slot& s = acquire();
    copier_->copy(s.mapped, w.data + first * int64_t(element), size_t(count) * element);
    record_pass1(r, s.cmd, s, first, count);
    if (first + count == numel) {
      full_barrier(s.cmd);
      if (spec.double_quant) record_sum(r, s.cmd);
      const VkBufferCopy result{
          r.scratch.offset + kStatusAt,
          staging_.offset + VkDeviceSize(reinterpret_cast<uint8_t*>(r.result) - staging_.mapped),
          8};
      vkCmdCopyBuffer(s.cmd, r.scratch.buffer, staging_.buffer, 1, &result);
      full_barrier(s.cmd);
    }
    submit(s);
    r.last = s.submission;
  }
}

void Quantizer::record_pass1(Record& r, VkCommandBuffer cmd, const Slot& s, int64_t first,
                             int64_t count) {
  if (first == 0) {
    // The weight's code tables and an empty status, before any chunk writes.
    vkCmdFillBuffer(cmd, r.scratch.buffer, r.scratch.offset + kStatusAt, 4, kNoError);
    std::vector<float> codes(quant_code(r.spec.type).begin(), quant_code(r.spec.type).end());
    if (r.spec.double_quant)
      codes.insert(codes.end(), dynamic_map_signed().begin(), dynamic_map_signed().end());
    vkCmdUpdateBuffer(cmd, r.dst.buffer, r.dst.offset + r.at.code_at, codes.size() * 4,
                      codes.data());
    full_barrier(cmd);
  }
  const uint32_t per_thread = r.spec.blocksize == 4096 ? 16 : 8;
  const uint64_t absmax =
      r.spec.double_quant ? r.scratch.address + r.absmax_at : r.dst.address + r.at.absmax_at;
  const Pass1Push push{s.address,
                       r.dst.address + uint64_t(first / 2),
                       absmax + uint64_t(first / r.spec.blocksize) * 4,
                       constants_.address,
                       r.scratch.address + kStatusAt,
                       uint32_t(count),
                       uint32_t(first),
                       uint32_t(r.spec.blocksize)};
  const uint32_t input = r.input == DType::F32 ? 0 : r.input == DType::F16 ? 1 : 2;
  const std::array<uint32_t, 3> spec{input, r.spec.type == QuantType::NF4 ? 0u : 1u, per_thread};
  dispatch(pipelines_, cmd, "quantize_4bit", spec, push,
           uint32_t((count + 256 * per_thread - 1) / (256 * per_thread)));
}

void Quantizer::record_sum(Record& r, VkCommandBuffer cmd) {
  const uint32_t lanes = uint32_t(r.reduce.lanes), blocks = uint32_t(r.reduce.blocks);
  const uint32_t vectorized = r.reduce.vectorized;
  const uint64_t sum = r.scratch.address + kSumAt, partial = r.scratch.address + kPartialAt;
  const SumPush per_block{r.scratch.address + r.absmax_at,
                          blocks > 1 ? partial : sum,
                          uint32_t(r.blocks),
                          blocks,
                          lanes,
                          vectorized,
                          0};
  dispatch(pipelines_, cmd, "quantize_sum", {}, per_block, blocks);
  if (blocks == 1) return;
  full_barrier(cmd);
  const SumPush total{partial, sum, blocks, 1, lanes, vectorized, 1};
  dispatch(pipelines_, cmd, "quantize_sum", {}, total, 1);
}

void Quantizer::retire(bool keep_newest) {
  std::vector<Record*> quantizing;
  for (Record& r : records_) {
    if (r.state == Record::State::Quantizing) quantizing.push_back(&r);
    if (r.state == Record::State::Nesting && done(r.last))
      r = Record{.scratch = r.scratch, .result = r.result};
  }
  std::sort(quantizing.begin(), quantizing.end(),
            [](const Record* a, const Record* b) { return a->sequence < b->sequence; });
  if (keep_newest && !quantizing.empty()) quantizing.pop_back();
  for (Record* r : quantizing) {
    wait_for(r->last);
    if (r->result[0] != kNoError) fail_non_finite(*r, r->result[0]);
    if (!r->spec.double_quant) {
      *r = Record{.scratch = r->scratch, .result = r->result};
      continue;
    }
    float sum;
    std::memcpy(&sum, &r->result[1], 4);
    const float offset = torch_mean_of_sum(sum, r->blocks);
    r->set_offset(offset);
    Slot& s = acquire();
    const NestedPush push{
        r->scratch.address + r->absmax_at,
        r->dst.address + r->at.absmax_at,
        r->dst.address + r->at.nested_at,
        constants_.address,
        uint32_t(r->blocks),
        offset,
        std::fabs(offset) < std::numeric_limits<float>::min() ? std::ldexp(offset, 64) : 0.0f};
    dispatch(pipelines_, s.cmd, "quantize_nested", {}, push,
             uint32_t((r->blocks + kNestedBlocksize - 1) / kNestedBlocksize));
    full_barrier(s.cmd);
    submit(s);
    r->last = s.submission;
    r->state = Record::State::Nesting;
  }
}

void Quantizer::fail_non_finite(const Record& r, uint32_t status) {
  // The shader found it (the weight's bytes may be gone by now): 2 * element + (1 if inf).
  const std::string message = "tensor " + r.name + " has a non-finite value (" +
                              (status & 1 ? "inf" : "NaN") + ") at element " +
                              std::to_string(status >> 1) + "; it cannot be quantized";
  release();  // the backend stays usable for another model
  fail(message);
}

void Quantizer::finish() {
  if (!started_) return;
  retire(false);
  release();
}

}  // namespace nibble::vk
