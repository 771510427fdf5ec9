#include "app/nibble/report.h"

#include <cstdio>
#include <map>

namespace nibble::cli {

void print_speed(const GenerationStats& s) {
  if (s.dropped_tokens > 0)
    std::fprintf(stderr, "\nnote: the oldest %d prompt tokens were dropped to fit the context\n",
                 s.dropped_tokens);
  std::fprintf(stderr,
               "\nprompt: %d tokens, %.1f tok/s | generation: %d tokens, %.1f tok/s | stop: %.*s\n",
               s.prompt_tokens, s.prompt_tps(), s.generated_tokens, s.generation_tps(),
               int(stop_reason_name(s.stop).size()), stop_reason_name(s.stop).data());
}

void print_layer_times(Model& model) {
  std::map<int, std::pair<double, double>> layers;  // layer -> (attention ms, mlp ms)
  for (const LayerTime& t : model.step_times())
    (t.phase == Phase::Attention ? layers[t.layer].first : layers[t.layer].second) += t.ms;
  if (layers.empty()) {
    std::fprintf(stderr, "per-layer timing: none recorded\n");
    return;
  }
  std::fprintf(stderr, "per-layer time of the last step (ms):\n  layer  attention        mlp\n");
  double attn = 0, mlp = 0;
  for (const auto& [layer, t] : layers) {
    std::fprintf(stderr, "  %5d  %9.4f  %9.4f\n", layer, t.first, t.second);
    attn += t.first;
    mlp += t.second;
  }
  std::fprintf(stderr, "  total  %9.4f  %9.4f\n", attn, mlp);
}

void print_memory(const Model& model) {
  const double mib = 1024.0 * 1024.0;
  const Backend* previous = nullptr;
  for (const Stage& stage : model.stages()) {
    if (stage.backend == previous) continue;
    previous = stage.backend;
    const MemoryInfo m = stage.backend->memory();
    std::fprintf(
        stderr,
        "memory on %s: weights %.1f MiB, KV cache %.1f MiB, activations %.1f MiB, total %.1f MiB",
        stage.backend->name().c_str(), m.weights / mib, m.kv_cache / mib, m.activations / mib,
        m.total() / mib);
    if (m.device_budget)
      std::fprintf(stderr, " (device: %.1f of %.1f MiB used)", m.device_used / mib,
                   m.device_budget / mib);
    std::fprintf(stderr, "\n");
  }
}

void print_report(const GenerationStats& s, Model& model, bool stats) {
  print_speed(s);
  if (!stats) return;
  print_layer_times(model);
  print_memory(model);
}

}  // namespace nibble::cli
