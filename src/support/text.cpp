// Escaping outside text for terminals and UTF-8 writers (see text.h).
#include "compress/support/text.h"

#include <fmt/format.h>

#include <cstdint>

namespace compress {
namespace {

// Length of the valid UTF-8 sequence starting at text[i] (1-4), or 0 when
// the bytes there are not one (overlong forms, surrogates and code points
// above U+10FFFF are invalid, as in RFC 3629). *code_point gets its value.
size_t utf8_sequence(std::string_view text, size_t i, uint32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  const uint8_t b0 = byte(i);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  size_t length;
  uint32_t value, min;
  if ((b0 & 0xe0) == 0xc0) {
    length = 2, value = b0 & 0x1f, min = 0x80;
  } else if ((b0 & 0xf0) == 0xe0) {
    length = 3, value = b0 & 0x0f, min = 0x800;
  } else if ((b0 & 0xf8) == 0xf0) {
    length = 4, value = b0 & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  for (size_t k = 1; k < length; ++k) {
    if ((byte(i + k) & 0xc0) != 0x80) return 0;
    value = (value << 6) | (byte(i + k) & 0x3f);
  }
  if (value < min || value > 0x10ffff || (value >= 0xd800 && value <= 0xdfff)) return 0;
  *code_point = value;
  return length;
}

bool is_control(uint32_t code_point) {
  if (code_point == '\n' || code_point == '\t') return false;
  return code_point < 0x20 || code_point == 0x7f || (code_point >= 0x80 && code_point <= 0x9f);
}

}  // namespace

std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t code_point = 0;
    const size_t length = utf8_sequence(text, i, &code_point);
    if (length == 0 || is_control(code_point)) {
      // One escaped byte at a time: an invalid lead byte may start a valid
      // sequence one byte later.
      const size_t escaped = length == 0 ? 1 : length;
      for (size_t k = 0; k < escaped; ++k) out += fmt::format("\\x{:02x}", static_cast<uint8_t>(text[i + k]));
      i += escaped;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

std::string valid_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t code_point = 0;
    const size_t length = utf8_sequence(text, i, &code_point);
    if (length == 0) {
      out += "\xef\xbf\xbd";  // U+FFFD
      ++i;
      continue;
    }
    out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

}  // namespace compress
