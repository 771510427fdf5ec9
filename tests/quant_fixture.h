// The bitsandbytes reference vectors in tests/fixtures/bnb (see its README): one case per file,
// listed with its parameters in index.json.
#pragma once
#include <nlohmann/json.hpp>

#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "engine/quant.h"
#include "engine/weights.h"
#include "loader/safetensors.h"

namespace nibble::test {

inline std::string bnb_fixture_dir() {
  return std::string(NIBBLE_SOURCE_DIR) + "/tests/fixtures/bnb";
}

inline const nlohmann::json& bnb_index() {
  static const nlohmann::json index = [] {
    std::ifstream in(bnb_fixture_dir() + "/index.json");
    return nlohmann::json::parse(in);
  }();
  return index;
}

struct BnbCase {
  nlohmann::json meta;  // name, quant_type, double_quant, blocksize, dtype, shape, state
  std::shared_ptr<SafetensorsFile> file;

  std::string name() const { return meta["name"]; }
  QuantType type() const { return meta["quant_type"] == "nf4" ? QuantType::NF4 : QuantType::FP4; }
  bool double_quant() const { return meta["double_quant"]; }
  int blocksize() const { return meta["blocksize"]; }
  const TensorInfo& tensor(const std::string& tensor_name) const {
    const TensorInfo* t = file->find(tensor_name);
    if (!t) throw std::runtime_error(name() + ": fixture has no tensor " + tensor_name);
    return *t;
  }
  // A 2-D tensor of the fixture as a HostWeight view.
  HostWeight weight(const std::string& tensor_name) const {
    const TensorInfo& t = tensor(tensor_name);
    HostWeight w;
    w.name = name() + "/" + tensor_name;
    w.dtype = t.dtype;
    w.rows = t.shape.size() == 2 ? t.shape[0] : 1;
    w.cols = t.shape.back();
    w.data = t.data;
    w.nbytes = t.nbytes;
    return w;
  }
};

// The committed cases (the index also lists the large ones left out of the repository).
inline std::vector<BnbCase> bnb_cases() {
  std::vector<BnbCase> out;
  for (const auto& c : bnb_index()["cases"]) {
    const std::string path =
        bnb_fixture_dir() + "/" + c["name"].get<std::string>() + ".safetensors";
    if (std::ifstream(path).good()) out.push_back({c, SafetensorsFile::open(path)});
  }
  return out;
}

inline std::vector<float> floats_of(const TensorInfo& t) {
  std::vector<float> v(size_t(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 4);
  return v;
}

}  // namespace nibble::test
