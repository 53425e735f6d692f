#pragma once

#include <cstdint>
#include <string>

namespace budstikke {

// Current UTC time as RFC 3339 with milliseconds, e.g. 2026-11-21T23:43:07.123Z.
std::string now_rfc3339();
// Milliseconds since the epoch as RFC 3339 UTC.
std::string rfc3339_from_ms(int64_t epoch_ms);
int64_t now_epoch_ms();

}  // namespace budstikke
