// The flags every model-running command shares (-m, --backend, quantization, context, sampling)
// and loading with a progress bar.
#pragma once
#include <memory>

#include "app/nibble/args.h"
#include "engine/generator.h"
#include "engine/make_backend.h"
#include "loader/load_model.h"

namespace nibble::cli {

extern const char* const kModelFlagsHelp;
extern const char* const kSamplingFlagsHelp;

struct ModelRun {
  std::vector<std::unique_ptr<Backend>> backends;  // GPUs first; the CPU last when it holds layers
  LoadedModel loaded;
  bool stats = false;  // --stats: print per-layer time and memory after generating
};

// Parses the model flags, creates the backend and loads the model, drawing progress on stderr.
ModelRun load_from_flags(Args& args);

// Sampling flags over the model's generation_config defaults.
GenerationSettings generation_from_flags(Args& args, const GenerationDefaults& defaults);

}  // namespace nibble::cli
