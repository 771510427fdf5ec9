// One chat: the system prompt and the messages, with each answer's speed, saved as JSON.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/chat_template.h"

namespace nibble::chat {

// How an answer was made, shown under it.
struct AnswerStats {
  int prompt_tokens = 0, reused_tokens = 0, generated_tokens = 0;
  double prompt_tps = 0, generation_tps = 0;
  std::string stop;  // why it ended: "eos", "max tokens", "cancelled"...
};

struct Message {
  std::string role;  // "user" or "assistant"
  std::string content;
  std::optional<AnswerStats> stats;  // assistant messages the engine wrote
};

struct Conversation {
  std::string system_prompt;
  std::vector<Message> messages;
  std::string model;  // the folder it was held with, for the record

  // What the chat template renders: the system prompt (if any) and every message.
  std::vector<ChatMessage> for_template() const;

  nlohmann::json to_json() const;
  // Throws nibble::Error naming `origin` for anything that is not a conversation.
  static Conversation from_json(const nlohmann::json& j, const std::string& origin);
  void save(const std::filesystem::path& path) const;
  static Conversation load(const std::filesystem::path& path);
};

}  // namespace nibble::chat
