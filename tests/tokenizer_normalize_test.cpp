// The Unicode normalizers (NFC, NFD, NFKC, NFKD, Lowercase, and Sequences of them) against Hugging
// Face `tokenizers`: the normalized text and the ids, on llama3-kjv's byte-level vocabulary with
// its normalizer replaced (tests/fixtures/tokenizers/normalizers.json, made by
// tools/make_tokenizer_fixtures.py).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "engine/tokenizer.h"
#include "engine/tokenizer_normalize.h"
#include "engine/tokenizer_unicode.h"
#include "engine/unicode_normalize.h"

namespace {

const std::string kDir = std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/tokenizers/";

nlohmann::json load_json(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in, "missing fixture " << path);
  return nlohmann::json::parse(in);
}

// Each variant's tokenizer: the base tokenizer.json with the variant's normalizer.
template <typename Check>
void for_each_variant(Check check) {
  const nlohmann::json fixture = load_json(kDir + "normalizers.json");
  const nlohmann::json base =
      load_json(kDir + fixture.at("base").get<std::string>() + "/tokenizer.json");
  for (const auto& [name, variant] : fixture.at("variants").items()) {
    CAPTURE(name);
    nlohmann::json spec = base;
    spec["normalizer"] = variant.at("normalizer");
    check(variant, nibble::Tokenizer::from_json(spec.dump(), "", name));
  }
}

}  // namespace

TEST_CASE("tokenizer: NFC/NFD/NFKC/NFKD/Lowercase normalizers give HF's text and ids") {
  for_each_variant([](const nlohmann::json& variant, const nibble::Tokenizer& tok) {
    const nibble::Normalizer normalizer(variant.at("normalizer"), "normalizers.json");
    REQUIRE(variant.at("cases").size() > 40);
    for (const auto& c : variant.at("cases")) {
      const std::string text = c.at("text");
      CAPTURE(text);
      std::string normalized = text;
      normalizer.apply(normalized);
      CHECK(normalized == c.at("normalized").get<std::string>());
      const auto ids = c.at("ids").get<std::vector<int>>();
      CHECK(tok.encode(text) == ids);
      CHECK(tok.decode(ids) == c.at("decoded").get<std::string>());
    }
  });
}

TEST_CASE("tokenizer: normalizers turn invalid UTF-8 into U+FFFD, as HF's lossy input does") {
  const std::string invalid = "a\xFF\xC3 e\xCC\x81\xE6\x97",
                    lossy = nibble::unicode::to_valid_utf8(invalid);
  REQUIRE(lossy == "a\uFFFD\uFFFD e\u0301\uFFFD");
  using nibble::unicode::NormalForm;
  CHECK(nibble::unicode::normalize(invalid, NormalForm::NFC) == "a\uFFFD\uFFFD \u00e9\uFFFD");
  CHECK(nibble::unicode::normalize(invalid, NormalForm::NFKD) == lossy);
  CHECK(nibble::unicode::lowercase("\xC3\x80\xFF") == "\u00e0\uFFFD");
  for_each_variant([&](const nlohmann::json&, const nibble::Tokenizer& tok) {
    CHECK(tok.encode(invalid) == tok.encode(lossy));
  });
}

TEST_CASE("tokenizer: normal forms are idempotent and related as Unicode defines, on random text") {
  // Random code points from blocks rich in decompositions (Latin, combining marks, Greek,
  // Hangul syllables and jamo, compatibility forms); the properties hold for any text.
  using nibble::unicode::NormalForm;
  using nibble::unicode::normalize;
  const std::vector<std::pair<char32_t, char32_t>> ranges = {
      {0x20, 0x7E},     {0xC0, 0x24F},    {0x300, 0x36F},   {0x370, 0x3FF},
      {0x1100, 0x11FF}, {0xAC00, 0xD7A3}, {0xFB00, 0xFB06}, {0xFF01, 0xFF5E}};
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    std::string text;
    const int length = int(rng() % 24);
    for (int k = 0; k < length; ++k) {
      const auto [lo, hi] = ranges[rng() % ranges.size()];
      nibble::unicode::append_utf8(text, char32_t(lo + rng() % (hi - lo + 1)));
    }
    CAPTURE(text);
    const std::string nfc = normalize(text, NormalForm::NFC),
                      nfd = normalize(text, NormalForm::NFD),
                      nfkc = normalize(text, NormalForm::NFKC),
                      nfkd = normalize(text, NormalForm::NFKD);
    CHECK(normalize(nfc, NormalForm::NFC) == nfc);
    CHECK(normalize(nfd, NormalForm::NFC) == nfc);
    CHECK(normalize(nfc, NormalForm::NFD) == nfd);
    CHECK(normalize(nfkd, NormalForm::NFKC) == nfkc);
    CHECK(normalize(nfc, NormalForm::NFKD) == nfkd);
    CHECK(nibble::unicode::lowercase(nibble::unicode::lowercase(text)) ==
          nibble::unicode::lowercase(text));
  }
}

TEST_CASE("tokenizer: Lowercase maps code point by code point, as Rust's char::to_lowercase") {
  using nibble::unicode::lowercase;
  CHECK(lowercase("HeLLo 123") == "hello 123");
  CHECK(lowercase("\u03a3\u0391\u03a3") == "\u03c3\u03b1\u03c3");  // no final sigma
  CHECK(lowercase("\u0130") == "i\u0307");                         // full mapping, 2 code points
  CHECK(lowercase("\u1e9e\u212a\u2126") == "\u00dfk\u03c9");
  CHECK(lowercase("\U00010400") == "\U00010428");  // outside the BMP (Deseret)
  CHECK(lowercase("") == "");
}
