// The generation loop: prefill, then sample and decode one token at a time, streaming text.
// Keeps the tokens in the KV cache between calls, so a chat reuses its common prefix.
#pragma once
#include <atomic>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "engine/model.h"
#include "engine/sampler.h"
#include "engine/tokenizer.h"

namespace nibble {

struct GenerationSettings {
  SamplerConfig sampling;
  int max_new_tokens = 128;
  std::vector<int> eos_ids;  // any of these ends the answer
  std::vector<std::string> stop_strings;
  // A prompt that does not fit the context: false is an error, true drops the oldest tokens
  // (after a leading BOS) to leave room for max_new_tokens.
  bool truncate_prompt = false;
};

enum class StopReason { Eos, StopString, MaxTokens, ContextFull, Cancelled };
std::string_view stop_reason_name(StopReason r);

struct GenerationStats {
  int prompt_tokens = 0;   // tokens actually run through prefill (the reused prefix excluded)
  int reused_tokens = 0;   // tokens whose KV cache was kept from the previous call
  int dropped_tokens = 0;  // oldest prompt tokens dropped by truncate_prompt
  double prompt_seconds = 0;
  int generated_tokens = 0;
  int decode_steps = 0;  // forward passes of one token (the first token comes from the prefill)
  double generation_seconds = 0;
  StopReason stop = StopReason::MaxTokens;
  double prompt_tps() const { return prompt_seconds > 0 ? prompt_tokens / prompt_seconds : 0; }
  double generation_tps() const {
    return generation_seconds > 0 ? decode_steps / generation_seconds : 0;
  }
};

class Generator {
 public:
  Generator(Model& model, const Tokenizer& tokenizer) : model_(model), tokenizer_(tokenizer) {}

  // Generates after `prompt` (the whole conversation so far, as ids). `on_text` receives text as
  // it becomes complete; `cancel` (may be null) stops between tokens.
  GenerationStats generate(std::span<const int> prompt, const GenerationSettings& settings,
                           const std::function<void(std::string_view)>& on_text,
                           const std::atomic<bool>* cancel = nullptr);

  const std::vector<int>& tokens() const { return cached_; }  // what the KV cache holds
  const std::vector<int>& last_output() const { return output_; }
  void reset() { cached_.clear(); }

 private:
  Model& model_;
  const Tokenizer& tokenizer_;
  std::vector<int> cached_;  // tokens whose keys/values are in the cache, in order
  std::vector<int> output_;
  std::vector<float> logits_;
};

}  // namespace nibble
