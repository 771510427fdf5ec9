// The engine on its own thread: loading, generating and unloading run there, one job at a time,
// so the window never waits for the model. The UI thread sends requests and, once per frame,
// reads the status and takes the events (new answer text, finished answers, errors).
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "engine/generator.h"
#include "engine/make_backend.h"
#include "loader/load_model.h"

namespace nibble::chat {

struct LoadRequest {
  std::filesystem::path dir;
  BackendOptions backend;
  QuantConfig quant;
  int context = 0;  // 0: the model's, at most 4096
};

// The model in use, as the UI shows it.
struct ModelInfo {
  std::filesystem::path dir;
  std::string backend, device, quant;
  ModelConfig config;
  GenerationDefaults defaults;
  int context = 0;
  double load_seconds = 0;
};

enum class WorkerState { Empty, Loading, Ready, Generating };

struct WorkerStatus {
  WorkerState state = WorkerState::Empty;
  int load_done = 0, load_total = 0;  // tensors on the device
  std::string load_tensor;
  std::optional<ModelInfo> model;
  MemoryInfo memory;                  // refreshed while generating
  std::vector<LayerTime> step_times;  // of the last step
  int context_used = 0;               // tokens in the KV cache (of ModelInfo::context)
  int answer_tokens = 0;              // of the answer being written
  double answer_tps = 0;
};

// What happened since the last poll.
struct WorkerEvents {
  std::string text;                         // answer text that arrived
  std::optional<GenerationStats> finished;  // the answer is complete
  bool failed = false;                      // ... because of an error (in `errors`)
  std::vector<std::string> errors;
  bool loaded = false;  // a model finished loading
};

class Worker {
 public:
  Worker();
  ~Worker();  // stops an answer being written and waits for the thread
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void load(LoadRequest request);  // replaces the model in use
  void unload();
  // Renders `messages` with the model's chat template and writes the assistant's answer.
  void generate(std::vector<ChatMessage> messages, GenerationSettings settings);
  void stop();  // ends the answer being written after the current token, or abandons a load

  WorkerStatus status() const;
  WorkerEvents poll();

 private:
  void post(std::function<void()> job);
  void run();
  void run_load(const LoadRequest& request);
  void run_generate(const std::vector<ChatMessage>& messages, const GenerationSettings& settings);
  void run_unload();
  void publish_device_state();  // worker thread; between steps, while the backend is idle
  void report_error(const std::string& message);

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  bool quit_ = false;
  std::atomic<bool> cancel_{false};
  WorkerStatus status_;
  WorkerEvents events_;

  // Used on the worker thread only.
  std::unique_ptr<Backend> backend_;
  LoadedModel loaded_;
  std::unique_ptr<Generator> generator_;

  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace nibble::chat
