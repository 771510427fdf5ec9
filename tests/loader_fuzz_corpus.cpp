// Replays the loader fuzzers' seed corpora (which keep every input a fuzzer crashed on) through the
// parsers in the ordinary test build, so CI checks the regressions without clang or libFuzzer:
// each input must parse or fail with nibble::Error, nothing else.
#include <doctest/doctest.h>
#include <functional>

#include "loader/model_folder.h"
#include "loader/safetensors.h"
#include "tests/loader_test_util.h"

using namespace nibble;
using namespace nibble::test;
namespace fs = std::filesystem;

namespace {

// Runs `parse` on every file of tests/fuzz/corpus/TARGET; returns how many there were.
int replay(const std::string& target, const std::function<void(const std::string&)>& parse) {
  int n = 0;
  for (const auto& entry : fs::directory_iterator("tests/fuzz/corpus/" + target)) {
    CAPTURE(entry.path().string());
    const std::string bytes = read_file(entry.path());
    try {
      parse(bytes);
    } catch (const Error&) {
    }
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("fuzz corpora: every seed and past crash parses or fails with nibble::Error") {
  CHECK(replay("fuzz_safetensors", [](const std::string& b) {
          SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(b.data()), b.size(), "seed");
        }) >= 4);
  CHECK(replay("fuzz_safetensors_index",
               [](const std::string& b) { parse_safetensors_index(b, "seed"); }) >= 1);
  CHECK(replay("fuzz_model_config", [](const std::string& b) { parse_model_config(b, "seed"); }) >=
        6);
}
