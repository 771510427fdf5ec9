// nibble bench --kernels: the decode step's (or a prompt's) weight-reading kernels in isolation,
// each timed over many dependent calls inside one step (as the model issues them), so that the
// per-kernel bandwidth claimed in docs/PERF.md comes from device timestamps, not estimates.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "engine/make_backend.h"
#include "loader/quant_config.h"

namespace nibble::cli {

// Random-weight layers of the named shape (loader/model_shapes.h); `calls` per kernel, each
// multiplying `tokens` rows of x (1: decode; more: a prompt's products).
nlohmann::json bench_kernels(const BackendOptions& backend, const QuantConfig& quant,
                             const std::string& shape, int calls, int tokens);
void print_kernels(const nlohmann::json& j);

}  // namespace nibble::cli
