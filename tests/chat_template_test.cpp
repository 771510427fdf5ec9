// Our Jinja renderer against Jinja2 set up as transformers' apply_chat_template, byte for byte,
// on the official templates of the common families and on a template exercising the supported
// subset (tests/fixtures/tokenizers/chat, made by tools/make_tokenizer_fixtures.py).
#include <doctest/doctest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/chat_template.h"
#include "engine/error.h"

namespace {

const std::string kDir = std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/tokenizers/";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE_MESSAGE(in, "missing fixture " << path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<nibble::ChatMessage> messages(const nlohmann::json& list) {
  std::vector<nibble::ChatMessage> out;
  for (const auto& m : list) out.push_back({m.at("role"), m.at("content")});
  return out;
}

std::string render(const std::string& source, const std::vector<nibble::ChatMessage>& msgs,
                   bool gen = false) {
  return nibble::ChatTemplate(source, "<s>", "</s>").render(msgs, gen);
}

std::string error_of(const std::string& source, const std::vector<nibble::ChatMessage>& msgs = {}) {
  try {
    render(source, msgs);
  } catch (const nibble::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("chat template: renders as Jinja2 does (official templates, all message sets)") {
  const nlohmann::json fixture = nlohmann::json::parse(read(kDir + "chat/cases.json"));
  const nlohmann::json& sets = fixture.at("messages");
  int rendered = 0, errors = 0;
  for (const auto& c : fixture.at("cases")) {
    const std::string file = c.at("template");
    const std::string set = c.at("messages");
    const bool gen = c.at("add_generation_prompt");
    CAPTURE(file);
    CAPTURE(set);
    CAPTURE(gen);
    const nibble::ChatTemplate tmpl(read(kDir + "chat/" + file), c.at("bos_token"),
                                    c.at("eos_token"));
    const auto msgs = messages(sets.at(set));
    if (c.contains("rendered")) {
      CHECK(tmpl.render(msgs, gen) == c.at("rendered").get<std::string>());
      ++rendered;
    } else {
      // Jinja2 failed (raise_exception, or a use of an undefined value): so must we, and a
      // template's own raise_exception message must come through unchanged.
      const std::string expected = c.at("error");
      std::string got = "(no error)";
      try {
        tmpl.render(msgs, gen);
      } catch (const nibble::Error& e) {
        got = e.what();
      }
      CHECK(got.find(expected) != std::string::npos);
      ++errors;
    }
  }
  CHECK(rendered > 80);
  CHECK(errors >= 8);
}

TEST_CASE("chat template: the H100-made Llama 2 chat render") {
  const nlohmann::json fixture = nlohmann::json::parse(read(kDir + "tokenize-llama2.json"));
  const auto tmpl = nibble::ChatTemplate::from_folder(kDir + "llama2");
  CHECK(tmpl.render(messages(fixture.at("chat_messages")), false) ==
        fixture.at("chat_rendered").get<std::string>());
}

TEST_CASE("chat template: from_folder reads tokenizer_config.json or chat_template.jinja") {
  const std::vector<nibble::ChatMessage> msgs = {{"user", "Hi"}};
  CHECK(nibble::ChatTemplate::from_folder(kDir + "smollm2").render(msgs, true) ==
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
        "Face<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  CHECK(nibble::ChatTemplate::from_folder(kDir + "llama3-kjv").render(msgs, false) ==
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
  // A folder without a template gets the plain fallback.
  CHECK(nibble::ChatTemplate::from_folder(kDir + "chat").render(msgs, true) ==
        "user: Hi\nassistant: ");
}

TEST_CASE("chat template: whitespace control and scoping details") {
  const std::vector<nibble::ChatMessage> two = {{"user", "a"}, {"assistant", "b"}};
  CHECK(render("  {% if true %}\n  x\n  {% endif %}\ny", {}) == "  x\ny");  // lstrip + trim blocks
  CHECK(render("a  {%- if true -%}  b  {%- endif -%}  c", {}) == "abc");
  CHECK(render("{{ 'x' }}\n{{- ' y' }}", {}) == "x y");
  CHECK(
      render("{% set x = 0 %}{% for m in messages %}{% set x = x + 1 %}{{ x }}{% endfor %}{{ x }}",
             two) == "110");
  CHECK(render("{% set ns = namespace(n=0) %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% "
               "endfor %}{{ ns.n }}",
               two) == "2");
  CHECK(render("{% for m in messages %}{{ loop.index }}{{ m.role[0] }}{% endfor %}", two) ==
        "1u2a");
  CHECK(render("{{ {'a': {'b': 1}}['a'] }}", {}) == "{'b': 1}");  // "}}" inside a dict literal
  CHECK(render("{{ \"\\u00e9\\n\" ~ 'it\\'s' }}", {}) == "\xC3\xA9\nit's");
  CHECK(render("line\n", {}) == "line");  // keep_trailing_newline=False
}

TEST_CASE("chat template: bad templates fail with a clear error naming the line") {
  CHECK(error_of("{% if x %}oops") ==
        "chat template line 1: missing '{% endif %}' (template ended)");
  CHECK(error_of("a\n{{ 1 + }}") == "chat template line 2: unexpected '}}' in expression");
  CHECK(error_of("{% for %}") == "chat template line 1: expected a name, got '%}'");
  CHECK(error_of("{{ x") == "chat template line 1: unclosed tag (missing '}}')");
  CHECK(error_of("{% macro m() %}{% endmacro %}") ==
        "chat template line 1: unknown or unsupported tag 'macro'");
  CHECK(error_of("{% break %}") == "chat template line 1: 'break' outside a loop");
  CHECK(error_of("\n\n{{ 'a' | nosuch }}") == "chat template line 3: unknown filter 'nosuch'");
  CHECK(error_of("{{ 'a' + 1 }}") ==
        "chat template line 1: unsupported operand type(s) for +: 'str' and 'int'");
  CHECK(error_of("{{ messages[0].role }}") == "chat template line 1: list object has no element 0");
  // A namespace holding itself (directly, in a list, or through another namespace) would be a
  // reference cycle (found by fuzz_chat_template as a leak).
  CHECK(error_of("{% set ns = namespace() %}{% set ns.me = ns %}") ==
        "chat template line 1: cannot assign namespace 'ns' into itself");
  CHECK(error_of("{% set a = namespace() %}{% set b = namespace(a=a) %}\n{% set a.l = [1, b] %}") ==
        "chat template line 2: cannot assign namespace 'a' into itself");
  CHECK(error_of("{{ raise_exception('Only user and assistant roles') }}") ==
        "Only user and assistant roles");
  CHECK(error_of("{{ 'x' * 100000000 }}").find("too large") != std::string::npos);
  // unit * times past 2^64 wraps; an empty unit repeated must not loop (fuzz_chat_template).
  CHECK(error_of("{{ ('x' * 200000) * 99999999999999 }}").find("too large") != std::string::npos);
  CHECK(error_of("{{ [1, 2] * 9223372036854775807 }}").find("too large") != std::string::npos);
  CHECK(render("{{ '' * 99999999999999 }}|{{ ([] * 99999999999999) | length }}", {}) == "|0");
  CHECK(render("{{ 'ab' * 3 }}{{ [1] * 2 }}{{ 'a' * -1 }}", {}) == "ababab[1, 1]");
  CHECK(error_of("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}")
            .find("nested too deeply") != std::string::npos);
}

TEST_CASE("chat template: numbers out of range read as Python reads them, never a crash") {
  CHECK(render("{{ 9E999 }}", {}) == "inf");  // float('9E999')
  CHECK(render("{{ 1e-999 }}", {}) == "0.0");
  // An attribute of digits past int64 finds nothing (Jinja2: undefined, rendered empty).
  CHECK(render("{{ messages.99999999999999999999 }}|", {{"user", "a"}}) == "|");
  CHECK(render("{{ messages.0.role }}", {{"user", "a"}}) == "user");
}
