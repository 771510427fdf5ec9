// nibble chat: an interactive terminal chat using the model's chat template. Ctrl-C stops the
// answer being written; at the prompt it (or Ctrl-D, or /exit) leaves.
#include <csignal>
#include <iostream>

#include "app/nibble/command.h"
#include "app/nibble/model_flags.h"
#include "app/nibble/quant_flags.h"
#include "app/nibble/report.h"

namespace nibble::cli {
namespace {

std::atomic<bool> g_generating{false};
std::atomic<bool> g_cancel{false};

void on_sigint(int) {
  if (g_generating) {
    g_cancel = true;
  } else {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
}

int run_chat(Args& args) {
  const std::string system = args.get_or({"--system"}, "");
  ModelRun run = load_from_flags(args);
  GenerationSettings settings = generation_from_flags(args, run.loaded.defaults);
  args.finish();
  LoadedModel& m = run.loaded;
  Generator generator(*m.model, *m.tokenizer);
  std::signal(SIGINT, on_sigint);

  std::vector<ChatMessage> messages;
  if (!system.empty()) messages.push_back({"system", system});
  std::cerr << "chat with " << m.folder->dir().string()
            << " — /reset starts over, /exit or Ctrl-D leaves, Ctrl-C stops an answer\n";
  std::string line;
  for (;;) {
    std::cout << "\n> " << std::flush;
    if (!std::getline(std::cin, line) || line == "/exit") break;
    if (line == "/reset") {
      messages.resize(system.empty() ? 0 : 1);
      generator.reset();
      std::cerr << "(new chat)\n";
      continue;
    }
    if (line.empty()) continue;
    messages.push_back({"user", line});
    const std::vector<int> ids =
        m.tokenizer->encode(m.chat_template->render(messages, true), false);
    std::string answer;
    g_cancel = false;
    g_generating = true;
    const GenerationStats s = generator.generate(
        ids, settings,
        [&](std::string_view text) {
          answer += text;
          std::cout << text << std::flush;
        },
        &g_cancel);
    g_generating = false;
    messages.push_back({"assistant", answer});
    std::cout << "\n";
    print_report(s, *m.model, run.stats);
  }
  return 0;
}

const RegisterCommand reg({"chat", "interactive chat in the terminal, using the chat template",
                           std::string("usage: nibble chat [-m DIR] [--system TEXT] [options]\n\n"
                                       "  --system TEXT          system prompt\n") +
                               kModelFlagsHelp + kSamplingFlagsHelp + kQuantFlagsHelp,
                           run_chat});

}  // namespace
}  // namespace nibble::cli
