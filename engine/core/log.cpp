#include "engine/core/log.hpp"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>

#include <nlohmann/json.hpp>

#include "engine/core/redact.hpp"
#include "engine/core/time.hpp"

namespace budstikke::log {
namespace {

std::mutex g_mu;
Level g_level = Level::kInfo;
std::map<std::string, Level, std::less<>> g_modules;

const char* level_name(Level l) {
  switch (l) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
    case Level::kOff:
      return "off";
  }
  return "info";
}

}  // namespace

bool parse_level(std::string_view name, Level& out) {
  static const std::pair<std::string_view, Level> kNames[] = {{"debug", Level::kDebug},
                                                              {"info", Level::kInfo},
                                                              {"warn", Level::kWarn},
                                                              {"error", Level::kError},
                                                              {"off", Level::kOff}};
  for (const auto& [n, l] : kNames) {
    if (n == name) {
      out = l;
      return true;
    }
  }
  return false;
}

void set_level(Level level) {
  const std::lock_guard lock(g_mu);
  g_level = level;
}

void set_module_level(std::string_view module, Level level) {
  const std::lock_guard lock(g_mu);
  g_modules[std::string(module)] = level;
}

bool enabled(std::string_view module, Level level) {
  const std::lock_guard lock(g_mu);
  const auto it = g_modules.find(module);
  const Level threshold = it == g_modules.end() ? g_level : it->second;
  return level >= threshold && level != Level::kOff;
}

void write(Level level, std::string_view module, std::string_view message,
           std::initializer_list<Field> fields) {
  if (!enabled(module, level)) return;
  nlohmann::ordered_json j;
  j["ts"] = now_rfc3339();
  j["level"] = level_name(level);
  j["module"] = std::string(module);
  j["msg"] = redact_identity_numbers(message);
  for (const auto& [k, v] : fields) j[std::string(k)] = redact_identity_numbers(v);
  const std::string line =
      j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
  const std::lock_guard lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace budstikke::log
