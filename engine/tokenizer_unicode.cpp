#include "engine/tokenizer_unicode.h"

#include "engine/tokenizer_regex.h"

namespace nibble::unicode {
namespace {

// The length of the valid UTF-8 sequence at s[i], or 0 with `prefix` set to how many of its bytes
// form the maximal valid prefix (the unit from_utf8_lossy replaces by one U+FFFD).
size_t valid_sequence(std::string_view s, size_t i, size_t& prefix) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char lead = b(0);
  prefix = 1;
  if (lead < 0x80) return 1;
  size_t need = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    need = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    need = 3;
    if (lead == 0xE0) lo = 0xA0;
    if (lead == 0xED) hi = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    need = 4;
    if (lead == 0xF0) lo = 0x90;
    if (lead == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    const unsigned char c = b(k);
    const bool ok = k == 1 ? (c >= lo && c <= hi) : (c >= 0x80 && c <= 0xBF);
    if (!ok) return 0;
    prefix = k + 1;
  }
  return need;
}

}  // namespace

int next_codepoint(std::string_view s, size_t& i) {
  size_t prefix = 0;
  const size_t n = valid_sequence(s, i, prefix);
  if (n == 0) {
    ++i;
    return -1;
  }
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  int cp = 0;
  if (n == 1) cp = b(0);
  if (n == 2) cp = ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  if (n == 3) cp = ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  if (n == 4)
    cp = ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

bool is_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

bool is_alphanumeric(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  static const Regex alnum(R"(\p{Alphabetic}|\p{N})", "Unicode alphanumeric class");
  std::string s;
  append_utf8(s, c);
  return alnum.matches_at_start(s);
}

bool is_valid_utf8(std::string_view bytes) {
  size_t prefix = 0;
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = valid_sequence(bytes, i, prefix);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t prefix = 0;
  for (size_t i = 0; i < bytes.size();) {
    const size_t n = valid_sequence(bytes, i, prefix);
    if (n) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += prefix;
    }
  }
  return out;
}

bool ends_with_replacement(std::string_view text) {
  return text.ends_with("\xEF\xBF\xBD");
}

std::string replace_all(std::string_view text, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0;;) {
    const size_t hit = text.find(from, pos);
    out.append(text.substr(pos, hit - pos));
    if (hit == std::string_view::npos) return out;
    out.append(to);
    pos = hit + from.size();
  }
}

const std::array<std::string, 256>& byte_to_unicode() {
  // Printable Latin-1 bytes stand for themselves; the rest are moved to U+0100 and up, in order.
  static const std::array<std::string, 256> table = [] {
    std::array<std::string, 256> t;
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable =
          (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      append_utf8(t[size_t(b)], printable ? char32_t(b) : char32_t(256 + shifted++));
    }
    return t;
  }();
  return table;
}

int unicode_to_byte(char32_t cp) {
  static const std::array<int, 512> inverse = [] {
    std::array<int, 512> inv;
    inv.fill(-1);
    const auto& table = byte_to_unicode();
    for (int b = 0; b < 256; ++b) {
      size_t i = 0;
      inv[size_t(next_codepoint(table[size_t(b)], i))] = b;
    }
    return inv;
  }();
  return cp < inverse.size() ? inverse[cp] : -1;
}

}  // namespace nibble::unicode
