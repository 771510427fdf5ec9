// The chat's logic, apart from how it is drawn: the conversation, the model choice, the
// sampling settings, and the worker that runs the engine. Views call its actions; the headless
// script drives the same actions.
#pragma once
#include <deque>
#include <filesystem>
#include <string>
#include <vector>

#include "app/chat/conversation.h"
#include "app/chat/worker.h"

namespace nibble::chat {

// What the model panel edits before loading.
struct ModelChoice {
  std::string path;
  std::string backend = "auto";  // auto, or one of available_backends()
  QuantConfig quant;
  int context = 0;  // 0: the model's, at most 4096
};

class Session {
 public:
  // `engine_device`: the Vulkan device index the engine should use (-1: its best).
  explicit Session(int engine_device) : engine_device_(engine_device) {}

  void update();  // once per frame: takes in the worker's news

  // --- model ---
  void load_model();  // loads `model_choice` in the background
  void unload_model();
  void cancel_load() { worker_.stop(); }
  bool model_ready() const { return status_.model.has_value(); }

  // --- chat ---
  bool generating() const { return status_.state == WorkerState::Generating; }
  bool can_send() const { return status_.state == WorkerState::Ready; }
  void send(const std::string& text);
  void regenerate();  // a new answer to the last user message
  void edit_and_resend(size_t index, const std::string& text);  // drops what followed
  void stop() { worker_.stop(); }
  void new_chat();
  void save(const std::filesystem::path& path);
  void open(const std::filesystem::path& path);

  const WorkerStatus& status() const { return status_; }
  int answers_finished() const { return answers_finished_; }

  ModelChoice model_choice;
  GenerationSettings generation;  // sampling + max new tokens; eos ids come from the model
  Conversation conversation;
  std::vector<std::string> errors;  // shown until dismissed
  // Generation tokens/s, sampled while answering and once per finished answer.
  std::deque<float> speed_history;

 private:
  void start_answer();
  void sample_speed();
  void push_speed(float tokens_per_second);

  int engine_device_ = -1;
  Worker worker_;
  WorkerStatus status_;
  int answers_finished_ = 0;
  double last_sample_time_ = 0;
  int last_sample_tokens_ = 0;
};

}  // namespace nibble::chat
