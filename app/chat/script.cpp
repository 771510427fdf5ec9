#include "app/chat/script.h"

#include <iostream>

namespace nibble::chat {

namespace {
// Frames drawn after the last answer before the screenshot, so that the layout (scrolling to
// the end, the final statistics) has settled.
constexpr int kSettleFrames = 3;
}  // namespace

void Script::send_next(Session& session) {
  // The flags win over the model's generation_config.json defaults.
  if (options_.temperature) session.generation.sampling.temperature = *options_.temperature;
  if (options_.seed) session.generation.sampling.seed = *options_.seed;
  if (options_.max_new_tokens) session.generation.max_new_tokens = *options_.max_new_tokens;
  answers_seen_ = session.answers_finished();
  session.send(options_.prompts[next_prompt_++]);
  step_ = Step::Answering;
}

bool Script::after_frame(Session& session, Renderer& renderer) {
  // Any error (a model that does not load, a failed answer) ends a scripted session.
  if (!session.errors.empty() && step_ != Step::Done) {
    for (const std::string& e : session.errors) std::cerr << "nibble-chat: error: " << e << "\n";
    exit_code_ = 2;
    return finish(session, renderer);
  }
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
    case Step::Answering:
      if (session.answers_finished() == answers_seen_) return false;
      std::cout << session.conversation.messages.back().content << std::endl;
      if (next_prompt_ < options_.prompts.size()) {
        send_next(session);
      } else if (options_.regenerate && !regenerated_) {
        regenerated_ = true;
        answers_seen_ = session.answers_finished();
        session.regenerate();
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
