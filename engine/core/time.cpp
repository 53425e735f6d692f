#include "engine/core/time.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

namespace budstikke {

int64_t now_epoch_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string rfc3339_from_ms(int64_t epoch_ms) {
  const std::time_t t = static_cast<std::time_t>(epoch_ms / 1000);
  const int ms = static_cast<int>(epoch_ms % 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  const int n =
      std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                    tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return {buf, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof buf) - 1))};
}

std::string now_rfc3339() {
  return rfc3339_from_ms(now_epoch_ms());
}

}  // namespace budstikke
