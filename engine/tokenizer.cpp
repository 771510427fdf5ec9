// Tokenizer: the HF pipeline put together. Encode: added tokens → normalizer → added tokens
// marked "normalized" → pre-tokenizer → BPE → post-processor specials. Decode: entries → decoder.
#include "engine/tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <unordered_map>

#include "engine/error.h"
#include "engine/tokenizer_added.h"
#include "engine/tokenizer_bpe.h"
#include "engine/tokenizer_config.h"
#include "engine/tokenizer_decode.h"
#include "engine/tokenizer_normalize.h"
#include "engine/tokenizer_pretokenize.h"
#include "engine/tokenizer_unicode.h"
#include "loader/json_text.h"

namespace nibble {

using nlohmann::json;

struct Tokenizer::Impl {
  Impl(const json& spec, const std::string& file)
      : model(spec.at("model"), file),
        normalizer(spec.value("normalizer", json()), file),
        pre_tokenizer(spec.value("pre_tokenizer", json()), file),
        decoder(spec.value("decoder", json()), file) {}

  BpeModel model;
  Normalizer normalizer;
  PreTokenizer pre_tokenizer;
  Decoder decoder;
  std::unique_ptr<AddedTokenMatcher> raw_matcher, normalized_matcher;
  std::vector<std::string> id_to_token;  // the model's entries, then the added tokens'
  std::vector<bool> special;
  std::unordered_map<std::string, int> added_ids;
  std::vector<int> prefix, suffix;  // what the post-processor puts around the ids
  int bos = -1, eos = -1;

  int token_id(std::string_view token) const {
    auto it = added_ids.find(std::string(token));
    return it != added_ids.end() ? it->second : model.id_of(token);
  }
  void read_added_tokens(const json& list, const std::string& file);
  void read_post_processor(const json& spec, const std::string& file);
  void read_config(const json& config, const std::string& file);
};

void Tokenizer::Impl::read_added_tokens(const json& list, const std::string& file) {
  id_to_token = model.tokens();
  special.assign(id_to_token.size(), false);
  std::vector<AddedToken> raw, normalized;
  for (const json& entry : list) {
    AddedToken t{entry.at("content").get<std::string>(),
                 int(std::clamp<int64_t>(json_integer(entry.at("id"), file + ": added token id"),
                                         -1, INT32_MAX)),
                 entry.value("special", false),
                 entry.value("lstrip", false),
                 entry.value("rstrip", false),
                 entry.value("single_word", false),
                 entry.value("normalized", !entry.value("special", false))};
    if (t.id < 0 || size_t(t.id) >= model.tokens().size() + 2 * list.size() + 1024)
      fail(file + ": added token id " + std::to_string(t.id) + " out of range");
    if (size_t(t.id) >= id_to_token.size()) {
      id_to_token.resize(size_t(t.id) + 1);
      special.resize(size_t(t.id) + 1);
    }
    id_to_token[size_t(t.id)] = t.content;
    special[size_t(t.id)] = t.special;
    added_ids[t.content] = t.id;
    if (t.normalized) {
      normalizer.apply(t.content);  // HF matches these in normalized text, in their normalized form
      normalized.push_back(std::move(t));
    } else {
      raw.push_back(std::move(t));
    }
  }
  raw_matcher = std::make_unique<AddedTokenMatcher>(std::move(raw));
  normalized_matcher = std::make_unique<AddedTokenMatcher>(std::move(normalized));
}

void Tokenizer::Impl::read_post_processor(const json& spec, const std::string& file) {
  if (spec.is_null()) return;
  const std::string type = spec.at("type").get<std::string>();
  const auto id_of = [&](const std::string& token) {
    const int id = token_id(token);
    if (id < 0) fail(file + ": post_processor token '" + token + "' is not in the vocabulary");
    return id;
  };
  if (type == "Sequence") {
    for (const json& inner : spec.at("processors")) read_post_processor(inner, file);
  } else if (type == "TemplateProcessing") {
    // Each processor of a Sequence wraps what the previous one produced.
    std::vector<int> before, after;
    bool seen_sequence = false;
    for (const json& item : spec.at("single")) {
      if (item.contains("Sequence")) {
        seen_sequence = true;
        continue;
      }
      const std::string name = item.at("SpecialToken").at("id").get<std::string>();
      const json& ids = spec.at("special_tokens").at(name).at("ids");
      for (const json& id_json : ids) {
        const int id = int(std::clamp<int64_t>(json_integer(id_json, file + ": post_processor id"),
                                               -1, INT32_MAX));
        if (id < 0 || size_t(id) >= id_to_token.size())
          fail(file + ": post_processor id " + std::to_string(id) + " of '" + name +
               "' is outside the vocabulary");
        (seen_sequence ? after : before).push_back(id);
      }
    }
    prefix.insert(prefix.begin(), before.begin(), before.end());
    suffix.insert(suffix.end(), after.begin(), after.end());
  } else if (type == "BertProcessing" || type == "RobertaProcessing") {
    prefix.insert(prefix.begin(), id_of(spec.at("cls").at(0).get<std::string>()));
    suffix.push_back(id_of(spec.at("sep").at(0).get<std::string>()));
  } else if (type != "ByteLevel") {  // ByteLevel only trims offsets, which ids do not carry
    fail(file + ": post_processor '" + type +
         "' is not supported (supported: TemplateProcessing, ByteLevel, Bert/RobertaProcessing, "
         "Sequence)");
  }
}

void Tokenizer::Impl::read_config(const json& config, const std::string& file) {
  const auto lookup = [&](const char* key) {
    const std::string token = config_token(config, key);
    if (token.empty()) return -1;
    const int id = token_id(token);
    if (id < 0) fail(file + ": " + key + " '" + token + "' is not in the vocabulary");
    return id;
  };
  bos = lookup("bos_token");
  eos = lookup("eos_token");
  if (bos < 0 && prefix.size() == 1) bos = prefix[0];
  // transformers rebuilds the post-processor from add_bos_token / add_eos_token when given.
  if (config.contains("add_bos_token") && config["add_bos_token"].is_boolean()) {
    if (config["add_bos_token"].get<bool>() && bos < 0)
      fail(file + ": add_bos_token is set but there is no bos_token");
    prefix.clear();
    if (config["add_bos_token"].get<bool>()) prefix.push_back(bos);
  }
  if (config.contains("add_eos_token") && config["add_eos_token"].is_boolean()) {
    if (config["add_eos_token"].get<bool>() && eos < 0)
      fail(file + ": add_eos_token is set but there is no eos_token");
    suffix.clear();
    if (config["add_eos_token"].get<bool>()) suffix.push_back(eos);
  }
}

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_folder(const std::filesystem::path& dir) {
  const auto config_path = dir / "tokenizer_config.json";
  const std::string config =
      std::filesystem::exists(config_path) ? read_text_file(config_path.string()) : "";
  return from_json(read_text_file((dir / "tokenizer.json").string()), config, dir.string());
}

Tokenizer Tokenizer::from_json(std::string_view tokenizer_json, std::string_view tokenizer_config,
                               const std::string& origin) {
  const std::string file = origin + "/tokenizer.json";
  const std::string config_file = origin + "/tokenizer_config.json";
  std::unique_ptr<Impl> impl;
  std::string current = file;
  try {
    const json spec = parse_json(tokenizer_json, origin, "tokenizer.json");
    if (!spec.is_object() || !spec.contains("model")) fail(file + ": no \"model\" object");
    impl = std::make_unique<Impl>(spec, file);
    impl->read_added_tokens(spec.value("added_tokens", json::array()), file);
    impl->read_post_processor(spec.value("post_processor", json()), file);
    current = config_file;
    const json config = tokenizer_config.empty()
                            ? json::object()
                            : parse_json(tokenizer_config, origin, "tokenizer_config.json");
    if (!config.is_object()) fail(config_file + ": not a JSON object");
    impl->read_config(config, config_file);
  } catch (const json::exception& e) {  // a field of the wrong type or missing
    fail(current + ": unexpected content (" + e.what() + ")");
  }
  return Tokenizer(std::move(impl));
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special) const {
  const Impl& m = *impl_;
  std::vector<TextPiece> raw, pieces;
  m.raw_matcher->split({unicode::to_valid_utf8(text), -1, true}, raw);
  for (TextPiece& piece : raw) {
    if (piece.token_id < 0) m.normalizer.apply(piece.text);
    m.normalized_matcher->split(piece, pieces);
  }
  std::vector<int> ids;
  if (add_special) ids = m.prefix;
  for (const TextPiece& piece : pieces) {
    if (piece.token_id >= 0) {
      ids.push_back(piece.token_id);
      continue;
    }
    std::vector<PreToken> words{{piece.text, piece.at_start}};
    m.pre_tokenizer.apply(words);
    for (const PreToken& word : words) m.model.tokenize(word.text, ids);
  }
  if (add_special) ids.insert(ids.end(), m.suffix.begin(), m.suffix.end());
  return ids;
}

std::string Tokenizer::decode(std::span<const int> ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int id : ids) {
    if (id < 0 || id >= vocab_size()) continue;  // as HF: ids without an entry decode to nothing
    if (skip_special && impl_->special[size_t(id)]) continue;
    tokens.push_back(impl_->id_to_token[size_t(id)]);
  }
  return impl_->decoder.decode(std::move(tokens));
}

std::string Tokenizer::token_text(int id) const {
  if (id < 0 || id >= vocab_size())
    fail("token id " + std::to_string(id) + " is outside the vocabulary");
  return impl_->id_to_token[size_t(id)];
}

int Tokenizer::vocab_size() const {
  return int(impl_->id_to_token.size());
}
int Tokenizer::bos_id() const {
  return impl_->bos;
}
int Tokenizer::eos_id() const {
  return impl_->eos;
}
bool Tokenizer::is_special(int id) const {
  return id >= 0 && id < vocab_size() && impl_->special[size_t(id)];
}
int Tokenizer::token_id(std::string_view token) const {
  return impl_->token_id(token);
}

// HF's DecodeStream: decode a window holding the previously returned chunk (context, so that
// spaces and strips come out as in the full decode) plus the ids since; return the new text once
// it does not end in a cut character, and slide the window.
std::string Tokenizer::Stream::push(int id) {
  ids_.push_back(id);
  std::string text = tok_->decode(ids_, skip_special_);
  if (text.size() <= emitted_ || unicode::ends_with_replacement(text)) return {};
  std::string out = text.substr(emitted_);
  ids_.erase(ids_.begin(), ids_.begin() + std::ptrdiff_t(context_));
  context_ = ids_.size();
  emitted_ = tok_->decode(ids_, skip_special_).size();
  return out;
}

std::string Tokenizer::Stream::flush() {
  std::string text = tok_->decode(ids_, skip_special_);
  std::string out = text.size() > emitted_ ? text.substr(emitted_) : "";
  ids_.clear();
  context_ = emitted_ = 0;
  return out;
}

}  // namespace nibble
