#include "engine/vulkan/vk_op_timer.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "engine/vulkan/vk_check.h"

namespace nibble::vk {

namespace {
constexpr uint32_t kMaxQueries = 8192;
}

OpTimer::OpTimer(const Context& ctx) : ctx_(ctx) {
  const char* on = std::getenv("NIBBLE_VK_OP_TIMES");
  if (!on || *on != '1' || !ctx.info.timestamps) return;
  VkQueryPoolCreateInfo ci{VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO};
  ci.queryType = VK_QUERY_TYPE_TIMESTAMP;
  ci.queryCount = kMaxQueries;
  check(vkCreateQueryPool(ctx.device, &ci, nullptr, &pool_), "vkCreateQueryPool");
}

OpTimer::~OpTimer() {
  if (!pool_) return;
  vkDestroyQueryPool(ctx_.device, pool_, nullptr);
  std::vector<std::pair<std::string, Total>> rows(totals_.begin(), totals_.end());
  std::sort(rows.begin(), rows.end(),
            [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
  double all = 0;
  for (const auto& r : rows) all += r.second.ms;
  std::fprintf(stderr, "vulkan op times over %ld steps (%.3f ms per step):\n", steps_,
               steps_ ? all / double(steps_) : 0.0);
  for (const auto& [label, t] : rows)
    std::fprintf(stderr, "  %-48s %8ld calls %10.3f ms %9.2f us/call\n", label.c_str(), t.calls,
                 t.ms, 1e3 * t.ms / double(t.calls));
}

void OpTimer::begin_step(StepCommands& step) {
  if (!pool_) return;
  labels_.clear();
  step.reset_queries(pool_, kMaxQueries);
  step.timestamp(pool_, 0);
}

void OpTimer::after(StepCommands& step, const std::string& label) {
  if (!pool_ || labels_.size() + 1 >= kMaxQueries) return;
  labels_.push_back(label);
  step.timestamp(pool_, uint32_t(labels_.size()));
}

void OpTimer::relabel_last(const std::string& label) {
  if (pool_ && !labels_.empty()) labels_.back() = label;
}

void OpTimer::collect() {
  if (!pool_ || labels_.empty()) return;
  std::vector<uint64_t> ticks(labels_.size() + 1);
  check(vkGetQueryPoolResults(ctx_.device, pool_, 0, uint32_t(ticks.size()), ticks.size() * 8,
                              ticks.data(), 8, VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT),
        "vkGetQueryPoolResults");
  for (size_t i = 0; i < labels_.size(); ++i) {
    Total& t = totals_[labels_[i]];
    t.ms += double(ticks[i + 1] - ticks[i]) * ctx_.info.timestamp_period_ns * 1e-6;
    ++t.calls;
  }
  ++steps_;
  labels_.clear();
}

}  // namespace nibble::vk
