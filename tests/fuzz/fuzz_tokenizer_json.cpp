// Fuzzes Tokenizer::from_json with the input as tokenizer.json: either nibble::Error, or a
// tokenizer whose encode gives ids inside its vocabulary and whose decode and stream run. (The
// stream equals the full decode for real decoder chains, which the fixture tests check; a
// contrived chain such as Strip(start=2) can tell the stream's window from the whole text, as
// with HF's DecodeStream, so that is not asserted here.)
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "engine/error.h"
#include "engine/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  try {
    const nibble::Tokenizer tok = nibble::Tokenizer::from_json(json, "", "fuzz");
    // Text that reaches added tokens, byte fallback, digits, whitespace runs and invalid UTF-8.
    for (std::string_view text :
         {std::string_view("Hello  world 123 <s>a</s> \xF0\x9F\xA4\x96\n\t"),
          std::string_view("\xE6\x97\xA5\xFF ab"), json.substr(0, 256)}) {
      const std::vector<int> ids = tok.encode(text);
      for (int id : ids)
        if (id < 0 || id >= tok.vocab_size()) std::abort();
      nibble::Tokenizer::Stream stream(tok);
      for (int id : ids) stream.push(id);
      stream.flush();
      tok.decode(ids, true);
      tok.decode(ids);
    }
  } catch (const nibble::Error&) {
  }
  return 0;
}
