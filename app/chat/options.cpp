#include "app/chat/options.h"

#include <charconv>

#include "app/chat/renderer.h"
#include "engine/error.h"

namespace nibble::chat {

const char* const kUsage =
    "usage: nibble-chat [options]\n\n"
    "A desktop chat with a local model, showing what the GPU does.\n\n"
    "  -m, --model DIR          model folder to load at start (default: the bundled "
    "models/kjv-tiny)\n"
    "  --backend NAME           auto (default), vulkan, cpu\n"
    "  --quant nf4|fp4|none     4-bit quantization at load time (default nf4)\n"
    "  --no-double-quant        do not quantize the absmax scales (default: --double-quant)\n"
    "  --compute-dtype T        bf16 (default), fp16, fp32\n"
    "  -c, --ctx N              context length in tokens (default: the model's, at most 4096)\n"
    "  --open FILE.json         continue a saved conversation\n"
    "  --size WxH               window size (default 1360x840)\n\n"
    "Scripted session (tests, demos):\n"
    "  -p, --prompt TEXT        send TEXT once the model is loaded (repeatable: one turn each);\n"
    "                           each answer is printed on stdout, followed by a newline\n"
    "  --system TEXT            system prompt\n"
    "  -n, --n-predict N        max new tokens per answer\n"
    "  --temp T                 temperature (0: greedy)\n"
    "  -s, --seed S             sampling seed\n"
    "  --regenerate             then regenerate the last answer (printed too)\n"
    "  --reload-on-error NAME   after a failed answer, reload the model on backend NAME\n"
    "                           (auto, vulkan, cpu) and answer the prompt again, once\n"
    "  --save FILE.json         save the conversation after the last answer\n"
    "  --screenshot FILE.png    save the window after the last answer\n"
    "  --exit-after-answer      quit after the last answer (and the screenshot)\n\n"
    "The scripted session exits with code 2 if the model does not load or an answer fails\n"
    "(even one answered again after --reload-on-error).\n";

namespace {

template <typename T>
T parse_number(const std::string& flag, const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc() || ptr != end) fail(flag + " expects a number, got '" + text + "'");
  return value;
}

}  // namespace

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) fail(flag + " needs a value");
      return argv[++i];
    };
    auto is = [&](const char* a, const char* b = nullptr) { return flag == a || (b && flag == b); };
    if (is("-h", "--help")) {
      o.help = true;
    } else if (is("-m", "--model")) {
      o.model.path = value();
    } else if (is("--backend")) {
      o.model.backend = value();
    } else if (is("--quant")) {
      const std::string q = value();
      if (q != "nf4" && q != "fp4" && q != "none")
        fail("--quant expects nf4, fp4 or none, got '" + q + "'");
      o.model.quant.enabled = q != "none";
      o.model.quant.type = q == "fp4" ? QuantType::FP4 : QuantType::NF4;
    } else if (is("--double-quant", "--no-double-quant")) {
      o.model.quant.double_quant = flag == "--double-quant";
    } else if (is("--compute-dtype")) {
      const std::string t = value();
      if (t == "bf16")
        o.model.quant.compute = ComputeDType::BF16;
      else if (t == "fp16")
        o.model.quant.compute = ComputeDType::F16;
      else if (t == "fp32")
        o.model.quant.compute = ComputeDType::F32;
      else
        fail("--compute-dtype expects bf16, fp16 or fp32, got '" + t + "'");
    } else if (is("-c", "--ctx")) {
      o.model.context = parse_number<int>(flag, value());
    } else if (is("--size")) {
      const std::string s = value();
      const size_t x = s.find('x');
      if (x == std::string::npos) fail("--size expects WxH, e.g. 1280x800");
      o.width = parse_number<int>(flag, s.substr(0, x));
      o.height = parse_number<int>(flag, s.substr(x + 1));
    } else if (is("-p", "--prompt")) {
      o.prompts.push_back(value());
    } else if (is("--system")) {
      o.system_prompt = value();
    } else if (is("-n", "--n-predict")) {
      o.max_new_tokens = parse_number<int>(flag, value());
    } else if (is("--temp")) {
      o.temperature = parse_number<float>(flag, value());
    } else if (is("-s", "--seed")) {
      o.seed = parse_number<uint64_t>(flag, value());
    } else if (is("--regenerate")) {
      o.regenerate = true;
    } else if (is("--reload-on-error")) {
      o.reload_on_error = value();
    } else if (is("--open")) {
      o.open = value();
    } else if (is("--save")) {
      o.save = value();
    } else if (is("--screenshot")) {
      o.screenshot = value();
    } else if (is("--exit-after-answer")) {
      o.exit_after_answer = true;
    } else {
      fail("unknown argument '" + flag + "' (see nibble-chat --help)");
    }
  }
  if (o.model.context < 0) fail("--ctx must be positive");
  if (o.width < Renderer::kMinWidth || o.height < Renderer::kMinHeight)
    fail("--size: the window must be at least " + std::to_string(Renderer::kMinWidth) + "x" +
         std::to_string(Renderer::kMinHeight));
  if (o.max_new_tokens && *o.max_new_tokens < 1) fail("-n must be at least 1");
  if (o.exit_after_answer && o.prompts.empty() && !o.screenshot && !o.save)
    fail("--exit-after-answer needs something to do: --prompt, --screenshot or --save");
  return o;
}

}  // namespace nibble::chat
