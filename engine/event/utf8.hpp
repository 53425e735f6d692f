#pragma once
// Well-formed UTF-8 as Unicode's table 3-7 defines it (and nlohmann::json checks it): no
// overlong forms, no surrogates, nothing above U+10FFFF. Shared by the event writer's check
// and the JSON reader.

#include <cstddef>

namespace budstikke {

// The length (2-4) of the UTF-8 sequence that starts at p (p[0] >= 0x80) with `left` bytes
// there, or 0 when it is not well-formed.
inline size_t utf8_sequence_length(const unsigned char* p, size_t left) {
  const unsigned c = p[0];
  size_t len = 0;
  unsigned lo = 0x80;
  unsigned hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (left < len || p[1] < lo || p[1] > hi) return 0;
  for (size_t k = 2; k < len; ++k)
    if (p[k] < 0x80 || p[k] > 0xBF) return 0;
  return len;
}

}  // namespace budstikke
