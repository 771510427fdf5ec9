// Fuzzes the chat-template interpreter with the input as the template source: it renders, or
// fails with nibble::Error (syntax, runtime mistakes, raise_exception, runaway templates).
#include <cstdint>
#include <string>

#include "engine/chat_template.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<nibble::ChatMessage> messages = {{"system", "Be brief."},
                                                            {"user", "Hi \xC3\xA9 there"},
                                                            {"assistant", "Hello!"},
                                                            {"user", "2+2?"}};
  try {
    const nibble::ChatTemplate tmpl(std::string(reinterpret_cast<const char*>(data), size), "<s>",
                                    "</s>");
    tmpl.render(messages, true);
    tmpl.render({}, false);
  } catch (const nibble::Error&) {
  }
  return 0;
}
