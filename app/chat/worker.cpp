#include "app/chat/worker.h"

#include <chrono>
#include <new>
#include <utility>

#include "engine/vulkan/device_lost.h"

namespace nibble::chat {

namespace {
using Clock = std::chrono::steady_clock;
// Thrown from the progress callback to abandon a load; the backend, dropped after it, frees
// whatever was uploaded.
struct LoadCancelled {};
}  // namespace

Worker::Worker() : thread_([this] { run(); }) {}

Worker::~Worker() {
  {
    std::lock_guard lock(mutex_);
    quit_ = true;
    jobs_.clear();
  }
  cancel_ = true;
  wake_.notify_one();
  thread_.join();
}

void Worker::post(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void Worker::run() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return quit_ || !jobs_.empty(); });
      if (quit_) break;
      job = std::move(jobs_.front());
      jobs_.pop_front();
    }
    job();
  }
  // Free the model before the backend it lives on.
  generator_.reset();
  loaded_ = {};
  backend_.reset();
}

void Worker::load(LoadRequest request) {
  {
    std::lock_guard lock(mutex_);
    status_.state = WorkerState::Loading;
    status_.load_done = status_.load_total = 0;
    status_.load_tensor = "opening " + request.dir.string();
  }
  cancel_ = false;
  post([this, request = std::move(request)] { run_load(request); });
}

void Worker::unload() {
  post([this] { run_unload(); });
}

void Worker::generate(std::vector<ChatMessage> messages, GenerationSettings settings) {
  {
    std::lock_guard lock(mutex_);
    status_.state = WorkerState::Generating;
    status_.answer_tokens = 0;
    status_.answer_tps = 0;
  }
  cancel_ = false;
  post([this, messages = std::move(messages), settings = std::move(settings)] {
    run_generate(messages, settings);
  });
}

void Worker::stop() {
  cancel_ = true;
}

WorkerStatus Worker::status() const {
  std::lock_guard lock(mutex_);
  return status_;
}

WorkerEvents Worker::poll() {
  std::lock_guard lock(mutex_);
  return std::exchange(events_, {});
}

void Worker::report_error(const std::string& message) {
  std::lock_guard lock(mutex_);
  events_.errors.push_back(message);
}

void Worker::run_unload() {
  generator_.reset();
  loaded_ = {};
  backend_.reset();
  std::lock_guard lock(mutex_);
  status_ = {};
}

void Worker::run_load(const LoadRequest& request) {
  run_unload();
  {
    std::lock_guard lock(mutex_);
    status_.state = WorkerState::Loading;
    status_.load_tensor = "opening " + request.dir.string();
  }
  try {
    BackendOptions bo = request.backend;
    bo.profile = true;  // the per-layer chart needs it
    backend_ = make_backend(bo);
    ModelOptions mo;
    mo.context = request.context;
    mo.on_progress = [this](int done, int total, const std::string& name) {
      std::lock_guard lock(mutex_);
      status_.load_done = done;
      status_.load_total = total;
      status_.load_tensor = name;
      if (cancel_) throw LoadCancelled{};
    };
    loaded_ = load_model(request.dir, *backend_, request.quant, mo);
    generator_ = std::make_unique<Generator>(*loaded_.model, *loaded_.tokenizer);
    ModelInfo info{request.dir,
                   backend_->name(),
                   backend_->device_name(),
                   request.quant.enabled ? request.quant.describe() : "not quantized",
                   loaded_.folder->config(),
                   loaded_.defaults,
                   loaded_.model->context(),
                   loaded_.load_seconds};
    const MemoryInfo memory = backend_->memory();
    std::lock_guard lock(mutex_);
    status_.state = WorkerState::Ready;
    status_.model = std::move(info);
    status_.memory = memory;
    events_.loaded = true;
  } catch (const LoadCancelled&) {
    run_unload();
  } catch (const std::bad_alloc&) {
    run_unload();
    report_error("Cannot load " + request.dir.string() + ": out of memory");
  } catch (const std::exception& e) {
    run_unload();
    report_error("Cannot load " + request.dir.string() + ": " + e.what());
  }
}

void Worker::run_generate(const std::vector<ChatMessage>& messages,
                          const GenerationSettings& settings) {
  if (!generator_) {
    std::lock_guard lock(mutex_);
    events_.errors.push_back("No model is loaded");
    events_.finished = GenerationStats{};
    events_.failed = true;
    status_.state = WorkerState::Empty;
    return;
  }
  const auto start = Clock::now();
  auto last_publish = start;
  std::optional<Clock::time_point> first_token;
  try {
    const std::vector<int> prompt =
        loaded_.tokenizer->encode(loaded_.chat_template->render(messages, true), false);
    const GenerationStats stats = generator_->generate(
        prompt, settings,
        [&](std::string_view text) {
          const auto now = Clock::now();
          if (!first_token) first_token = now;
          const int tokens = int(generator_->last_output().size());
          const double seconds = std::chrono::duration<double>(now - *first_token).count();
          {
            std::lock_guard lock(mutex_);
            events_.text += text;
            status_.answer_tokens = tokens;
            if (seconds > 0) status_.answer_tps = (tokens - 1) / seconds;
          }
          // Reading the device's counters costs a little: ten times a second is plenty.
          if (now - last_publish > std::chrono::milliseconds(100)) {
            publish_device_state();
            last_publish = now;
          }
        },
        &cancel_);
    publish_device_state();
    std::lock_guard lock(mutex_);
    events_.finished = stats;
    status_.state = WorkerState::Ready;
  } catch (const DeviceLost& e) {
    // The model went with the device: free it, so that the panel offers Load (on the GPU again, or
    // on the CPU) rather than a model that can only fail.
    run_unload();
    std::lock_guard lock(mutex_);
    events_.errors.push_back(std::string("Generation failed: ") + e.what());
    events_.finished = GenerationStats{};
    events_.failed = true;
  } catch (const std::exception& e) {
    // The KV cache may hold part of a step: start the next answer from scratch.
    generator_->reset();
    std::lock_guard lock(mutex_);
    events_.errors.push_back(std::string("Generation failed: ") + e.what());
    events_.finished = GenerationStats{};
    events_.failed = true;
    status_.context_used = 0;
    status_.state = WorkerState::Ready;
  }
}

void Worker::publish_device_state() {
  const MemoryInfo memory = backend_->memory();
  std::vector<LayerTime> times = loaded_.model->step_times();
  std::lock_guard lock(mutex_);
  status_.memory = memory;
  status_.context_used = int(generator_->tokens().size());
  if (!times.empty()) status_.step_times = std::move(times);
}

}  // namespace nibble::chat
