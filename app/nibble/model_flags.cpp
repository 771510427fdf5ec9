#include "app/nibble/model_flags.h"

#include <iostream>

#include "app/nibble/progress.h"
#include "app/nibble/quant_flags.h"
#include "engine/error.h"

namespace nibble::cli {

const char* const kModelFlagsHelp =
    "  -m, --model DIR        Hugging Face model folder (default: the bundled models/kjv-tiny)\n"
    "  --backend NAME         auto (default: Vulkan if a device works, else CPU), vulkan, cuda, "
    "cpu\n"
    "  --device N[,M...]      GPU index (see nibble devices); several split the layers\n"
    "  -ngl, --gpu-layers N   run the first N layers on the GPU, the rest on the CPU\n"
    "                         (default: as many as fit, by the memory plan)\n"
    "  -t, --threads N        CPU threads (default: all)\n"
    "  -c, --ctx N            context length in tokens (default: the model's, at most 4096)\n"
    "  --stats                per-layer GPU time and memory after generating\n";

const char* const kSamplingFlagsHelp =
    "  -n, --n-predict N      tokens to generate (default 128)\n"
    "  --temp T               temperature; 0 = greedy (default: generation_config.json, else 0)\n"
    "  --top-k K              keep the K most likely tokens (0 = off)\n"
    "  --top-p P              nucleus sampling (1 = off)\n"
    "  --min-p P              drop tokens below P x the top probability (0 = off)\n"
    "  --repeat-penalty R     HF repetition penalty (1 = off)\n"
    "  -s, --seed S           random seed (same seed, same text)\n"
    "  --stop TEXT            stop when TEXT appears (repeatable)\n"
    "  --ignore-eos           keep generating past end-of-sequence\n"
    "  --truncate             drop the oldest prompt tokens when the prompt exceeds the context\n";

ModelRun load_from_flags(Args& args) {
  const std::string dir = args.get_or({"-m", "--model"}, default_model_dir().string());
  BackendOptions bo;
  bo.name = args.get_or({"--backend"}, "auto");
  const std::string devices = args.get_or({"--device"}, "");
  bo.threads = args.get_int({"-t", "--threads"}, 0);
  bo.profile = args.flag({"--stats"});
  const int gpu_layers = args.get_int({"-ngl", "--gpu-layers"}, -1);
  ModelOptions mo;
  mo.context = args.get_int({"-c", "--ctx"}, 0);
  if (mo.context < 0) fail("--ctx must be positive");
  mo.on_progress = progress_callback("loading");
  const QuantConfig quant = quant_from_flags(args);

  ModelRun run;
  run.stats = bo.profile;
  std::vector<int> device_ids;
  for (size_t at = 0; at < devices.size();) {
    const size_t comma = std::min(devices.find(',', at), devices.size());
    const std::string id = devices.substr(at, comma - at);
    if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
      fail("--device expects GPU indices like 0 or 0,1; got '" + devices + "'");
    device_ids.push_back(std::stoi(id));
    at = comma + 1;
  }
  if (device_ids.empty()) device_ids.push_back(-1);
  for (int id : device_ids) {
    bo.device = id;
    run.backends.push_back(make_backend(bo));
    bo.name = run.backends.back()->name();  // "auto" resolved once for every device
  }
  // A GPU gets the CPU behind it for the layers it cannot hold.
  if (run.backends.back()->name() != "cpu") {
    BackendOptions cpu = bo;
    cpu.name = "cpu";
    run.backends.push_back(make_backend(cpu));
  }
  std::vector<Backend*> backends;
  for (auto& b : run.backends) backends.push_back(b.get());
  std::cerr << "nibble: " << dir << ", " << quant.describe() << "\n";
  run.loaded = load_model(dir, backends, quant, mo, gpu_layers);
  std::cerr << "nibble: " << run.loaded.placement << "\n";
  return run;
}

GenerationSettings generation_from_flags(Args& args, const GenerationDefaults& defaults) {
  GenerationSettings g;
  SamplerConfig& s = g.sampling;
  s = defaults.sampling;
  g.max_new_tokens = args.get_int({"-n", "--n-predict"},
                                  defaults.max_new_tokens > 0 ? defaults.max_new_tokens : 128);
  if (g.max_new_tokens < 0) fail("-n must be >= 0");
  s.temperature = args.get_float({"--temp"}, s.temperature);
  s.top_k = args.get_int({"--top-k"}, s.top_k);
  s.top_p = args.get_float({"--top-p"}, s.top_p);
  s.min_p = args.get_float({"--min-p"}, s.min_p);
  s.repetition_penalty = args.get_float({"--repeat-penalty"}, s.repetition_penalty);
  s.seed = uint64_t(args.get_int({"-s", "--seed"}, 0));
  while (auto stop = args.get({"--stop"})) g.stop_strings.push_back(*stop);
  if (!args.flag({"--ignore-eos"})) g.eos_ids = defaults.eos_ids;
  g.truncate_prompt = args.flag({"--truncate"});
  return g;
}

}  // namespace nibble::cli
