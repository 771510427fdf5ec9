// FolderWeights (shape/dtype checks, quantize or pass through, skip modules), the bitsandbytes
// checkpoint round trip, and a quantized model's logits against the 16-bit ones.
#include <doctest/doctest.h>

#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>

#include "engine/cpu/cpu_backend.h"
#include "engine/model.h"
#include "loader/bnb_checkpoint.h"
#include "loader/folder_weights.h"
#include "loader/model_folder.h"
#include "loader/quantize.h"
#include "tests/loader_test_util.h"
#include "tests/random_model.h"

using namespace nibble;
using namespace nibble::test;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/loader/tiny-llama";

const std::vector<std::string> kLinear = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};

std::string linear_name(int layer, const std::string& module) {
  return "model.layers." + std::to_string(layer) + "." + module + ".weight";
}

// Rows and columns of a linear weight, as stored.
std::pair<int64_t, int64_t> stored_shape(const ModelFolder& f, const std::string& name) {
  const TensorInfo& t = f.require(name);
  return {t.shape[0], t.shape[1]};
}

bool same_state(const QuantState& a, const QuantState& b) {
  return a.type == b.type && a.blocksize == b.blocksize && a.dtype == b.dtype &&
         a.shape == b.shape && a.code == b.code && a.absmax == b.absmax && a.nested == b.nested &&
         a.absmax_q == b.absmax_q && a.nested_absmax == b.nested_absmax &&
         a.nested_code == b.nested_code && a.nested_blocksize == b.nested_blocksize &&
         std::memcmp(&a.offset, &b.offset, 4) == 0;
}

}  // namespace

TEST_CASE("FolderWeights: quantizes linear weights, passes the rest through from the mmap") {
  const ModelFolder folder = ModelFolder::open(kTiny);
  QuantConfig q;  // the seed's defaults
  FolderWeights weights(folder, q);
  const std::string up = linear_name(0, "mlp.up_proj");
  const HostWeight w = weights.get(up, 32, 16, true);
  CHECK(w.dtype == DType::NF4);
  CHECK(w.compute == ComputeDType::BF16);
  REQUIRE(w.quant);
  CHECK(w.quant->nested);
  CHECK(w.nbytes == 32 * 16 / 2);
  CHECK(w.owner);

  // Not quantizable: the stored bytes themselves, no copy; a vector [n] is [1, n].
  const HostWeight norm = weights.get("model.norm.weight", 1, 16, false);
  CHECK(norm.dtype == DType::BF16);
  CHECK(norm.data == folder.require("model.norm.weight").data);

  // skip_modules: a dotted part of the module path keeps it 16-bit.
  q.skip_modules = {"mlp"};
  FolderWeights skipping(folder, q);
  CHECK(skipping.get(up, 32, 16, true).dtype == DType::BF16);
  CHECK(skipping.get(linear_name(0, "self_attn.q_proj"), 16, 16, true).dtype == DType::NF4);
  q.skip_modules = {"up"};  // not a whole path component: no match
  FolderWeights partial(folder, q);
  CHECK(partial.get(up, 32, 16, true).dtype == DType::NF4);

  q.enabled = false;
  FolderWeights none(folder, q);
  CHECK(none.get(up, 32, 16, true).data == folder.require(up).data);
}

TEST_CASE("FolderWeights: clear errors for missing tensors, wrong shapes, wrong dtypes") {
  const ModelFolder folder = ModelFolder::open(kTiny);
  FolderWeights weights(folder, QuantConfig{});
  std::string msg =
      error_of([&] { weights.get("model.layers.9.mlp.up_proj.weight", 32, 16, true); });
  CHECK(msg.find("model.layers.9.mlp.up_proj.weight") != std::string::npos);
  CHECK(msg.find("tiny-llama") != std::string::npos);
  msg = error_of([&] { weights.get(linear_name(0, "mlp.up_proj"), 16, 32, true); });
  CHECK(msg.find("has shape [32, 16], config.json implies [16, 32]") != std::string::npos);
  CHECK(msg.find("model.safetensors") != std::string::npos);

  TempDir dir;
  fs::copy_file(kTiny + "/config.json", dir / "config.json");
  std::vector<TensorToWrite> tensors;
  for (const TensorInfo* t : folder.tensors())
    tensors.push_back({t->name, t->dtype, t->shape, t->data, t->nbytes});
  const std::vector<int32_t> ints(32 * 16, 1);
  for (auto& t : tensors)
    if (t.name == linear_name(1, "mlp.up_proj")) {
      t.dtype = DType::I32;
      t.data = ints.data();
      t.nbytes = ints.size() * 4;
    }
  write_safetensors(dir / "model.safetensors", tensors);
  const ModelFolder bad = ModelFolder::open(dir.path());
  FolderWeights bad_weights(bad, QuantConfig{});
  msg = error_of([&] { bad_weights.get(linear_name(1, "mlp.up_proj"), 32, 16, true); });
  CHECK(msg.find(linear_name(1, "mlp.up_proj")) != std::string::npos);
  CHECK(msg.find("I32") != std::string::npos);
}

TEST_CASE("bnb checkpoint: saved 4-bit weights load back bit-identical, not re-quantized") {
  const ModelFolder folder = ModelFolder::open(kTiny);
  for (bool dq : {true, false}) {
    CAPTURE(dq);
    QuantConfig q;
    q.double_quant = dq;
    q.blocksize = 128;
    FolderWeights weights(folder, q);
    std::vector<HostWeight> saved;
    std::vector<TensorToWrite> tensors;
    std::deque<std::string> json;
    for (const TensorInfo* t : folder.tensors()) {
      const bool linear = t->name.find("_proj") != std::string::npos;
      if (!linear) {
        tensors.push_back({t->name, t->dtype, t->shape, t->data, t->nbytes});
        continue;
      }
      saved.push_back(weights.get(t->name, t->shape[0], t->shape[1], true));
      for (auto& x :
           bnb_tensors(t->name, saved.back().data, *saved.back().quant, json.emplace_back()))
        tensors.push_back(x);
    }
    TempDir dir;
    fs::copy_file(kTiny + "/config.json", dir / "config.json");
    write_safetensors(dir / "model.safetensors", tensors);

    // Loading with another quantization config proves the stored codes are used as they are.
    const ModelFolder reopened = ModelFolder::open(dir.path());
    QuantConfig other;
    other.type = QuantType::FP4;
    FolderWeights loaded(reopened, other);
    for (const HostWeight& s : saved) {
      CAPTURE(s.name);
      const auto [rows, cols] = stored_shape(folder, s.name);
      const HostWeight l = loaded.get(s.name, rows, cols, true);
      CHECK(l.dtype == DType::NF4);
      REQUIRE(l.nbytes == s.nbytes);
      CHECK(std::memcmp(l.data, s.data, s.nbytes) == 0);
      CHECK(l.data == reopened.require(s.name).data);  // read from the mmap
      CHECK(same_state(*l.quant, *s.quant));
    }
  }
}

TEST_CASE("bnb checkpoint: damaged companions give errors naming the tensor") {
  const ModelFolder folder = ModelFolder::open(kTiny);
  FolderWeights weights(folder, QuantConfig{});
  const std::string up = linear_name(0, "mlp.up_proj");
  const HostWeight w = weights.get(up, 32, 16, true);
  std::string json;
  std::vector<TensorToWrite> tensors = bnb_tensors(up, w.data, *w.quant, json);
  const auto find_in = [](const std::shared_ptr<SafetensorsFile>& f) {
    return [f](const std::string& n) { return f->find(n); };
  };
  TempDir dir;
  SUBCASE("absmax missing") {
    tensors.erase(tensors.begin() + 1);
    write_safetensors(dir / "x.safetensors", tensors);
    const auto f = SafetensorsFile::open(dir / "x.safetensors");
    CHECK(error_of([&] { read_bnb_quant_state(find_in(f), up); }).find(up + ".absmax is missing") !=
          std::string::npos);
  }
  SUBCASE("packed size disagrees with the shape") {
    tensors[0].shape = {100, 1};
    tensors[0].nbytes = 100;
    write_safetensors(dir / "x.safetensors", tensors);
    const auto f = SafetensorsFile::open(dir / "x.safetensors");
    CHECK(error_of([&] { read_bnb_quant_state(find_in(f), up); }).find("holds 100 bytes") !=
          std::string::npos);
  }
  SUBCASE("quant state is not JSON") {
    const std::string junk = "{not json";
    tensors.back().data = junk.data();
    tensors.back().nbytes = junk.size();
    tensors.back().shape = {int64_t(junk.size())};
    write_safetensors(dir / "x.safetensors", tensors);
    const auto f = SafetensorsFile::open(dir / "x.safetensors");
    CHECK(error_of([&] { read_bnb_quant_state(find_in(f), up); }).find("valid JSON") !=
          std::string::npos);
  }
  SUBCASE("numbers out of range") {
    // Numbers that a C++ conversion would turn into undefined behaviour (found by fuzz_quant_state:
    // a blocksize of 6e18) or that would overflow the element count.
    const auto replaced = [&](const std::string& from, const std::string& to) {
      const size_t at = json.find(from);
      REQUIRE(at != std::string::npos);
      return json.substr(0, at) + to + json.substr(at + from.size());
    };
    const std::string blocksize = "\"blocksize\": " + std::to_string(w.quant->blocksize);
    const std::string shape = "\"shape\": [32, 16]";
    const std::pair<std::string, std::string> damaged[] = {
        {replaced(blocksize, "\"blocksize\": 6e18"), "blocksize must be an integer"},
        {replaced(blocksize, "\"blocksize\": 8589934592"), "blocksize is out of range"},
        {replaced(blocksize, "\"blocksize\": 63"), "invalid blocksize 63"},
        {replaced(shape, "\"shape\": [4294967296, 4294967296]"), "invalid shape"},
        {replaced(shape, "\"shape\": [32, 1.5e300]"), "shape entry must be an integer"},
        {replaced(shape, "\"shape\": []"), "shape must be a non-empty list"},
        {replaced("\"nested_offset\": ", "\"nested_offset\": 1e300, \"x\": "),
         "nested_offset is out of range"},
    };
    for (const auto& [text, message] : damaged) {
      CAPTURE(text);
      tensors.back().data = text.data();
      tensors.back().nbytes = text.size();
      tensors.back().shape = {int64_t(text.size())};
      write_safetensors(dir / "x.safetensors", tensors);
      const auto f = SafetensorsFile::open(dir / "x.safetensors");
      const std::string error = error_of([&] { read_bnb_quant_state(find_in(f), up); });
      CHECK(error.find(up) != std::string::npos);
      CHECK(error.find(message) != std::string::npos);
    }
  }
}

namespace {

// The random model's weights, with the decoder's linear layers quantized as `q` says.
class QuantizedRandomWeights final : public WeightSource {
 public:
  QuantizedRandomWeights(RandomWeights& inner, const QuantConfig& q) : inner_(inner), q_(q) {}
  bool has(const std::string& name) const override { return inner_.has(name); }
  HostWeight get(const std::string& name, int64_t rows, int64_t cols, bool quantizable) override {
    HostWeight w = inner_.get(name, rows, cols, quantizable);
    if (!quantizable) return w;
    auto q =
        std::make_shared<QuantizedWeight>(quantize_4bit(w, q_.type, q_.blocksize, q_.double_quant));
    w.dtype = q_.type == QuantType::NF4 ? DType::NF4 : DType::FP4;
    w.data = q->packed.data();
    w.nbytes = q->packed.size();
    w.compute = q_.compute;
    w.quant = std::shared_ptr<const QuantState>(q, &q->state);
    w.owner = std::move(q);
    return w;
  }

 private:
  RandomWeights& inner_;
  QuantConfig q_;
};

}  // namespace

TEST_CASE("quantized model: logits close to the 16-bit model's") {
  // A 2-layer random bf16 model (hidden 128, so blocks of 64 and 128 both fit), 12 tokens. The
  // 4-bit weights carry ~9% (NF4) / ~12% (FP4) relative error each; the logits' relative L2
  // error must stay below 0.2 for NF4 and 0.3 for FP4 (measured 0.14 and 0.19 for every compute
  // dtype), and must not be 0 (the weights really are 4-bit).
  const ModelConfig c = tiny_config(2, 128, 4, 2, 192, 101);
  const std::vector<int> tokens = {1, 5, 9, 33, 2, 70, 14, 99, 100, 3, 42, 7};
  RandomWeights base(42, DType::BF16);
  CpuBackend cpu16(2);
  Model m16(cpu16, c, base, {.all_logits = true});
  m16.forward(tokens, 0, true);
  const std::vector<float> ref = m16.logits();

  for (QuantType type : {QuantType::NF4, QuantType::FP4})
    for (ComputeDType compute : {ComputeDType::BF16, ComputeDType::F16, ComputeDType::F32}) {
      QuantConfig q;
      q.type = type;
      q.compute = compute;
      QuantizedRandomWeights weights(base, q);
      CpuBackend cpu(2);
      Model m4(cpu, c, weights, {.all_logits = true});
      m4.forward(tokens, 0, true);
      const double err = rel_error(m4.logits(), ref);
      MESSAGE(q.describe() << ": logits relative error " << err);
      CHECK(err > 1e-3);
      CHECK(err < (type == QuantType::NF4 ? 0.2 : 0.3));
    }
}

TEST_CASE("quantized model: the llama-gqa fixture folder, 4-bit at load time vs 16-bit") {
  // The seed's configuration on a real HF-written checkpoint (bf16, GQA): relative L2 error of
  // all logits below 0.2 (measured 0.13).
  const ModelFolder folder =
      ModelFolder::open(std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/models/llama-gqa");
  const std::vector<int> tokens = {1, 20, 40, 60, 80, 100, 7, 3};
  std::vector<float> logits[2];
  for (int quantized = 0; quantized < 2; ++quantized) {
    QuantConfig q;
    q.enabled = quantized == 1;
    FolderWeights weights(folder, q);
    CpuBackend cpu(2);
    Model m(cpu, folder.config(), weights, {.all_logits = true});
    m.forward(tokens, 0, true);
    logits[quantized] = m.logits();
  }
  const double err = rel_error(logits[1], logits[0]);
  MESSAGE("llama-gqa nf4 + dq logits relative error " << err);
  CHECK(err > 1e-4);
  CHECK(err < 0.2);
}
