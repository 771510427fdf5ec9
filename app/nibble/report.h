// What the CLI prints after generating: speed, per-layer GPU time, memory.
#pragma once
#include "engine/backend.h"
#include "engine/generator.h"

namespace nibble::cli {

void print_speed(const GenerationStats& s);
void print_layer_times(Backend& backend);
void print_memory(const Backend& backend);

}  // namespace nibble::cli
