// A scripted session, for the headless test and for demos: once the model is loaded, sends the
// prompts one turn at a time, prints each answer on stdout, then saves the conversation and a
// screenshot and exits. An error ends it, unless --reload-on-error gives a failed answer a second
// try on a freshly loaded model (the way out of a lost device).
// It drives the same Session actions as the buttons do.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/chat/options.h"
#include "app/chat/renderer.h"
#include "app/chat/session.h"

namespace nibble::chat {

class Script {
 public:
  explicit Script(const Options& options) : options_(options) {}
  // Called after each drawn frame; returns true when the app should exit.
  bool after_frame(Session& session, Renderer& renderer);
  int exit_code() const { return exit_code_; }

 private:
  enum class Step { WaitForModel, Reloading, Answering, Settle, Done };
  void apply_overrides(Session& session) const;
  void send_next(Session& session);
  void answer_again(Session& session);
  // Reports the errors that appeared since the last frame; returns true when the session goes on.
  bool survive_errors(Session& session);
  bool finish(Session& session, Renderer& renderer);

  const Options& options_;
  Step step_ = Step::WaitForModel;
  size_t next_prompt_ = 0;
  int answers_seen_ = 0;
  int settle_frames_ = 0;
  bool regenerated_ = false;
  size_t errors_reported_ = 0;
  bool reloaded_ = false;  // --reload-on-error was used (it is, once)
  int exit_code_ = 0;
};

}  // namespace nibble::chat
