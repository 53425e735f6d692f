#include "engine/core/redact.hpp"

#include <cctype>

namespace budstikke {
namespace {

bool is_digit(char c) { return c >= '0' && c <= '9'; }

template <typename F>
void for_each_11(std::string_view text, F&& f) {
  size_t i = 0;
  while (i < text.size()) {
    if (!is_digit(text[i])) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < text.size() && is_digit(text[j])) ++j;
    if (j - i == 11) f(i);
    i = j;
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
