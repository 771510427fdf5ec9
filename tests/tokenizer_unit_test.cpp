// Tokenizer behaviour the HF fixtures do not pin down: errors on malformed files, the
// tokenizer_config.json overrides, streaming of split characters, and long inputs.
#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <sstream>

#include "engine/error.h"
#include "engine/tokenizer.h"

namespace {

const std::string kLlama2 = std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/tokenizers/llama2";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string load_error(const std::string& tokenizer_json, const std::string& config = "") {
  try {
    nibble::Tokenizer::from_json(tokenizer_json, config, "models/x");
  } catch (const nibble::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// A minimal valid BPE tokenizer.json around the given extra top-level fields.
std::string tiny(const std::string& extra) {
  return R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b"]})" +
         extra + "}";
}

}  // namespace

TEST_CASE("tokenizer: malformed tokenizer.json gives one clear error naming the file") {
  CHECK(load_error(tiny("")) == "(no error)");
  CHECK(load_error("{\"model\": ").find("models/x: tokenizer.json is not valid JSON") == 0);
  CHECK(load_error("[]") == "models/x/tokenizer.json: no \"model\" object");
  CHECK(load_error(R"({"model": {"type": "Unigram", "vocab": []}})") ==
        "models/x/tokenizer.json: model type 'Unigram' is not supported (only BPE)");
  CHECK(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}})") ==
        "models/x/tokenizer.json: merge 'a b' uses a token missing from the vocab");
  CHECK(load_error(R"({"model": {"type": "BPE", "vocab": {"a": "zero"}, "merges": []}})") ==
        "models/x/tokenizer.json: vocab id of 'a' must be an integer (it is \"zero\")");
  // A float id: nlohmann would convert 5.6e52 to an integer with undefined behaviour (found by
  // fuzz_tokenizer_json in CI).
  CHECK(load_error(R"({"model": {"type": "BPE", "vocab": {"a": 5.6e52}, "merges": []}})") ==
        "models/x/tokenizer.json: vocab id of 'a' must be an integer (it is 5.6e+52)");
  CHECK(load_error(tiny(R"(, "normalizer": {"type": "Precompiled"})"))
            .find("normalizer 'Precompiled' is not supported") != std::string::npos);
  CHECK(
      load_error(
          tiny(
              R"(, "pre_tokenizer": {"type": "Split", "pattern": {"Regex": "(a"}, "behavior": "Isolated"})"))
          .starts_with("models/x/tokenizer.json: bad regex '(a'"));
  CHECK(load_error(tiny(R"(, "decoder": {"type": "WordPiece"})"))
            .find("decoder 'WordPiece' is not supported") != std::string::npos);
  CHECK(load_error(tiny(""), "{oops").find("models/x: tokenizer_config.json is not valid JSON") ==
        0);
  CHECK(load_error(tiny(""), R"({"bos_token": "<s>"})") ==
        "models/x/tokenizer_config.json: bos_token '<s>' is not in the vocabulary");
  CHECK(load_error(tiny(""), R"({"add_bos_token": true})") ==
        "models/x/tokenizer_config.json: add_bos_token is set but there is no bos_token");
  try {
    nibble::Tokenizer::from_folder("/nonexistent-folder");
    FAIL("no error");
  } catch (const nibble::Error& e) {
    CHECK(std::string(e.what()).find("/nonexistent-folder/tokenizer.json") != std::string::npos);
  }
}

TEST_CASE(
    "tokenizer: tokenizer_config.json add_bos_token / add_eos_token override the post-processor") {
  const std::string spec = read(kLlama2 + "/tokenizer.json");
  const auto with = [&](const std::string& config) {
    return nibble::Tokenizer::from_json(spec, config, kLlama2);
  };
  CHECK(with("").encode("Hello world") == std::vector<int>{1, 15043, 3186});
  CHECK(with(R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "add_bos_token": false})")
            .encode("Hello world") == std::vector<int>{15043, 3186});
  CHECK(with(R"({"bos_token": "<s>", "eos_token": "</s>", "add_eos_token": true})")
            .encode("Hello world") == std::vector<int>{1, 15043, 3186, 2});
  CHECK(with(R"({"eos_token": "</s>", "add_eos_token": true})").encode("Hello world", false) ==
        std::vector<int>{15043, 3186});
}

TEST_CASE("tokenizer: the stream returns a character split over byte tokens once, whole") {
  const auto tok = nibble::Tokenizer::from_folder(kLlama2);
  const std::vector<int> ids =
      tok.encode("a🤖b", false);  // 🤖 is not in the vocabulary: 4 byte tokens
  REQUIRE(ids.size() == 6);
  CHECK(tok.token_text(ids[1]) == "<0xF0>");
  nibble::Tokenizer::Stream stream(tok);
  std::vector<std::string> pieces;
  for (int id : ids) pieces.push_back(stream.push(id));
  CHECK(pieces == std::vector<std::string>{"a", "", "", "", "\xF0\x9F\xA4\x96", "b"});
  CHECK(stream.flush().empty());

  // A cut character left at the end comes out on flush, replaced.
  nibble::Tokenizer::Stream cut(tok);
  CHECK(cut.push(ids[0]) == "a");
  CHECK(cut.push(ids[1]).empty());
  CHECK(cut.flush() == "\xEF\xBF\xBD");
}

TEST_CASE("tokenizer: long inputs encode and stream-decode in linear-ish time") {
  const auto tok = nibble::Tokenizer::from_folder(kLlama2);
  std::string text;
  for (int i = 0; text.size() < 200'000; ++i)
    text += "In the beginning " + std::to_string(i) + " était 日本 🤖\n";
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> ids = tok.encode(text);  // Llama 2 has no pre-tokenizer: one 200 kB word
  nibble::Tokenizer::Stream stream(tok, true);
  std::string streamed;
  for (int id : ids) streamed += stream.push(id);
  streamed += stream.flush();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK(ids.size() > 50'000);
  CHECK(streamed == text);
  CHECK(tok.decode(ids, true) == text);
  CHECK(seconds < 10.0);  // quadratic merging or re-decoding would take minutes
  MESSAGE("encode + stream of " << ids.size() << " tokens: " << seconds << " s");
}
