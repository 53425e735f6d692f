#include "engine/core/redact.hpp"

#include <cctype>

namespace budstikke {
namespace {

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_alnum(char c) {
  return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool is_hex_letter(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// Calls f(pos) for each run of exactly 11 digits. A run inside a hexadecimal token (a UUID
// group, a hash: only 0-9a-f with at least one letter) is an identifier, not a person.
template <typename F>
void for_each_11(std::string_view text, F&& f) {
  size_t i = 0;
  while (i < text.size()) {
    if (!is_alnum(text[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    bool all_hex = true;
    bool has_letter = false;
    while (end < text.size() && is_alnum(text[end])) {
      if (!is_digit(text[end])) {
        has_letter = true;
        all_hex = all_hex && is_hex_letter(text[end]);
      }
      ++end;
    }
    if (!(all_hex && has_letter)) {
      size_t j = i;
      while (j < end) {
        if (!is_digit(text[j])) {
          ++j;
          continue;
        }
        size_t k = j;
        while (k < end && is_digit(text[k])) ++k;
        if (k - j == 11) f(j);
        j = k;
      }
    }
    i = end;
  }
}

}  // namespace

std::string redact_identity_numbers(std::string_view text) {
  std::string out(text);
  for_each_11(text, [&](size_t pos) { out.replace(pos, 11, 11, '*'); });
  return out;
}

bool contains_identity_number(std::string_view text) {
  bool found = false;
  for_each_11(text, [&](size_t) { found = true; });
  return found;
}

bool is_valid_fodselsnummer(std::string_view d) {
  if (d.size() != 11) return false;
  for (const char c : d)
    if (!is_digit(c)) return false;
  auto n = [&](size_t i) { return d[i] - '0'; };
  static constexpr int kW1[] = {3, 7, 6, 1, 8, 9, 4, 5, 2};
  static constexpr int kW2[] = {5, 4, 3, 2, 7, 6, 5, 4, 3, 2};
  int s = 0;
  for (size_t i = 0; i < 9; ++i) s += kW1[i] * n(i);
  int k1 = 11 - s % 11;
  if (k1 == 11) k1 = 0;
  if (k1 == 10 || k1 != n(9)) return false;
  s = 0;
  for (size_t i = 0; i < 10; ++i) s += kW2[i] * n(i);
  int k2 = 11 - s % 11;
  if (k2 == 11) k2 = 0;
  return k2 != 10 && k2 == n(10);
}

}  // namespace budstikke
