#include "app/chat/script.h"

#include <iostream>

namespace nibble::chat {

namespace {
// Frames drawn after the last answer before the screenshot, so that the layout (scrolling to
// the end, the final statistics) has settled.
constexpr int kSettleFrames = 3;
}  // namespace

void Script::apply_overrides(Session& session) const {
  // The flags win over the model's generation_config.json defaults (which every load restores).
  if (options_.temperature) session.generation.sampling.temperature = *options_.temperature;
  if (options_.seed) session.generation.sampling.seed = *options_.seed;
  if (options_.max_new_tokens) session.generation.max_new_tokens = *options_.max_new_tokens;
}

void Script::send_next(Session& session) {
  apply_overrides(session);
  answers_seen_ = session.answers_finished();
  session.send(options_.prompts[next_prompt_++]);
  step_ = Step::Answering;
}

// A new answer to the last user message, as the Regenerate button asks for.
void Script::answer_again(Session& session) {
  apply_overrides(session);
  answers_seen_ = session.answers_finished();
  session.regenerate();
  step_ = Step::Answering;
}

bool Script::survive_errors(Session& session) {
  if (session.errors.size() <= errors_reported_) {
    errors_reported_ = session.errors.size();
    return true;
  }
  for (size_t i = errors_reported_; i < session.errors.size(); ++i)
    std::cerr << "nibble-chat: error: " << session.errors[i] << "\n";
  errors_reported_ = session.errors.size();
  exit_code_ = 2;
  // Only a failed answer gets a second try, and only one: Reload (the banner stays up), then
  // answer the same prompt again.
  if (!options_.reload_on_error || reloaded_ || step_ != Step::Answering) return false;
  reloaded_ = true;
  session.model_choice.backend = *options_.reload_on_error;
  session.load_model();
  step_ = Step::Reloading;
  return true;
}

bool Script::after_frame(Session& session, Renderer& renderer) {
  if (step_ == Step::Done) return false;
  if (!survive_errors(session)) return finish(session, renderer);
  switch (step_) {
    case Step::WaitForModel:
      if (session.status().state == WorkerState::Ready) {
        if (next_prompt_ < options_.prompts.size())
          send_next(session);
        else
          step_ = Step::Settle;
      } else if (session.status().state == WorkerState::Empty && options_.exit_after_answer) {
        std::cerr << "nibble-chat: error: no model to load\n";
        exit_code_ = 2;
        return finish(session, renderer);
      }
      return false;
    case Step::Reloading:
      if (session.status().state == WorkerState::Ready) answer_again(session);
      return false;
    case Step::Answering:
      if (session.answers_finished() == answers_seen_) return false;
      std::cout << session.conversation.messages.back().content << std::endl;
      if (next_prompt_ < options_.prompts.size()) {
        send_next(session);
      } else if (options_.regenerate && !regenerated_) {
        regenerated_ = true;
        answer_again(session);
      } else {
        step_ = Step::Settle;
      }
      return false;
    case Step::Settle:
      if (++settle_frames_ < kSettleFrames) return false;
      return finish(session, renderer);
    case Step::Done:
      return false;
  }
  return false;
}

bool Script::finish(Session& session, Renderer& renderer) {
  step_ = Step::Done;
  if (options_.save && exit_code_ == 0) {
    session.save(*options_.save);
    for (const std::string& e : session.errors) std::cerr << "nibble-chat: error: " << e << "\n";
    if (!session.errors.empty()) exit_code_ = 2;
  }
  if (options_.screenshot) {
    try {
      renderer.save_png(*options_.screenshot);
      std::cerr << "nibble-chat: saved " << options_.screenshot->string() << "\n";
    } catch (const std::exception& e) {
      std::cerr << "nibble-chat: error: screenshot: " << e.what() << "\n";
      exit_code_ = 2;
    }
  }
  return options_.exit_after_answer;
}

}  // namespace nibble::chat
