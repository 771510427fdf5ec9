#include "engine/generator.h"

#include <algorithm>
#include <chrono>

#include "engine/error.h"

namespace nibble {

std::string_view stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::Eos:
      return "eos";
    case StopReason::StopString:
      return "stop string";
    case StopReason::MaxTokens:
      return "max tokens";
    case StopReason::ContextFull:
      return "context full";
    case StopReason::Cancelled:
      return "cancelled";
  }
  return "?";
}

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Streams text but holds back any tail that could still become a stop string, so a stop string
// is never printed; returns true once one is complete.
class StopFilter {
 public:
  StopFilter(const std::vector<std::string>& stops,
             const std::function<void(std::string_view)>& out)
      : stops_(stops), out_(out) {}

  bool push(std::string_view text) {
    pending_ += text;
    for (const std::string& s : stops_) {
      const size_t at = s.empty() ? std::string::npos : pending_.find(s);
      if (at != std::string::npos) {
        emit(at);
        return true;
      }
    }
    size_t hold = 0;  // longest suffix of pending_ that is a proper prefix of a stop string
    for (const std::string& s : stops_)
      for (size_t n = std::min(s.size() - 1, pending_.size()); n > hold; --n)
        if (pending_.compare(pending_.size() - n, n, s, 0, n) == 0) {
          hold = n;
          break;
        }
    emit(pending_.size() - hold);
    return false;
  }
  void flush() { emit(pending_.size()); }

 private:
  void emit(size_t n) {
    if (n > 0 && out_) out_(std::string_view(pending_).substr(0, n));
    pending_.erase(0, n);
  }
  const std::vector<std::string>& stops_;
  const std::function<void(std::string_view)>& out_;
  std::string pending_;
};

}  // namespace

GenerationStats Generator::generate(std::span<const int> prompt, const GenerationSettings& settings,
                                    const std::function<void(std::string_view)>& on_text,
                                    const std::atomic<bool>* cancel) {
  if (prompt.empty()) fail("the prompt is empty (no tokens to start from)");
  GenerationStats stats;
  output_.clear();
  const int context = model_.context();
  std::vector<int> truncated;
  if (int(prompt.size()) >= context) {
    if (!settings.truncate_prompt)
      fail("the prompt has " + std::to_string(prompt.size()) + " tokens but the context holds " +
           std::to_string(context) + " (raise --ctx, shorten the prompt, or pass --truncate)");
    const int room = std::max(context / 2, context - std::max(1, settings.max_new_tokens));
    const bool bos = tokenizer_.bos_id() >= 0 && prompt.front() == tokenizer_.bos_id();
    truncated.assign(prompt.end() - (room - int(bos)), prompt.end());
    if (bos) truncated.insert(truncated.begin(), prompt.front());
    stats.dropped_tokens = int(prompt.size() - truncated.size());
    prompt = truncated;
  }

  // Reuse the cached prefix, but always run at least the last prompt token to get its logits.
  size_t keep = 0;
  while (keep < cached_.size() && keep + 1 < prompt.size() && cached_[keep] == prompt[keep]) ++keep;
  cached_.assign(prompt.begin(), prompt.end());
  stats.reused_tokens = int(keep);
  stats.prompt_tokens = int(prompt.size() - keep);

  // Tokens are picked on the device, greedily or sampled with the host's draws, unless the
  // repetition penalty needs the history or the device cannot sample: then the host samples
  // from the logits.
  Sampler sampler(settings.sampling);
  const SamplerConfig& sampling = settings.sampling;
  const bool on_device =
      sampling.repetition_penalty == 1.0f && (sampling.greedy() || model_.can_sample());
  auto how = [&] {
    return on_device && !sampling.greedy() ? DevicePick{&sampling, sampler.draw()} : DevicePick{};
  };
  auto next_token = [&] {
    if (on_device) return model_.pick();
    model_.logits(logits_);
    return sampler.sample(logits_, cached_);
  };

  auto t0 = Clock::now();
  model_.forward(prompt.subspan(keep), int(keep), false, how());
  int token = next_token();
  stats.prompt_seconds = seconds_since(t0);

  Tokenizer::Stream stream(tokenizer_);
  StopFilter filter(settings.stop_strings, on_text);
  t0 = Clock::now();
  stats.stop = StopReason::MaxTokens;
  bool queued = false;  // the step that runs `token` is queued already (forward_picked)
  for (int i = 0; i < settings.max_new_tokens; ++i) {
    if (std::find(settings.eos_ids.begin(), settings.eos_ids.end(), token) !=
        settings.eos_ids.end()) {
      stats.stop = StopReason::Eos;
      break;
    }
    output_.push_back(token);
    ++stats.generated_tokens;
    if (filter.push(stream.push(token))) {
      stats.stop = StopReason::StopString;
      break;
    }
    if (cancel && cancel->load()) {
      stats.stop = StopReason::Cancelled;
      break;
    }
    if (i + 1 == settings.max_new_tokens) break;
    if (int(cached_.size()) >= context) {
      stats.stop = StopReason::ContextFull;
      break;
    }
    if (!queued) model_.forward(std::span<const int>(&token, 1), int(cached_.size()), false, how());
    cached_.push_back(token);
    ++stats.decode_steps;
    // Picking on the device: queue the step after this one, on this one's pick, before waiting
    // for that pick, so the device never waits for the host between steps. It runs in vain
    // where the pick ends the answer (its keys and values lie past the cached tokens).
    queued = on_device && i + 2 < settings.max_new_tokens && int(cached_.size()) < context;
    if (queued) model_.forward_picked(int(cached_.size()), how());
    token = queued ? model_.pick(1) : next_token();
  }
  if (stats.stop != StopReason::StopString && !filter.push(stream.flush())) filter.flush();
  stats.generation_seconds = seconds_since(t0);
  return stats;
}

}  // namespace nibble
