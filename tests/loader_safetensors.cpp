// safetensors reading and writing: a round trip, files Hugging Face wrote, and every kind of
// malformed header, each of which must fail with a message naming the file and the tensor.
#include <sys/resource.h>

#include <doctest/doctest.h>
#include <csignal>
#include <cstring>
#include <vector>

#include "loader/safetensors.h"
#include "tests/loader_test_util.h"

using namespace nibble;
using namespace nibble::test;

namespace {

std::shared_ptr<SafetensorsFile> parse_text(const std::string& image, const std::string& origin) {
  return SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(image.data()), image.size(),
                                origin);
}

}  // namespace

TEST_CASE("safetensors: write then open round-trips tensors and metadata") {
  TempDir dir;
  const std::vector<float> a = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  const std::vector<uint16_t> b = {0x3f80, 0xbf80, 0x4000};  // bf16 1, -1, 2
  const std::vector<uint8_t> c = {1, 2, 3, 4, 5};  // odd size: the next tensor is unaligned
  const std::vector<int32_t> d = {-7, 1 << 30};
  const std::vector<TensorToWrite> tensors = {
      {"a", DType::F32, {2, 3}, a.data(), a.size() * 4},
      {"b.weight", DType::BF16, {3}, b.data(), b.size() * 2},
      {"c", DType::U8, {5, 1}, c.data(), c.size()},
      {"d", DType::I32, {2}, d.data(), d.size() * 4},
      {"empty", DType::F16, {0, 4}, nullptr, 0},
  };
  const auto path = dir / "t.safetensors";
  write_safetensors(path, tensors, {{"format", "pt"}});

  const std::string bytes = read_file(path);
  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes.data(), 8);
  CHECK((8 + header_size) % 8 == 0);  // padded so the data section is aligned
  // The header lists __metadata__ first, then the tensors in offset order: 4-byte dtypes first.
  const std::string header = bytes.substr(8, header_size);
  CHECK(header.rfind("{\"__metadata__\":", 0) == 0);
  CHECK(header.find("\"a\"") < header.find("\"d\""));
  CHECK(header.find("\"d\"") < header.find("\"b.weight\""));
  CHECK(header.find("\"b.weight\"") < header.find("\"c\""));
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 1);  // no temporary

  const auto file = SafetensorsFile::open(path);
  CHECK(file->path() == path.string());
  CHECK(file->file_size() == bytes.size());
  CHECK(file->metadata().at("format") == "pt");
  REQUIRE(file->tensors().size() == tensors.size());
  for (const TensorToWrite& w : tensors) {
    CAPTURE(w.name);
    const TensorInfo* t = file->find(w.name);
    REQUIRE(t != nullptr);
    CHECK(t->dtype == w.dtype);
    CHECK(t->shape == w.shape);
    CHECK(t->nbytes == w.nbytes);
    CHECK(t->file == path.string());
    CHECK(std::memcmp(t->data, w.data ? w.data : "", w.nbytes) == 0);
  }
  CHECK(file->find("missing") == nullptr);
  CHECK(file->find("a")->numel() == 6);
  CHECK(file->find("empty")->numel() == 0);
  // tensors() is in file order: offsets increase; wider dtypes come first, so all are aligned.
  for (size_t i = 1; i < file->tensors().size(); ++i)
    CHECK(file->tensors()[i - 1].data <= file->tensors()[i].data);
  for (const TensorInfo& t : file->tensors())
    CHECK(reinterpret_cast<uintptr_t>(t.data) % dtype_size(t.dtype) == 0);
}

TEST_CASE("safetensors: reads the files bitsandbytes and transformers wrote") {
  const auto bnb = SafetensorsFile::open("tests/fixtures/loader/bnb-nf4-dq.safetensors");
  const TensorInfo& packed = *bnb->find("packed");
  CHECK(packed.dtype == DType::U8);
  CHECK(packed.shape == std::vector<int64_t>{300, 1});
  CHECK(bnb->find("state.absmax")->dtype == DType::U8);  // double quant: uint8 absmax
  const TensorInfo& state = *bnb->find("state.quant_state.bitsandbytes__nf4");
  const std::string json(reinterpret_cast<const char*>(state.data), state.nbytes);
  CHECK(json.find("\"quant_type\": \"nf4\"") != std::string::npos);

  const auto hf = SafetensorsFile::open("tests/fixtures/loader/tiny-llama/model.safetensors");
  CHECK(hf->metadata().at("format") == "pt");
  CHECK(hf->find("model.embed_tokens.weight")->dtype == DType::BF16);
}

TEST_CASE("safetensors: every malformed header fails naming the file and the tensor") {
  struct Case {
    const char* what;
    std::string header;
    size_t data_bytes;
    std::vector<std::string> expected;  // substrings of the message besides the file name
  };
  const std::string ok = R"("dtype":"F32","shape":[2],"data_offsets":[0,8])";
  const std::vector<Case> cases = {
      {"not JSON", "{\"w\": nope}", 0, {"not valid JSON", "line 1"}},
      {"not an object", "[1, 2]", 0, {"does not start with '{'"}},
      {"trailing garbage", "{} {}", 0, {"not valid JSON"}},
      {"empty header", "", 0, {"does not start with '{'"}},
      {"entry not an object", R"({"w": 5})", 0, {"\"w\"", "not an object"}},
      {"missing dtype", R"({"w": {"shape":[2],"data_offsets":[0,8]}})", 8, {"\"w\"", "dtype"}},
      {"dtype not a string",
       R"({"w": {"dtype":4,"shape":[2],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "dtype"}},
      {"F64",
       R"({"w": {"dtype":"F64","shape":[1],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "F64 is not supported", "F32, F16, BF16, U8, I32"}},
      {"I64",
       R"({"w": {"dtype":"I64","shape":[1],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "I64 is not supported"}},
      {"BOOL",
       R"({"w": {"dtype":"BOOL","shape":[1],"data_offsets":[0,1]}})",
       1,
       {"\"w\"", "BOOL is not supported"}},
      {"unknown dtype",
       R"({"w": {"dtype":"Q7","shape":[1],"data_offsets":[0,1]}})",
       1,
       {"\"w\"", "unknown dtype \"Q7\""}},
      {"missing shape", R"({"w": {"dtype":"F32","data_offsets":[0,8]}})", 8, {"\"w\"", "shape"}},
      {"shape not a list",
       R"({"w": {"dtype":"F32","shape":2,"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "shape"}},
      {"shape of strings",
       R"({"w": {"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "non-integer"}},
      {"fractional dim",
       R"({"w": {"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "non-integer"}},
      {"negative dim",
       R"({"w": {"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "negative"}},
      {"dim past int64",
       R"({"w": {"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}})",
       1,
       {"\"w\"", "too large"}},
      {"shape product overflow",
       R"({"w": {"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "more elements"}},
      {"bytes overflow",
       R"({"w": {"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "more elements"}},
      {"missing offsets", R"({"w": {"dtype":"F32","shape":[2]}})", 8, {"\"w\"", "data_offsets"}},
      {"three offsets",
       R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})",
       8,
       {"\"w\"", "data_offsets"}},
      {"negative offset",
       R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})",
       8,
       {"\"w\"", "data_offsets"}},
      {"float offset",
       R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[0,8.0]}})",
       8,
       {"\"w\"", "data_offsets"}},
      {"end before begin",
       R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
       8,
       {"\"w\"", "end before they begin"}},
      {"past the data section",
       R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
       7,
       {"\"w\"", "past the end of the data section (7 bytes"}},
      {"offset near 2^64",
       R"({"w": {"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
       8,
       {"\"w\"", "past the end"}},
      {"length != numel * size",
       R"({"w": {"dtype":"F16","shape":[2],"data_offsets":[0,8]}})",
       8,
       {"\"w\"", "hold 8 bytes but F16 [2] needs 4"}},
      {"overlap",
       "{\"a\": {" + ok + R"(}, "b": {"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
       12,
       {"\"b\" overlaps tensor \"a\""}},
      {"same bytes twice", "{\"a\": {" + ok + "}, \"b\": {" + ok + "}}", 8, {"overlaps tensor"}},
      {"hole",
       "{\"a\": {" + ok + R"(}, "b": {"dtype":"U8","shape":[2],"data_offsets":[10,12]}})",
       12,
       {"\"b\"", "starts at byte 10", "hole"}},
      {"hole at the start",
       R"({"a": {"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
       4,
       {"\"a\"", "hole"}},
      {"trailing bytes", "{\"a\": {" + ok + "}}", 12, {"tensors end at byte 8", "holds 12 bytes"}},
      {"duplicate tensor",
       "{\"a\": {" + ok + "}, \"a\": {" + ok + "}}",
       8,
       {"\"a\" appears twice"}},
      {"metadata not an object", R"({"__metadata__": [1]})", 0, {"__metadata__"}},
      {"metadata not strings",
       R"({"__metadata__": {"format": 1}})",
       0,
       {"__metadata__ \"format\"", "not a string"}},
      {"number past double",
       R"({"w": {"dtype":"F32","shape":[1e999],"data_offsets":[0,8]}})",
       8,
       {"not valid JSON", "number overflow"}},
      {"invalid UTF-8 name", "{\"w\xff\": {" + ok + "}}", 8, {"not valid JSON"}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const std::string image = safetensors_bytes(c.header, std::string(c.data_bytes, '\x01'));
    const std::string message = error_of([&] { parse_text(image, "dir/bad.safetensors"); });
    CAPTURE(message);
    REQUIRE(!message.empty());
    CHECK(message.rfind("dir/bad.safetensors: ", 0) == 0);
    for (const std::string& part : c.expected) CHECK(message.find(part) != std::string::npos);
  }
}

TEST_CASE("safetensors: truncated and non-safetensors files fail naming the file") {
  const std::string good = read_file("tests/fixtures/loader/tiny-llama/model.safetensors");
  REQUIRE(good.size() > 100);
  uint64_t header_size = 0;
  std::memcpy(&header_size, good.data(), 8);

  struct Case {
    const char* what;
    std::string bytes;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {"empty file", "", "too short"},
      {"7 bytes", good.substr(0, 7), "too short"},
      {"header cut", good.substr(0, 8 + header_size / 2), "header length"},
      {"data cut", good.substr(0, good.size() - 1), "past the end of the data section"},
      {"header length of 2^64 - 1", std::string(8, '\xff') + "{}", "header length"},
      {"a text file", "hello, this is not a model at all\n", "header length"},
  };
  TempDir dir;
  for (const Case& c : cases) {
    CAPTURE(c.what);
    const auto path = dir / "model.safetensors";
    write_file(path, c.bytes);
    const std::string message = error_of([&] { SafetensorsFile::open(path); });
    CAPTURE(message);
    CHECK(message.find(path.string()) != std::string::npos);
    CHECK(message.find(c.expected) != std::string::npos);
  }
  const std::string missing = error_of([&] { SafetensorsFile::open(dir / "nope.safetensors"); });
  CHECK(missing.find("nope.safetensors") != std::string::npos);
  CHECK(missing.find("No such file") != std::string::npos);
  const std::string folder = error_of([&] { SafetensorsFile::open(dir.path()); });
  CHECK(folder.find("not a regular file") != std::string::npos);
}

TEST_CASE("safetensors: write errors name the file and leave nothing behind") {
  TempDir dir;
  const std::vector<float> v(4, 1.0f);
  const TensorToWrite good{"w", DType::F32, {4}, v.data(), 16};

  const auto unwritable = dir / "no-such-folder" / "out.safetensors";
  std::string message = error_of([&] { write_safetensors(unwritable, {good}); });
  CHECK(message.find(unwritable.string()) != std::string::npos);
  CHECK(message.find("No such file or directory") != std::string::npos);

  const auto path = dir / "out.safetensors";
  message = error_of([&] { write_safetensors(path, {{"w", DType::F32, {5}, v.data(), 16}}); });
  CHECK(message.find("\"w\" has 16 bytes but its shape needs 20") != std::string::npos);
  message = error_of([&] { write_safetensors(path, {good, good}); });
  CHECK(message.find("\"w\" is named twice") != std::string::npos);
  message = error_of([&] { write_safetensors(path, {{"q", DType::NF4, {4}, v.data(), 2}}); });
  CHECK(message.find("\"q\" has dtype NF4") != std::string::npos);

  // A full disk, simulated by a file size limit: the write fails cleanly, the old file survives.
  write_safetensors(path, {good});
  const std::string before = read_file(path);
  std::vector<uint8_t> big(1 << 20);
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit small = old;
  small.rlim_cur = 4096;
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  setrlimit(RLIMIT_FSIZE, &small);
  message = error_of([&] {
    write_safetensors(path, {{"big", DType::U8, {1 << 20}, big.data(), big.size()}});
  });
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  CHECK(message.find(path.string()) != std::string::npos);
  CHECK(message.find("too large") != std::string::npos);  // EFBIG: "File too large"
  CHECK(read_file(path) == before);
  CHECK(std::distance(std::filesystem::directory_iterator(dir.path()), {}) == 1);
}
