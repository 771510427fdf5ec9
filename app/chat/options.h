// nibble-chat's command line: the model to open at start, and a scripted session for tests and
// demos (send prompts, print the answers, save a screenshot, exit).
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/chat/session.h"

namespace nibble::chat {

struct Options {
  ModelChoice model;                          // path empty: the bundled default
  std::optional<std::filesystem::path> open;  // a saved conversation to continue
  int width = 1360, height = 840;
  // Scripted session.
  std::vector<std::string> prompts;
  std::string system_prompt;
  std::optional<float> temperature;
  std::optional<int> max_new_tokens;
  std::optional<uint64_t> seed;
  bool regenerate = false;  // answer the last prompt a second time, as the Regenerate button does
  // After a failed answer: reload the model on this backend (as the Reload button does) and
  // answer the prompt again, once. Without it, an error ends the session.
  std::optional<std::string> reload_on_error;
  std::optional<std::filesystem::path> screenshot;
  std::optional<std::filesystem::path> save;  // the conversation, as JSON
  bool exit_after_answer = false;
  bool help = false;
};

extern const char* const kUsage;

// Throws nibble::Error for an unknown flag or a bad value.
Options parse_options(int argc, char** argv);

}  // namespace nibble::chat
