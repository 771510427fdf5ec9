// What the CLI prints after generating: speed, per-layer GPU time, memory.
#pragma once
#include "engine/backend.h"
#include "engine/generator.h"
#include "engine/model.h"

namespace nibble::cli {

// The speed line after an answer and, with --stats, per-layer time and memory.
void print_report(const GenerationStats& s, Model& model, bool stats);
void print_speed(const GenerationStats& s);
void print_layer_times(Model& model);
void print_memory(const Model& model);  // per backend the model runs on

}  // namespace nibble::cli
