// device_map="auto" for Nibble: which decoder layers run on which backend, decided from the memory
// plan before anything is allocated.
#pragma once
#include <string>
#include <vector>

#include "engine/model.h"
#include "loader/model_folder.h"
#include "loader/quant_config.h"

namespace nibble {

// Splits the layers over `backends`, in order. A backend without a device budget (the CPU) takes
// whatever the others cannot hold. With gpu_layers >= 0 the first backend takes exactly that many
// and the next ones the rest; otherwise (auto) the GPUs share the layers in proportion to their
// free memory when all fit, else each takes as many as fit. Fails, naming sizes, when no split
// fits.
std::vector<Stage> place_layers(const ModelFolder& folder, const QuantConfig& quant,
                                const ModelOptions& options, const std::vector<Backend*>& backends,
                                int gpu_layers = -1);

// "layers 0-11 on vulkan (NVIDIA ...), layers 12-31 on cpu (...)"
std::string describe_placement(const std::vector<Stage>& stages);

}  // namespace nibble
