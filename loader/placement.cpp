#include "loader/placement.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "loader/memory_estimate.h"

namespace nibble {

namespace {

struct Costs {
  uint64_t per_layer = 0;  // weights + KV cache of one decoder layer
  uint64_t embedding = 0;  // on the first stage
  uint64_t head = 0;       // final norm + output head, on the last stage
};

Costs costs_of(const ModelFolder& folder, const QuantConfig& quant, const ModelOptions& options,
               DType kv_dtype) {
  const ModelConfig& c = folder.config();
  const size_t element = dtype_size(folder.require("model.embed_tokens.weight").dtype);
  ModelConfig no_layers = c;
  no_layers.num_hidden_layers = 0;
  const uint64_t all = model_weight_bytes(c, quant, element);
  const uint64_t outside = model_weight_bytes(no_layers, quant, element);
  Costs k;
  k.per_layer = (all - outside) / uint64_t(std::max(1, c.num_hidden_layers)) +
                Model::runtime_memory(c, options, kv_dtype, 1).kv_cache;
  k.embedding = uint64_t(c.vocab_size) * uint64_t(c.hidden_size) * element;
  k.head = outside - k.embedding + (c.tie_word_embeddings ? k.embedding : 0);
  return k;
}

// Bytes a backend can still take; UINT64_MAX when it has no device budget.
uint64_t free_bytes(const Backend& b) {
  const MemoryInfo m = b.memory();
  if (m.device_budget == 0) return UINT64_MAX;
  return m.device_budget > m.device_used ? m.device_budget - m.device_used : 0;
}

std::string gib(uint64_t bytes) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f GiB", double(bytes) / double(1ull << 30));
  return text;
}

}  // namespace

std::vector<Stage> place_layers(const ModelFolder& folder, const QuantConfig& quant,
                                const ModelOptions& requested,
                                const std::vector<Backend*>& backends, int gpu_layers) {
  const ModelConfig& c = folder.config();
  const int total = c.num_hidden_layers;
  if (backends.empty()) fail("no backend to place the model on");
  const ModelOptions options = Model::resolve(c, requested);
  const size_t n = backends.size();

  // What each backend can hold in layers, after its share of the fixed costs.
  std::vector<int> capacity(n);
  for (size_t i = 0; i < n; ++i) {
    const Costs k = costs_of(folder, quant, options, backends[i]->kv_dtype());
    const uint64_t free = free_bytes(*backends[i]);
    if (free == UINT64_MAX) {
      capacity[i] = total;
      continue;
    }
    const uint64_t fixed =
        Model::runtime_memory(c, options, backends[i]->kv_dtype(), 0).activations +
        backends[i]->scratch_bytes(c, options.context, options.max_batch) +
        (i == 0 ? k.embedding : 0) + (i + 1 == n ? k.head : 0);
    capacity[i] =
        free > fixed ? int(std::min<uint64_t>(uint64_t(total), (free - fixed) / k.per_layer)) : -1;
    if (capacity[i] < 0 && (i == 0 || i + 1 == n))
      fail("the model in " + folder.dir().string() + " needs " + gib(fixed) + " on " +
           backends[i]->device_name() + " before any layer, which has " + gib(free) + " free");
    // Holding every layer makes it the last stage, which also holds the output head.
    if (i + 1 < n && capacity[i] == total && fixed + k.head + uint64_t(total) * k.per_layer > free)
      capacity[i] = total - 1;
    capacity[i] = std::max(0, capacity[i]);
  }

  std::vector<int> layers(n, 0);
  if (gpu_layers >= 0) {
    if (gpu_layers > total)
      fail("--gpu-layers " + std::to_string(gpu_layers) + ": the model has " +
           std::to_string(total) + " layers");
    if (n == 1 && gpu_layers != total)
      fail("--gpu-layers needs a CPU backend to run the other layers");
    layers[0] = gpu_layers;
    int left = total - gpu_layers;
    for (size_t i = 1; i < n; ++i) {
      layers[i] = i + 1 == n ? left : std::min(left, capacity[i]);
      left -= layers[i];
    }
  } else {
    long sum = 0;
    for (int cap : capacity) sum += cap;
    if (sum < total) {
      fail("the model in " + folder.dir().string() + " does not fit: " + std::to_string(total) +
           " layers of " +
           gib(costs_of(folder, quant, options, backends[0]->kv_dtype()).per_layer) +
           " each, room for " + std::to_string(sum) +
           " (try a shorter --ctx, 4-bit quantization, or a CPU backend for the rest)");
    }
    const bool unlimited_last = free_bytes(*backends.back()) == UINT64_MAX;
    const size_t gpus = unlimited_last ? n - 1 : n;
    long gpu_room = 0;
    for (size_t i = 0; i < gpus; ++i) gpu_room += capacity[i];
    int left = total;
    if (gpu_room >= total) {
      // Everything fits on the GPUs: share in proportion to what each can hold.
      for (size_t i = 0; i < gpus; ++i) {
        layers[i] =
            i + 1 == gpus
                ? left
                : std::min(left, int(std::lround(double(total) * capacity[i] / double(gpu_room))));
        left -= layers[i];
      }
    } else {
      for (size_t i = 0; i < n; ++i) {
        layers[i] = std::min(left, capacity[i]);
        left -= layers[i];
      }
    }
  }
  // Backends left without layers hold nothing: the embedding goes to the first stage, the
  // output head to the last.
  std::vector<Stage> stages;
  for (size_t i = 0; i < n; ++i)
    if (layers[i] > 0) stages.push_back({backends[i], layers[i]});
  return stages;
}

std::string describe_placement(const std::vector<Stage>& stages) {
  std::string out;
  int first = 0;
  for (const Stage& s : stages) {
    if (!out.empty()) out += ", ";
    out += s.layers == 0 ? "no layers"
           : s.layers == 1
               ? "layer " + std::to_string(first)
               : "layers " + std::to_string(first) + "-" + std::to_string(first + s.layers - 1);
    out += " on " + s.backend->name() + " (" + s.backend->device_name() + ")";
    first += s.layers;
  }
  return out;
}

}  // namespace nibble
