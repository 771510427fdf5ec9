#include "app/chat/session.h"

#include <chrono>

namespace nibble::chat {

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

constexpr size_t kSpeedHistory = 240;  // samples kept for the plot
constexpr double kSpeedSampleSeconds = 0.25;

}  // namespace

void Session::update() {
  WorkerEvents events = worker_.poll();
  status_ = worker_.status();
  for (std::string& e : events.errors) errors.push_back(std::move(e));
  if (events.loaded && status_.model) {
    // Start from the model's own generation_config.json, as `nibble generate` does.
    const GenerationDefaults& d = status_.model->defaults;
    generation.sampling = d.sampling;
    generation.eos_ids = d.eos_ids;
    if (d.max_new_tokens > 0) generation.max_new_tokens = d.max_new_tokens;
    conversation.model = status_.model->dir.string();
  }
  Message* answer =
      !conversation.messages.empty() && conversation.messages.back().role == "assistant"
          ? &conversation.messages.back()
          : nullptr;
  if (answer && !events.text.empty()) answer->content += events.text;
  if (generating()) sample_speed();
  if (events.finished) {
    ++answers_finished_;
    if (answer && events.failed && answer->content.empty()) {
      conversation.messages.pop_back();
    } else if (answer) {
      const GenerationStats& s = *events.finished;
      answer->stats = AnswerStats{
          s.prompt_tokens,    s.reused_tokens,
          s.generated_tokens, s.prompt_tps(),
          s.generation_tps(), events.failed ? "error" : std::string(stop_reason_name(s.stop))};
      // An answer faster than one sampling period still leaves its mark on the plot.
      if (!events.failed && s.decode_steps > 0) push_speed(float(s.generation_tps()));
    }
  }
}

void Session::sample_speed() {
  const double now = now_seconds();
  // A sample spans at least kSpeedSampleSeconds and at least one new token, so a slow device
  // plots its true rate rather than alternating between zero and a burst.
  if (now - last_sample_time_ < kSpeedSampleSeconds || status_.answer_tokens <= last_sample_tokens_)
    return;
  if (last_sample_time_ > 0)  // the first token only starts the clock: prefill is not decoding
    push_speed(float((status_.answer_tokens - last_sample_tokens_) / (now - last_sample_time_)));
  last_sample_time_ = now;
  last_sample_tokens_ = status_.answer_tokens;
}

void Session::push_speed(float tokens_per_second) {
  speed_history.push_back(tokens_per_second);
  if (speed_history.size() > kSpeedHistory) speed_history.pop_front();
}

void Session::load_model() {
  LoadRequest r;
  r.dir = model_choice.path;
  r.backend.name = model_choice.backend;
  // Run on the window's GPU where we can: one device holds the model and the frames drawn.
  if (model_choice.backend == "auto" || model_choice.backend == "vulkan")
    r.backend.device = engine_device_;
  r.quant = model_choice.quant;
  r.context = model_choice.context;
  worker_.load(std::move(r));
  status_ = worker_.status();
}

void Session::unload_model() {
  worker_.unload();
}

void Session::start_answer() {
  worker_.generate(conversation.for_template(), generation);
  conversation.messages.push_back({"assistant", "", std::nullopt});
  status_ = worker_.status();
  last_sample_time_ = 0;
  last_sample_tokens_ = 0;
}

void Session::send(const std::string& text) {
  if (!can_send() || text.empty()) return;
  conversation.messages.push_back({"user", text, std::nullopt});
  start_answer();
}

void Session::regenerate() {
  if (!can_send()) return;
  if (!conversation.messages.empty() && conversation.messages.back().role == "assistant")
    conversation.messages.pop_back();
  if (!conversation.messages.empty() && conversation.messages.back().role == "user") start_answer();
}

void Session::edit_and_resend(size_t index, const std::string& text) {
  if (!can_send() || index >= conversation.messages.size() ||
      conversation.messages[index].role != "user" || text.empty())
    return;
  conversation.messages[index].content = text;
  conversation.messages.resize(index + 1);
  start_answer();
}

void Session::new_chat() {
  if (generating()) return;
  conversation.messages.clear();
}

void Session::save(const std::filesystem::path& path) {
  try {
    conversation.save(path);
  } catch (const std::exception& e) {
    errors.push_back(e.what());
  }
}

void Session::open(const std::filesystem::path& path) {
  if (generating()) return;
  try {
    Conversation loaded = Conversation::load(path);
    if (model_ready()) loaded.model = status_.model->dir.string();
    conversation = std::move(loaded);
  } catch (const std::exception& e) {
    errors.push_back(e.what());
  }
}

}  // namespace nibble::chat
