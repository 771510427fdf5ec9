#include "loader/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <set>

#include "engine/error.h"
#include "loader/json_text.h"

namespace nibble {

using nlohmann::json;

namespace {

constexpr DType kReadable[] = {DType::F32, DType::F16, DType::BF16, DType::U8, DType::I32};
// The spec's other dtypes: named as "not supported" rather than "unknown".
constexpr std::string_view kKnownUnreadable[] = {
    "F64",     "I64",     "U64",     "U32",     "I16",     "U16", "I8", "BOOL",
    "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4",  "C64"};

std::string readable_list() {
  std::string out;
  for (DType t : kReadable) out += (out.empty() ? "" : ", ") + std::string(dtype_name(t));
  return out;
}

std::optional<DType> readable_dtype(std::string_view name) {
  for (DType t : kReadable)
    if (dtype_name(t) == name) return t;
  return std::nullopt;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// One header entry, validated on its own; the layout checks that relate entries come after.
struct Entry {
  TensorInfo info;
  uint64_t begin = 0, end = 0;
};

Entry parse_entry(const std::string& name, const json& value, uint64_t data_size,
                  const std::string& origin) {
  const std::string where = origin + ": tensor \"" + name + "\"";
  if (!value.is_object()) fail(where + ": header entry is not an object");

  Entry e;
  e.info.name = name;
  e.info.file = origin;

  const auto dtype_it = value.find("dtype");
  if (dtype_it == value.end() || !dtype_it->is_string())
    fail(where + ": \"dtype\" is missing or not a string");
  const std::string& dtype = dtype_it->get_ref<const std::string&>();
  const std::optional<DType> t = readable_dtype(dtype);
  if (!t) {
    const bool known = std::find(std::begin(kKnownUnreadable), std::end(kKnownUnreadable), dtype) !=
                       std::end(kKnownUnreadable);
    fail(where +
         (known ? ": dtype " + dtype + " is not supported" : ": unknown dtype \"" + dtype + "\"") +
         " (supported: " + readable_list() + ")");
  }
  e.info.dtype = *t;

  const auto shape_it = value.find("shape");
  if (shape_it == value.end() || !shape_it->is_array())
    fail(where + ": \"shape\" is missing or not an array");
  // numel * element size must fit in int64 before it is compared with the offsets.
  const uint64_t limit = uint64_t(std::numeric_limits<int64_t>::max()) / dtype_size(*t);
  uint64_t numel = 1;
  for (const json& d : *shape_it) {
    if (!d.is_number_integer())
      fail(where + ": shape " + shape_it->dump() + " holds a non-integer");
    if (d.is_number_unsigned() ? d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                               : d.get<int64_t>() < 0)
      fail(where + ": shape " + shape_it->dump() + " holds a negative or too large dimension");
    const uint64_t dim = d.get<uint64_t>();
    if (dim != 0 && numel > limit / dim)
      fail(where + ": shape " + shape_it->dump() + " has more elements than any file can hold");
    numel *= dim;
    e.info.shape.push_back(int64_t(dim));
  }

  const auto offsets_it = value.find("data_offsets");
  if (offsets_it == value.end() || !offsets_it->is_array() || offsets_it->size() != 2 ||
      !(*offsets_it)[0].is_number_unsigned() || !(*offsets_it)[1].is_number_unsigned())
    fail(where + ": \"data_offsets\" must be two non-negative integers [begin, end]");
  e.begin = (*offsets_it)[0].get<uint64_t>();
  e.end = (*offsets_it)[1].get<uint64_t>();
  const std::string range = "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ")";
  if (e.end < e.begin) fail(where + ": data_offsets " + range + " end before they begin");
  if (e.end > data_size)
    fail(where + ": data_offsets " + range + " reach past the end of the data section (" +
         std::to_string(data_size) + " bytes; is the file truncated?)");
  e.info.nbytes = size_t(e.end - e.begin);
  const uint64_t expected = numel * dtype_size(*t);
  if (e.info.nbytes != expected)
    fail(where + ": data_offsets " + range + " hold " + std::to_string(e.info.nbytes) +
         " bytes but " + dtype + " " + shape_it->dump() + " needs " + std::to_string(expected));
  return e;
}

// Like the reference reader (the `safetensors` crate), the tensors must tile the data section
// exactly: no overlap, no hole, nothing after the last tensor. A file that breaks this is not one
// Hugging Face wrote, and accepting only what the reference accepts keeps the two in agreement.
void check_layout(std::vector<Entry>& entries, uint64_t data_size, const std::string& origin) {
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    const std::string where = origin + ": tensor \"" + e.info.name + "\"";
    if (e.begin < covered)
      fail(where + " overlaps tensor \"" + previous->info.name + "\" (bytes " +
           std::to_string(e.begin) + " to " + std::to_string(covered) + " of the data section)");
    if (e.begin > covered)
      fail(where + " starts at byte " + std::to_string(e.begin) +
           " but the tensors before it end at " + std::to_string(covered) +
           ": the data section has a hole");
    covered = e.end;
    previous = &e;
  }
  if (covered != data_size)
    fail(origin + ": the tensors end at byte " + std::to_string(covered) +
         " of the data section but it holds " + std::to_string(data_size) + " bytes");
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t* bytes, size_t size,
                                                        const std::string& origin) {
  if (size < 8)
    fail(origin + ": too short for a safetensors file (" + std::to_string(size) +
         " bytes; it starts with an 8-byte header length)");
  const uint64_t header_size = read_le64(bytes);
  if (header_size > size - 8)
    fail(origin + ": header length " + std::to_string(header_size) + " is larger than the file (" +
         std::to_string(size) + " bytes): truncated, or not a safetensors file");
  const std::string_view header(reinterpret_cast<const char*>(bytes + 8), size_t(header_size));
  if (header.empty() || header.front() != '{')
    fail(origin + ": the header does not start with '{': not a safetensors file");

  // nlohmann keeps the last of duplicate keys; a tensor named twice is an error instead.
  std::set<std::string> names;
  const json::parser_callback_t reject_duplicates = [&](int depth, json::parse_event_t event,
                                                        json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key &&
        !names.insert(parsed.get<std::string>()).second)
      fail(origin + ": tensor \"" + parsed.get<std::string>() + "\" appears twice in the header");
    return true;
  };
  const json j = parse_json(header, origin, "the header", reject_duplicates);  // an object: '{'

  std::shared_ptr<SafetensorsFile> file(new SafetensorsFile());
  file->path_ = origin;
  file->map_size_ = size;  // unmapped by the destructor only when open() sets map_
  const uint8_t* data = bytes + 8 + header_size;
  const uint64_t data_size = size - 8 - header_size;
  std::vector<Entry> entries;
  for (const auto& [name, value] : j.items()) {
    if (name == "__metadata__") {
      if (!value.is_object()) fail(origin + ": __metadata__ is not an object");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string())
          fail(origin + ": __metadata__ \"" + key +
               "\" is not a string (the format allows only strings)");
        file->metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    entries.push_back(parse_entry(name, value, data_size, origin));
  }
  check_layout(entries, data_size, origin);
  for (Entry& e : entries) {
    e.info.data = data + e.begin;
    file->tensors_.push_back(std::move(e.info));
  }
  return file;
}

std::shared_ptr<SafetensorsFile> SafetensorsFile::open(const std::filesystem::path& path) {
  const std::string name = path.string();
  const int fd = ::open(name.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open " + name + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail("cannot read " + name + ": not a regular file");
  }
  const size_t size = size_t(st.st_size);
  if (size < 8) {  // mmap of an empty file fails; parse() rejects the size before reading bytes
    ::close(fd);
    parse(nullptr, size, name);
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  const int map_errno = errno;
  ::close(fd);
  if (map == MAP_FAILED) fail("cannot map " + name + " into memory: " + std::strerror(map_errno));
  try {
    std::shared_ptr<SafetensorsFile> file = parse(static_cast<const uint8_t*>(map), size, name);
    file->map_ = map;
    file->map_size_ = size;
    return file;
  } catch (...) {
    munmap(map, size);
    throw;
  }
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, map_size_);
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

namespace {

// A FILE* that is closed and removed unless commit() renamed it into place.
class TempFile {
 public:
  explicit TempFile(std::string target) : target_(std::move(target)) {
    tmp_ = target_ + ".tmp." + std::to_string(getpid());
    file_ = std::fopen(tmp_.c_str(), "wb");
    if (!file_) fail("cannot write " + target_ + ": " + std::strerror(errno));
  }
  ~TempFile() {
    if (file_) std::fclose(file_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  void write(const void* data, size_t n) {
    if (n && std::fwrite(data, 1, n, file_) != n) failed("writing");
  }
  // Flushes to the disk before the rename, so a crash leaves either the old file or the new one.
  void commit() {
    if (std::fflush(file_) != 0) failed("writing");
    if (fsync(fileno(file_)) != 0) failed("syncing");
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) failed("closing");
    if (std::rename(tmp_.c_str(), target_.c_str()) != 0) failed("renaming the temporary file to");
    committed_ = true;
  }

 private:
  [[noreturn]] void failed(const char* doing) {
    fail("error " + std::string(doing) + " " + target_ + ": " + std::strerror(errno));
  }
  std::string target_, tmp_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const std::string target = path.string();
  // Entries in offset order after __metadata__, as the reference writer lays the header out.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  // Wider dtypes first, as the reference writer orders them: with the data section 8-byte aligned,
  // every tensor then starts at a multiple of its element size and can be read in place.
  std::vector<const TensorToWrite*> order;
  for (const TensorToWrite& t : tensors) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [](const TensorToWrite* a, const TensorToWrite* b) {
    return dtype_size(a->dtype) > dtype_size(b->dtype);
  });
  uint64_t offset = 0;
  for (const TensorToWrite* tensor : order) {
    const TensorToWrite& t = *tensor;
    const std::string where = "cannot write " + target + ": tensor \"" + t.name + "\"";
    if (!readable_dtype(dtype_name(t.dtype)))
      fail(where + " has dtype " + std::string(dtype_name(t.dtype)) +
           ", which safetensors cannot hold");
    if (t.name == "__metadata__" || header.contains(t.name))
      fail(where + " is named twice or reserved");
    uint64_t numel = 1;
    for (int64_t d : t.shape) {
      if (d < 0) fail(where + " has a negative dimension");
      numel *= uint64_t(d);
    }
    if (numel * dtype_size(t.dtype) != t.nbytes)
      fail(where + " has " + std::to_string(t.nbytes) + " bytes but its shape needs " +
           std::to_string(numel * dtype_size(t.dtype)));
    header[t.name] = {{"dtype", dtype_name(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.nbytes}}};
    offset += t.nbytes;
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t length[8];
  for (int i = 0; i < 8; ++i) length[i] = uint8_t(uint64_t(text.size()) >> (8 * i));

  TempFile out(target);
  out.write(length, 8);
  out.write(text.data(), text.size());
  for (const TensorToWrite* t : order) out.write(t->data, t->nbytes);
  out.commit();
}

}  // namespace nibble
