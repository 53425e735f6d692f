#pragma once
// A hash for unordered containers keyed by std::string and asked with a std::string_view
// (together with std::equal_to<>): looking a key up builds no string.

#include <cstddef>
#include <functional>
#include <string_view>

namespace budstikke {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace budstikke
