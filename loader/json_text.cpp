#include "loader/json_text.h"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

#include "engine/error.h"

namespace nibble {

nlohmann::json parse_json(std::string_view text, const std::string& origin, const std::string& what,
                          const nlohmann::json::parser_callback_t& on_event) {
  try {
    return nlohmann::json::parse(text.begin(), text.end(), on_event);
  } catch (const nlohmann::json::exception& e) {
    // parse_error, and out_of_range for numbers past double (1e400): found by fuzz_model_config.
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix: users need the position only.
    std::string detail = e.what();
    if (const size_t end = detail.find("] "); end != std::string::npos) detail.erase(0, end + 2);
    fail(origin + ": " + what + " is not valid JSON (" + detail + ")");
  }
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open " + path + ": " + std::strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) fail("cannot read " + path + ": " + std::strerror(errno));
  return text.str();
}

int64_t json_integer(const nlohmann::json& v, const std::string& what) {
  if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(INT64_MAX))
    fail(what + " is out of range (" + v.dump() + ")");
  if (!v.is_number_integer()) fail(what + " must be an integer (it is " + v.dump() + ")");
  return v.get<int64_t>();
}

float json_float(const nlohmann::json& v, const std::string& what) {
  if (!v.is_number()) fail(what + " must be a number (it is " + v.dump() + ")");
  const double d = v.get<double>();
  if (!(std::fabs(d) <= double(std::numeric_limits<float>::max())))
    fail(what + " is out of range (" + v.dump() + ")");
  return float(d);
}

}  // namespace nibble
