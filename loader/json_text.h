// JSON parsing for the loader's files (safetensors headers, config.json, the shard index): one
// place that turns nlohmann's parse errors into a nibble::Error naming the file.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace nibble {

// Parses `text`; a syntax error fails with "ORIGIN: WHAT is not valid JSON (line 1, column 5:
// ...)". `on_event` is nlohmann's parser callback (duplicate-key checks), may be null.
nlohmann::json parse_json(std::string_view text, const std::string& origin, const std::string& what,
                          const nlohmann::json::parser_callback_t& on_event = nullptr);

// An integer JSON value; anything else (a float, which nlohmann would convert with undefined
// behaviour when out of range, found by fuzz_tokenizer_json) fails naming `what`.
int64_t json_integer(const nlohmann::json& v, const std::string& what);

// A JSON number that a float holds (converting a larger double is undefined behaviour); anything
// else fails naming `what`.
float json_float(const nlohmann::json& v, const std::string& what);

// Reads a whole text file; errors name the file.
std::string read_text_file(const std::string& path);

}  // namespace nibble
