#include "engine/chat_template.h"

#include <nlohmann/json.hpp>

#include "engine/error.h"
#include "engine/jinja_ast.h"
#include "engine/jinja_render.h"
#include "engine/tokenizer_config.h"
#include "loader/json_text.h"

namespace nibble {
namespace {

// For folders whose tokenizer_config.json has no chat_template (base models).
constexpr const char* kPlainTemplate =
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}";

// chat_template is a string, or a list of {"name", "template"} of which "default" is the one.
std::string template_from_config(const nlohmann::json& config, const std::string& file) {
  if (!config.contains("chat_template") || config["chat_template"].is_null()) return "";
  const auto& t = config["chat_template"];
  if (t.is_string()) return t.get<std::string>();
  if (t.is_array())
    for (const auto& named : t)
      if (named.is_object() && named.value("name", "") == "default" && named.contains("template") &&
          named["template"].is_string())
        return named["template"].get<std::string>();
  fail(file + ": chat_template is neither a string nor a list holding a \"default\" template");
}

}  // namespace

struct ChatTemplate::Impl {
  jinja::Body body;
  std::string bos, eos;
};

ChatTemplate::ChatTemplate(std::string source, std::string bos_token, std::string eos_token)
    : impl_(std::make_unique<Impl>()) {
  impl_->body = jinja::parse_template(source);
  impl_->bos = std::move(bos_token);
  impl_->eos = std::move(eos_token);
}

ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

ChatTemplate ChatTemplate::from_folder(const std::filesystem::path& dir) {
  const auto config_path = dir / "tokenizer_config.json";
  nlohmann::json config = nlohmann::json::object();
  if (std::filesystem::exists(config_path)) {
    config =
        parse_json(read_text_file(config_path.string()), dir.string(), "tokenizer_config.json");
    if (!config.is_object()) fail(config_path.string() + ": not a JSON object");
  }
  // transformers 4.43+ may keep the template beside the config instead.
  const auto jinja_path = dir / "chat_template.jinja";
  std::string source = std::filesystem::exists(jinja_path)
                           ? read_text_file(jinja_path.string())
                           : template_from_config(config, config_path.string());
  if (source.empty()) source = kPlainTemplate;
  const std::string origin =
      std::filesystem::exists(jinja_path) ? jinja_path.string() : config_path.string();
  try {
    return ChatTemplate(std::move(source), config_token(config, "bos_token"),
                        config_token(config, "eos_token"));
  } catch (const Error& e) {
    fail(origin + ": " + e.what());
  }
}

std::string ChatTemplate::render(std::span<const ChatMessage> messages,
                                 bool add_generation_prompt) const {
  jinja::List list;
  for (const ChatMessage& m : messages) {
    auto d = std::make_shared<jinja::Dict>();
    d->set("role", jinja::Value(m.role));
    d->set("content", jinja::Value(m.content));
    list.emplace_back(d);
  }
  return jinja::render(impl_->body, {{"messages", jinja::Value(std::move(list))},
                                     {"add_generation_prompt", jinja::Value(add_generation_prompt)},
                                     {"bos_token", jinja::Value(impl_->bos)},
                                     {"eos_token", jinja::Value(impl_->eos)}});
}

}  // namespace nibble
