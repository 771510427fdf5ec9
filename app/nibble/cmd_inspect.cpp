// nibble inspect: what a model folder holds and how much memory each quantization setting needs.
#include <cstdio>
#include <iostream>
#include <set>

#include "app/nibble/command.h"
#include "app/nibble/quant_flags.h"
#include "engine/error.h"
#include "loader/load_model.h"
#include "loader/memory_estimate.h"
#include "loader/model_folder.h"

namespace nibble::cli {
namespace {

std::string human_bytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = double(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char text[64];
  std::snprintf(text, sizeof text, u ? "%.2f %s" : "%.0f %s", v, units[u]);
  return text;
}

std::string number(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

std::string id_list(const std::vector<int>& ids) {
  std::string out;
  for (int id : ids) out += (out.empty() ? "" : ", ") + std::to_string(id);
  return out.empty() ? "-" : out;
}

void row(const std::string& label, const std::string& value) {
  std::cout << "  " << label << std::string(label.size() < 22 ? 22 - label.size() : 1, ' ') << value
            << "\n";
}

int run_inspect(Args& args) {
  const std::optional<std::string> given = args.get({"-m", "--model"});
  ModelOptions options;
  options.context = args.get_int({"-c", "--ctx"}, 0);
  const QuantConfig quant = quant_from_flags(args);
  args.finish();
  const std::filesystem::path dir = given ? std::filesystem::path(*given) : default_model_dir();
  std::error_code ec;
  if (!given && !std::filesystem::exists(dir, ec))
    fail("no model folder given and the default " + dir.string() +
         " does not exist: pass one with -m DIR");
  const ModelFolder folder = ModelFolder::open(dir);
  const ModelConfig& c = folder.config();

  std::set<std::string> files;
  uint64_t stored_elements = 0;
  for (const TensorInfo* t : folder.tensors()) {
    files.insert(t->file);
    stored_elements += uint64_t(t->numel());
  }
  uint64_t parameters = 0;
  for (const WeightShape& w : model_weight_shapes(c)) parameters += uint64_t(w.rows * w.cols);
  uint64_t file_bytes = 0;
  for (const std::string& f : files) {
    std::error_code ec;
    file_bytes += std::filesystem::file_size(f, ec);
  }

  std::cout << folder.dir().string() << "\n";
  row("architecture", c.architecture);
  row("layers", std::to_string(c.num_hidden_layers));
  row("hidden size", std::to_string(c.hidden_size));
  row("intermediate size", std::to_string(c.intermediate_size));
  row("attention heads", std::to_string(c.num_attention_heads));
  row("key/value heads", std::to_string(c.num_key_value_heads));
  row("head dim", std::to_string(c.head_dim));
  row("vocabulary", std::to_string(c.vocab_size));
  row("context", std::to_string(c.max_position_embeddings));
  row("sliding window", c.sliding_window ? std::to_string(c.sliding_window) : "none");
  std::string rope = "theta " + number(c.rope_theta);
  if (c.rope_scaling)
    rope += ", " + c.rope_scaling->type + " scaling (factor " + number(c.rope_scaling->factor) +
            ", low/high freq factor " + number(c.rope_scaling->low_freq_factor) + "/" +
            number(c.rope_scaling->high_freq_factor) + ", original context " +
            std::to_string(c.rope_scaling->original_max_position_embeddings) + ")";
  row("rope", rope);
  row("rms norm eps", number(c.rms_norm_eps));
  row("tied embeddings", c.tie_word_embeddings ? "yes" : "no");
  row("dtype", c.torch_dtype);
  row("bos / eos ids", id_list(c.bos_token_ids) + " / " + id_list(c.eos_token_ids));
  row("parameters",
      std::to_string(parameters) + " (" + std::to_string(stored_elements) + " elements stored)");
  row("tensors", std::to_string(folder.tensors().size()) + " in " + std::to_string(files.size()) +
                     " file" + (files.size() == 1 ? "" : "s"));
  row("file size", human_bytes(file_bytes));

  QuantConfig none;
  none.enabled = false;
  std::cout << "weights memory by quantization (blocksize " << none.blocksize
            << "; embeddings, norms and lm_head stay 16-bit):\n";
  row("none (16-bit)", human_bytes(model_weight_bytes(c, none)));
  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (bool dq : {false, true}) {
      QuantConfig q;
      q.type = type;
      q.double_quant = dq;
      row(std::string(type == QuantType::NF4 ? "nf4" : "fp4") + (dq ? " + double quant" : ""),
          human_bytes(model_weight_bytes(c, q)));
    }
  // The plan load_model checks against the device before allocating (GPU: float16 KV cache).
  const ModelOptions resolved = Model::resolve(c, options);
  const MemoryPlan plan = plan_memory(folder, quant, resolved, DType::F16);
  std::cout << "memory plan on a GPU (" << quant.describe() << ", context " << resolved.context
            << ", prefill chunks of " << resolved.max_batch << "):\n";
  row("weights", human_bytes(plan.weights));
  row("KV cache", human_bytes(plan.kv_cache));
  row("activations", human_bytes(plan.activations));
  row("total", human_bytes(plan.total()));
  return 0;
}

const RegisterCommand reg(
    {"inspect", "show a model folder's architecture, size and memory needs",
     std::string("usage: nibble inspect [-m DIR] [-c N] [quantization flags]\n\n"
                 "  -m, --model DIR        Hugging Face model folder (default: models/kjv-tiny)\n"
                 "  -c, --ctx N            context of the memory plan (default: the model's, at "
                 "most 4096)\n") +
         kQuantFlagsHelp,
     run_inspect});

}  // namespace
}  // namespace nibble::cli
