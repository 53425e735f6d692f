#pragma once
// Structured logging: one JSON object per line on stderr, level per module.
// Every message and field value passes through redact_identity_numbers() before it is written.

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace budstikke::log {

enum class Level { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kOff = 4 };

bool parse_level(std::string_view name, Level& out);
void set_level(Level level);
void set_module_level(std::string_view module, Level level);
bool enabled(std::string_view module, Level level);

using Field = std::pair<std::string_view, std::string>;
void write(Level level, std::string_view module, std::string_view message,
           std::initializer_list<Field> fields = {});

inline void debug(std::string_view m, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kDebug, m, msg, f);
}
inline void info(std::string_view m, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kInfo, m, msg, f);
}
inline void warn(std::string_view m, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kWarn, m, msg, f);
}
inline void error(std::string_view m, std::string_view msg, std::initializer_list<Field> f = {}) {
  write(Level::kError, m, msg, f);
}

}  // namespace budstikke::log
