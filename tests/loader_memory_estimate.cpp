// The weight-memory estimate: 4-bit sizes against what bitsandbytes really stores, and the weight
// list against the tensors transformers saves.
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include "loader/memory_estimate.h"
#include "loader/model_folder.h"
#include "tests/loader_test_util.h"

using namespace nibble;
using namespace nibble::test;
using nlohmann::json;

TEST_CASE("memory estimate: 4-bit bytes equal what bitsandbytes stores") {
  // 120 cases from the real bitsandbytes (tools/make_loader_fixtures.py): odd sizes, 1 024 blocks.
  const json cases = json::parse(read_file("tests/fixtures/loader/bnb-sizes.json"));
  REQUIRE(cases.size() == 120);
  for (const json& c : cases) {
    CAPTURE(c.dump());
    CHECK(quantized_weight_bytes(c["numel"], c["blocksize"], c["double_quant"]) == c["bytes"]);
  }
}

TEST_CASE("memory estimate: the weight list is what transformers saves") {
  const ModelConfig c = ModelFolder::open("tests/fixtures/loader/tiny-llama").config();
  const json expected = json::parse(read_file("tests/fixtures/loader/tiny-llama.expected.json"));
  const std::vector<WeightShape> shapes = model_weight_shapes(c);
  CHECK(shapes.size() == expected.size());
  int64_t params = 0, quantizable = 0;
  for (const WeightShape& w : shapes) {
    CAPTURE(w.name);
    REQUIRE(expected.contains(w.name));
    const auto shape = expected[w.name]["shape"].get<std::vector<int64_t>>();
    CHECK(w.rows * w.cols == (shape.size() == 1 ? shape[0] : shape[0] * shape[1]));
    CHECK(w.cols == shape.back());
    params += w.rows * w.cols;
    if (w.quantizable) quantizable += w.rows * w.cols;
    CHECK(w.quantizable == (w.name.find("_proj.") != std::string::npos));
  }
  ModelConfig tied = c;
  tied.tie_word_embeddings = true;
  CHECK(model_weight_shapes(tied).size() == shapes.size() - 1);

  // Sizes add up: 16-bit everywhere without quantization; 4-bit only for the decoder linears.
  QuantConfig none;
  none.enabled = false;
  CHECK(model_weight_bytes(c, none) == uint64_t(params) * 2);
  CHECK(model_weight_bytes(c, none, 4) == uint64_t(params) * 4);
  for (bool dq : {false, true}) {
    QuantConfig q;
    q.double_quant = dq;
    uint64_t want = uint64_t(params - quantizable) * 2;
    for (const WeightShape& w : shapes)
      if (w.quantizable) want += quantized_weight_bytes(w.rows * w.cols, q.blocksize, dq);
    CHECK(model_weight_bytes(c, q) == want);
    // Skipped modules stay 16-bit.
    for (const WeightShape& w : shapes)
      if (w.name.find(".mlp.") != std::string::npos)
        want += uint64_t(w.rows * w.cols) * 2 -
                quantized_weight_bytes(w.rows * w.cols, q.blocksize, dq);
    q.skip_modules = {"lm_head", "mlp"};
    CHECK(model_weight_bytes(c, q) == want);
  }
}

TEST_CASE("memory estimate: 4.5 and ~4.127 bits per weight at scale") {
  const int64_t n = int64_t(4096) * 14336;
  CHECK(double(quantized_weight_bytes(n, 64, false)) * 8 / double(n) ==
        doctest::Approx(4.5).epsilon(1e-4));
  CHECK(double(quantized_weight_bytes(n, 64, true)) * 8 / double(n) ==
        doctest::Approx(4.0 + 8.0 / 64 + 32.0 / (64 * 256)).epsilon(1e-4));
}
