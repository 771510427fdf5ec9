// nibble quant-report: for nf4/fp4 x double quant on/off, what the 4-bit weights cost (bits per
// weight, checkpoint size) and what they lose (relative error of the dequantized weights and of
// each linear layer's output on random activations): the seed's "test both in your use case".
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <regex>

#include "app/nibble/command.h"
#include "engine/error.h"
#include "loader/model_folder.h"
#include "loader/quant_config.h"
#include "loader/quantize.h"

namespace nibble::cli {
namespace {

struct Variant {
  QuantType type;
  bool double_quant;
};

struct Totals {
  double code_bytes = 0, stored_bytes = 0;
  double weight_err = 0, weight_norm = 0, out_err = 0, out_norm = 0;
};

// Bytes of one quantized weight's codes and absmax (or its 8-bit codes, nested absmax and
// offset): what bits/weight counts, as bitsandbytes' 4.5 / 4.127 do.
double code_bytes(const QuantizedWeight& q) {
  const QuantState& s = q.state;
  if (s.nested) return double(q.packed.size() + s.absmax_q.size() + s.nested_absmax.size() * 4 + 4);
  return double(q.packed.size() + s.absmax.size() * 4);
}

// The code tables stored beside each weight in the checkpoint (quant_map, nested_quant_map).
double table_bytes(const QuantizedWeight& q) {
  return 16 * 4 + (q.state.nested ? 256 * 4 : 0);
}

HostWeight view(const TensorInfo& t) {
  HostWeight w;
  w.name = t.name;
  w.dtype = t.dtype;
  w.rows = t.shape[0];
  w.cols = t.shape[1];
  w.data = t.data;
  w.nbytes = t.nbytes;
  return w;
}

// Adds one weight's errors: ||W - deq(Q)|| and, for random activations X (rows x in),
// ||X W^T - X deq(Q)^T||, both against the 16-bit reference.
void add_errors(const HostWeight& w, const QuantizedWeight& q, const std::vector<float>& x,
                int x_rows, Totals& t) {
  std::vector<float> ref(size_t(w.cols)), deq(size_t(w.cols));
  for (int64_t r = 0; r < w.rows; ++r) {
    for (int64_t c = 0; c < w.cols; ++c) ref[size_t(c)] = w.at(r * w.cols + c);
    dequantize(q.packed.data(), q.state, r * w.cols, w.cols, deq.data());
    for (int64_t c = 0; c < w.cols; ++c) {
      const double d = double(ref[size_t(c)]) - deq[size_t(c)];
      t.weight_err += d * d;
      t.weight_norm += double(ref[size_t(c)]) * ref[size_t(c)];
    }
    for (int i = 0; i < x_rows; ++i) {
      const float* xi = x.data() + size_t(i) * size_t(w.cols);
      double y_ref = 0, y_q = 0;
      for (int64_t c = 0; c < w.cols; ++c) {
        y_ref += double(xi[c]) * ref[size_t(c)];
        y_q += double(xi[c]) * deq[size_t(c)];
      }
      t.out_err += (y_ref - y_q) * (y_ref - y_q);
      t.out_norm += y_ref * y_ref;
    }
  }
}

int run_quant_report(Args& args) {
  const auto model_dir = args.get({"-m", "--model"});
  const int blocksize = args.get_int({"--blocksize"}, 64);
  const int x_rows = args.get_int({"--rows"}, 4);
  args.finish();
  if (!model_dir) fail("quant-report needs -m DIR (see nibble quant-report --help)");
  if (x_rows < 1) fail("--rows must be at least 1");
  QuantConfig blocks;
  blocks.blocksize = blocksize;
  blocks.validate();
  const ModelFolder folder = ModelFolder::open(*model_dir);

  // The decoder's linear weights, which --quant turns 4-bit; everything else stays as stored.
  static const std::regex linear(R"(model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight)");
  std::vector<const TensorInfo*> linears;
  double other_bytes = 0;
  for (const TensorInfo* t : folder.tensors()) {
    const bool is_linear = std::regex_match(t->name, linear);
    if (is_linear && t->dtype == DType::U8)
      fail("tensor " + t->name + " in " + t->file +
           " is already 4-bit; quant-report needs the 16/32-bit model");
    if (is_linear && t->shape.size() == 2)
      linears.push_back(t);
    else
      other_bytes += double(t->nbytes);
  }
  if (linears.empty()) fail("no decoder linear weights found in " + *model_dir);

  const std::vector<Variant> variants = {{QuantType::NF4, true},
                                         {QuantType::NF4, false},
                                         {QuantType::FP4, true},
                                         {QuantType::FP4, false}};
  std::vector<Totals> totals(variants.size());
  double linear_bytes = 0, linear_weights = 0;
  std::mt19937 rng(1234);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (size_t i = 0; i < linears.size(); ++i) {
    const HostWeight w = view(*linears[i]);
    linear_bytes += double(w.nbytes);
    linear_weights += double(w.rows * w.cols);
    std::vector<float> x(size_t(x_rows) * size_t(w.cols));
    for (float& v : x) v = normal(rng);
    for (size_t v = 0; v < variants.size(); ++v) {
      const QuantizedWeight q =
          quantize_4bit(w, variants[v].type, blocksize, variants[v].double_quant);
      totals[v].code_bytes += code_bytes(q);
      totals[v].stored_bytes += code_bytes(q) + table_bytes(q);
      add_errors(w, q, x, x_rows, totals[v]);
    }
    if (isatty(STDERR_FILENO))
      std::fprintf(stderr, "\rmeasuring %zu/%zu linear weights%s", i + 1, linears.size(),
                   i + 1 == linears.size() ? "\n" : "");
  }

  const double mib = 1024.0 * 1024.0;
  std::printf(
      "%s: %zu linear weights (%.0f parameters), blocksize %d, %d random activation rows\n\n",
      model_dir->c_str(), linears.size(), linear_weights, blocksize, x_rows);
  std::printf("%-14s %12s %14s %18s %18s\n", "quantization", "bits/weight", "total size",
              "weight rel. err", "output rel. err");
  std::printf("%-14s %12.3f %10.1f MiB %18s %18s\n", "none (stored)",
              linear_bytes * 8 / linear_weights, (linear_bytes + other_bytes) / mib, "0", "0");
  for (size_t v = 0; v < variants.size(); ++v) {
    const Totals& t = totals[v];
    const std::string name = std::string(variants[v].type == QuantType::NF4 ? "nf4" : "fp4") +
                             (variants[v].double_quant ? " + dq" : "");
    std::printf("%-14s %12.3f %10.1f MiB %18.3e %18.3e\n", name.c_str(),
                t.code_bytes * 8 / linear_weights, (t.stored_bytes + other_bytes) / mib,
                std::sqrt(t.weight_err / t.weight_norm), std::sqrt(t.out_err / t.out_norm));
  }
  std::printf(
      "\nbits/weight: codes and absmax storage of the linear weights; total size: the whole\n"
      "checkpoint, code tables included. Relative errors: ||ref - 4bit|| / ||ref|| over all\n"
      "linear weights, and over their outputs on random normal activations.\n");
  return 0;
}

const RegisterCommand reg(
    {"quant-report", "bits per weight, size and error of nf4/fp4 with and without double quant",
     "usage: nibble quant-report -m DIR [options]\n\n"
     "  -m, --model DIR        Hugging Face model folder (16/32-bit weights)\n"
     "  --blocksize N          weights per absmax (default 64)\n"
     "  --rows N               random activation rows per layer for the output error (default 4)\n",
     run_quant_report});

}  // namespace
}  // namespace nibble::cli
