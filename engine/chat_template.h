// `tokenizer_config.json`'s Jinja chat_template, rendered by a small interpreter of our own that
// covers what the common families' templates use (Llama 2/3, Mistral, ChatML/Qwen, Zephyr).
#pragma once
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace nibble {

struct ChatMessage {
  std::string role;  // "system", "user", "assistant"
  std::string content;
};

class ChatTemplate {
 public:
  // The template source plus the special-token strings templates refer to (bos_token, eos_token).
  ChatTemplate(std::string source, std::string bos_token, std::string eos_token);
  // Reads chat_template, bos_token and eos_token from DIR/tokenizer_config.json (or
  // DIR/chat_template.jinja); a folder without a template gets a plain "role: content" fallback.
  static ChatTemplate from_folder(const std::filesystem::path& dir);
  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  std::string render(std::span<const ChatMessage> messages, bool add_generation_prompt) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace nibble
