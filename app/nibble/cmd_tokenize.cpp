// nibble tokenize: a folder's tokenizer on a text, as llama.cpp's llama-tokenize prints it. Needs
// only the tokenizer files, no weights.
#include <iostream>

#include "app/nibble/command.h"
#include "engine/error.h"
#include "engine/tokenizer.h"
#include "loader/json_text.h"
#include "loader/load_model.h"

namespace nibble::cli {
namespace {

// Control characters escaped so that each token stays on its line.
std::string printable(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c == 0x7F) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

int run_tokenize(Args& args) {
  const std::optional<std::string> model = args.get({"-m", "--model"});
  const std::optional<std::string> prompt = args.get({"-p", "--prompt"});
  const std::optional<std::string> file = args.get({"-f", "--file"});
  const bool ids_only = args.flag({"--ids"});
  const bool no_bos = args.flag({"--no-bos"});
  args.finish();
  if (prompt.has_value() == file.has_value())
    fail("give the text with exactly one of -p TEXT or -f FILE");
  const std::string text = prompt ? *prompt : read_text_file(*file);

  const Tokenizer tokenizer =
      Tokenizer::from_folder(model ? std::filesystem::path(*model) : default_model_dir());
  const std::vector<int> ids = tokenizer.encode(text, !no_bos);
  if (ids_only) {
    std::cout << "[";
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? ", " : "") << ids[i];
    std::cout << "]\n";
    return 0;
  }
  // Each token's text as it reads in context (leading spaces kept); a token that only starts a
  // multi-byte character shows its vocabulary entry.
  Tokenizer::Stream stream(tokenizer);
  for (int id : ids) {
    std::string piece = stream.push(id);
    if (piece.empty()) piece = tokenizer.token_text(id);
    std::cout << id << " -> '" << printable(piece) << "'\n";
  }
  return 0;
}

const RegisterCommand registered({
    "tokenize",
    "print the tokens of a text (tokenizer files only)",
    "usage: nibble tokenize [-m DIR] (-p TEXT | -f FILE) [--ids] [--no-bos]\n"
    "  -m, --model DIR   folder with tokenizer.json (+ tokenizer_config.json); default "
    "models/kjv-tiny\n"
    "  -p, --prompt TEXT the text to tokenize\n"
    "  -f, --file FILE   read the text from FILE\n"
    "  --ids             print only the ids, as [1, 15043, 3186]\n"
    "  --no-bos          do not add the special tokens (BOS) the tokenizer adds\n",
    run_tokenize,
});

}  // namespace
}  // namespace nibble::cli
