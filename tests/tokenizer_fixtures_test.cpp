// Our tokenizers against Hugging Face `tokenizers` on real tokenizer.json files: the ids of a
// varied string set (with and without specials) and the decodes, byte for byte. Fixtures are
// made by tools/make_tokenizer_fixtures.py (and, for tokenize-llama2.json, on the H100 machine).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "engine/tokenizer.h"

namespace {

const std::string kDir = std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/tokenizers/";

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "missing fixture " << path);
  return nlohmann::json::parse(in);
}

const nibble::Tokenizer& tokenizer(const std::string& name) {
  static std::map<std::string, nibble::Tokenizer> cache;
  auto it = cache.find(name);
  if (it == cache.end())
    it = cache.emplace(name, nibble::Tokenizer::from_folder(kDir + name)).first;
  return it->second;
}

std::string stream_decode(const nibble::Tokenizer& tok, const std::vector<int>& ids,
                          bool skip_special) {
  nibble::Tokenizer::Stream stream(tok, skip_special);
  std::string out;
  for (int id : ids) out += stream.push(id);
  return out + stream.flush();
}

void check_cases(const std::string& name) {
  const nibble::Tokenizer& tok = tokenizer(name);
  const nlohmann::json fixture = load_json(kDir + "cases-" + name + ".json");
  for (const auto& c : fixture.at("cases")) {
    const std::string text = c.at("text");
    CAPTURE(text);
    const auto ids = c.at("ids").get<std::vector<int>>();
    CHECK(tok.encode(text, true) == ids);
    CHECK(tok.encode(text, false) == c.at("ids_no_special").get<std::vector<int>>());
    CHECK(tok.decode(ids, false) == c.at("decoded").get<std::string>());
    CHECK(tok.decode(ids, true) == c.at("decoded_skip_special").get<std::string>());
    CHECK(stream_decode(tok, ids, false) == c.at("decoded").get<std::string>());
    CHECK(stream_decode(tok, ids, true) == c.at("decoded_skip_special").get<std::string>());
  }
  for (const auto& d : fixture.at("decodes")) {
    const auto ids = d.at("ids").get<std::vector<int>>();
    CAPTURE(d.at("ids").dump());
    CHECK(tok.decode(ids, false) == d.at("decoded").get<std::string>());
    CHECK(tok.decode(ids, true) == d.at("decoded_skip_special").get<std::string>());
    // Random ids can end in a cut character, which the stream only returns on flush.
    CHECK(stream_decode(tok, ids, false) == d.at("decoded").get<std::string>());
  }
}

}  // namespace

TEST_CASE("tokenizer: llama2 (SentencePiece BPE, byte fallback) matches HF tokenizers") {
  check_cases("llama2");
}

TEST_CASE("tokenizer: SmolLM2 (byte-level BPE, digits split) matches HF tokenizers") {
  check_cases("smollm2");
}

TEST_CASE(
    "tokenizer: Llama-3-style (Llama 3 regex, byte-level, added-token options) matches HF "
    "tokenizers") {
  check_cases("llama3-kjv");
}

TEST_CASE("tokenizer: llama2 matches the ids made on the H100 machine (HF and sentencepiece)") {
  const nibble::Tokenizer& tok = tokenizer("llama2");
  const nlohmann::json fixture = load_json(kDir + "tokenize-llama2.json");
  for (const auto& c : fixture.at("cases")) {
    const std::string text = c.at("text");
    CAPTURE(text);
    CHECK(tok.encode(text) == c.at("ids").get<std::vector<int>>());
    CHECK(tok.decode(c.at("ids").get<std::vector<int>>(), true) ==
          c.at("decoded").get<std::string>());
  }
}

TEST_CASE("tokenizer: special token ids and config") {
  const nibble::Tokenizer& llama2 = tokenizer("llama2");
  CHECK(llama2.vocab_size() == 32000);
  CHECK(llama2.bos_id() == 1);
  CHECK(llama2.eos_id() == 2);
  CHECK(llama2.is_special(2));
  CHECK_FALSE(llama2.is_special(15043));
  CHECK(llama2.token_id("\xE2\x96\x81Hello") == 15043);
  CHECK(llama2.token_text(15043) == "\xE2\x96\x81Hello");
  CHECK(llama2.token_id("no such token") == -1);

  const nibble::Tokenizer& smol = tokenizer("smollm2");
  CHECK(smol.bos_id() == smol.token_id("<|im_start|>"));
  CHECK(smol.eos_id() == smol.token_id("<|im_end|>"));
  const nibble::Tokenizer& kjv = tokenizer("llama3-kjv");
  CHECK(kjv.eos_id() == kjv.token_id("<|eot_id|>"));  // {"content": ...} form in the config
  CHECK(kjv.encode("hi").front() == kjv.token_id("<|begin_of_text|>"));
}

TEST_CASE(
    "tokenizer: Metaspace, Whitespace, Split behaviors and more on patched tokenizers match HF") {
  const nlohmann::json fixture = load_json(kDir + "variants.json");
  for (const auto& [name, variant] : fixture.at("variants").items()) {
    CAPTURE(name);
    nlohmann::json spec =
        load_json(kDir + variant.at("base").get<std::string>() + "/tokenizer.json");
    for (const auto& [key, value] : variant.at("patch").items()) spec[key] = value;
    const auto tok = nibble::Tokenizer::from_json(spec.dump(), "", name);
    for (const auto& c : variant.at("cases")) {
      const std::string text = c.at("text");
      CAPTURE(text);
      const auto ids = c.at("ids").get<std::vector<int>>();
      CHECK(tok.encode(text) == ids);
      CHECK(tok.decode(ids) == c.at("decoded").get<std::string>());
      CHECK(stream_decode(tok, ids, false) == c.at("decoded").get<std::string>());
    }
  }
}
