#include "app/chat/conversation.h"

#include <fstream>

#include "engine/error.h"

namespace nibble::chat {

std::vector<ChatMessage> Conversation::for_template() const {
  std::vector<ChatMessage> out;
  if (!system_prompt.empty()) out.push_back({"system", system_prompt});
  for (const Message& m : messages) out.push_back({m.role, m.content});
  return out;
}

nlohmann::json Conversation::to_json() const {
  nlohmann::json messages_json = nlohmann::json::array();
  for (const Message& m : messages) {
    nlohmann::json j = {{"role", m.role}, {"content", m.content}};
    if (m.stats)
      j["stats"] = {{"prompt_tokens", m.stats->prompt_tokens},
                    {"reused_tokens", m.stats->reused_tokens},
                    {"generated_tokens", m.stats->generated_tokens},
                    {"prompt_tokens_per_second", m.stats->prompt_tps},
                    {"generation_tokens_per_second", m.stats->generation_tps},
                    {"stop", m.stats->stop}};
    messages_json.push_back(std::move(j));
  }
  return {{"format", "nibble-chat conversation"},
          {"version", 1},
          {"model", model},
          {"system_prompt", system_prompt},
          {"messages", std::move(messages_json)}};
}

Conversation Conversation::from_json(const nlohmann::json& j, const std::string& origin) {
  auto bad = [&](const std::string& why) {
    fail(origin + ": not a nibble-chat conversation (" + why + ")");
  };
  if (!j.is_object()) bad("not a JSON object");
  if (!j.contains("messages") || !j["messages"].is_array()) bad("no \"messages\" array");
  Conversation c;
  c.system_prompt = j.value("system_prompt", "");
  c.model = j.value("model", "");
  for (const auto& m : j["messages"]) {
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
        !m["content"].is_string())
      bad("a message without a string role and content");
    Message msg{m["role"].get<std::string>(), m["content"].get<std::string>(), std::nullopt};
    if (msg.role != "user" && msg.role != "assistant") bad("unknown role \"" + msg.role + "\"");
    if (m.contains("stats") && m["stats"].is_object()) {
      const auto& s = m["stats"];
      msg.stats = AnswerStats{s.value("prompt_tokens", 0),
                              s.value("reused_tokens", 0),
                              s.value("generated_tokens", 0),
                              s.value("prompt_tokens_per_second", 0.0),
                              s.value("generation_tokens_per_second", 0.0),
                              s.value("stop", "")};
    }
    c.messages.push_back(std::move(msg));
  }
  return c;
}

void Conversation::save(const std::filesystem::path& path) const {
  std::ofstream out(path);
  if (!out) fail("cannot write " + path.string());
  out << to_json().dump(2) << "\n";
  if (!out) fail("cannot write " + path.string());
}

Conversation Conversation::load(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) fail("cannot read " + path.string());
  const auto j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) fail(path.string() + ": not valid JSON");
  return from_json(j, path.string());
}

}  // namespace nibble::chat
