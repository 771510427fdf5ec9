// nibble quantize: a Hugging Face model folder in, a bitsandbytes 4-bit checkpoint out, in the
// exact layout transformers saves (so HF + bitsandbytes load it, and so do we, without
// re-quantizing).
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "app/nibble/command.h"
#include "app/nibble/progress.h"
#include "app/nibble/quant_flags.h"
#include "engine/cpu/cpu_backend.h"
#include "engine/error.h"
#include "engine/model.h"
#include "loader/bnb_checkpoint.h"
#include "loader/folder_weights.h"
#include "loader/model_folder.h"

namespace nibble::cli {
namespace {

namespace fs = std::filesystem;

// The weights the model asks for, in its order, as FolderWeights returns them (quantized or the
// mmapped originals). Building a Model over it is how we learn exactly which tensors a Llama
// needs, with which shapes, and which of them are the quantizable linear layers.
class RecordingWeights final : public WeightSource {
 public:
  explicit RecordingWeights(WeightSource& inner) : inner_(inner) {}
  bool has(const std::string& name) const override { return inner_.has(name); }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override {
    recorded.push_back(inner_.get(name, rows, cols, quantizable));
    return recorded.back();
  }
  std::vector<HostWeight> recorded;

 private:
  WeightSource& inner_;
};

// config.json with the quantization_config transformers writes for BitsAndBytesConfig.
std::string quantized_config_json(const ModelFolder& folder, const QuantConfig& q) {
  nlohmann::json config = nlohmann::json::parse(folder.config_json());
  config["quantization_config"] = bnb_quantization_config(q);
  return config.dump(2) + "\n";
}

// The folder's other files (tokenizer, generation config, chat template...), copied as they are.
void copy_side_files(const fs::path& from, const fs::path& to) {
  for (const auto& entry : fs::directory_iterator(from)) {
    const std::string name = entry.path().filename().string();
    const bool weights = entry.path().extension() == ".safetensors" ||
                         name == "model.safetensors.index.json" || name == "config.json";
    if (entry.is_regular_file() && !weights) fs::copy_file(entry.path(), to / name);
  }
}

void write_checkpoint(const ModelFolder& folder, const QuantConfig& q, const fs::path& out) {
  FolderWeights source(folder, q);
  RecordingWeights recorder(source);
  CpuBackend cpu(1);
  ModelOptions options;
  options.context = 1;
  options.max_batch = 1;
  options.on_progress = progress_callback("quantizing");
  Model model(cpu, folder.config(), recorder, options);

  std::vector<TensorToWrite> tensors;
  std::deque<std::string> json_storage;
  std::set<std::string> written;  // a tied output head may be asked for twice
  for (const HostWeight& w : recorder.recorded) {
    if (!written.insert(w.name).second) continue;
    if (w.quantized()) {
      for (TensorToWrite& t : bnb_tensors(w.name, w.data, *w.quant, json_storage.emplace_back()))
        tensors.push_back(std::move(t));
    } else {
      // Keep the stored shape ([n] stays [n]).
      tensors.push_back({w.name, w.dtype, folder.require(w.name).shape, w.data, w.nbytes});
    }
  }
  write_safetensors(out / "model.safetensors", tensors, {{"format", "pt"}});
  std::ofstream(out / "config.json") << quantized_config_json(folder, q);
  copy_side_files(folder.dir(), out);
}

int run_quantize(Args& args) {
  const auto model_dir = args.get({"-m", "--model"});
  const auto out_dir = args.get({"-o", "--output"});
  const QuantConfig q = quant_from_flags(args);
  args.finish();
  if (!model_dir || !out_dir) fail("quantize needs -m DIR and -o OUT (see nibble quantize --help)");
  if (!q.enabled) fail("--quant none leaves nothing to quantize; pick nf4 or fp4");
  const fs::path out = fs::path(*out_dir);
  if (fs::exists(out)) fail(out.string() + " already exists; choose a new output folder");

  const ModelFolder folder = ModelFolder::open(*model_dir);
  std::cerr << "nibble quantize: " << *model_dir << " -> " << out.string() << ", " << q.describe()
            << "\n";
  // Everything goes into a temporary sibling folder renamed at the end: a failure or an
  // interruption never leaves a half-written checkpoint under the requested name.
  const fs::path tmp = out.string() + ".partial-" + std::to_string(getpid());
  fs::create_directories(tmp);
  try {
    write_checkpoint(folder, q, tmp);
    fs::rename(tmp, out);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  std::cerr << "wrote " << out.string() << " ("
            << fs::file_size(out / "model.safetensors") / (1024.0 * 1024.0) << " MiB of weights)\n";
  return 0;
}

const RegisterCommand reg(
    {"quantize", "write a bitsandbytes 4-bit checkpoint of a model folder",
     std::string("usage: nibble quantize -m DIR -o OUT [options]\n\n"
                 "  -m, --model DIR        Hugging Face model folder\n"
                 "  -o, --output OUT       new folder for the 4-bit checkpoint\n") +
         kQuantFlagsHelp,
     run_quantize});

}  // namespace
}  // namespace nibble::cli
