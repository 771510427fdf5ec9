// The architectures of well-known checkpoints, for random-weight benchmark models
// (`nibble make-checkpoint --shape NAME`) with no download.
#pragma once
#include <string>
#include <vector>

#include "engine/model_config.h"

namespace nibble {

std::vector<std::string> known_shapes();
// config of a known shape (llama-2-7b, llama-3-8b, mistral-7b, tinyllama-1.1b, llama-2-13b);
// an unknown name is an error listing the known ones.
ModelConfig shape_config(const std::string& name);
// config.json text for a config, as transformers writes it.
std::string config_json(const ModelConfig& c, const std::string& torch_dtype);

}  // namespace nibble
