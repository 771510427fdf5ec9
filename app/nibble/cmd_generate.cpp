// nibble generate: continue a prompt, streaming tokens as they are made.
#include <fstream>
#include <iostream>
#include <sstream>

#include "app/nibble/command.h"
#include "app/nibble/model_flags.h"
#include "app/nibble/quant_flags.h"
#include "app/nibble/report.h"
#include "engine/error.h"

namespace nibble::cli {
namespace {

int run_generate(Args& args) {
  std::string prompt = args.get_or({"-p", "--prompt"}, "");
  if (auto file = args.get({"-f", "--file"})) {
    std::ifstream in(*file);
    if (!in) fail("cannot read prompt file " + *file);
    std::stringstream text;
    text << in.rdbuf();
    prompt = text.str();
  }
  const bool no_bos = args.flag({"--no-bos"});
  const bool chat = args.flag({"--chat"});
  const std::string system = args.get_or({"--system"}, "");
  ModelRun run = load_from_flags(args);
  GenerationSettings settings = generation_from_flags(args, run.loaded.defaults);
  args.finish();

  LoadedModel& m = run.loaded;
  std::vector<int> ids;
  if (chat) {
    std::vector<ChatMessage> messages;
    if (!system.empty()) messages.push_back({"system", system});
    messages.push_back({"user", prompt});
    ids = m.tokenizer->encode(m.chat_template->render(messages, true), false);
  } else {
    ids = m.tokenizer->encode(prompt, !no_bos);
  }
  Generator generator(*m.model, *m.tokenizer);
  std::cout << prompt << std::flush;
  const GenerationStats s = generator.generate(
      ids, settings, [](std::string_view text) { std::cout << text << std::flush; });
  std::cout << "\n";
  print_report(s, *m.model, run.stats);
  return 0;
}

const RegisterCommand reg(
    {"generate", "continue a prompt, streaming tokens",
     std::string("usage: nibble generate [-m DIR] -p TEXT [options]\n\n"
                 "  -p, --prompt TEXT      the text to continue\n"
                 "  -f, --file FILE        read the prompt from FILE\n"
                 "  --chat                 wrap the prompt in the model's chat template\n"
                 "  --system TEXT          system prompt (with --chat)\n"
                 "  --no-bos               do not add the BOS token\n") +
         kModelFlagsHelp + kSamplingFlagsHelp + kQuantFlagsHelp,
     run_generate});

}  // namespace
}  // namespace nibble::cli
