#include "engine/runtime/engine.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "engine/bus/bus.hpp"
#include "engine/core/log.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::runtime {
namespace {

constexpr std::string_view kModule = "engine";
std::atomic<int> g_signal{0};

void on_signal(int sig) { g_signal.store(sig); }

}  // namespace

void apply_logging(const config::EngineConfig& cfg) {
  log::Level l = log::Level::kInfo;
  if (log::parse_level(cfg.log_level, l)) log::set_level(l);
  for (const auto& [m, lvl] : cfg.log_modules)
    if (log::parse_level(lvl, l)) log::set_module_level(m, l);
}

int run_engine(const config::EngineConfig& cfg) {
  apply_logging(cfg);
  if (cfg.schema_dir.empty() || !std::filesystem::is_directory(cfg.schema_dir)) {
    log::warn(kModule,
              "XSD validation is OFF: no schema directory (schemas.directory). e-meldinger are "
              "checked for well-formedness and structure only. See README, 'Official schemas'.",
              {{"schemas.directory", cfg.schema_dir}});
  }
  auto topics = bus::list_topics(cfg.kafka);
  if (!topics) {
    std::fprintf(stderr, "budstikke run: Kafka at %s is not reachable: %s\n",
                 cfg.kafka.bootstrap().c_str(), topics.error().message.c_str());
    return 1;
  }
  if (auto st = bus::ensure_topics(cfg.kafka, core_topics(cfg.topic_prefix)); !st) {
    std::fprintf(stderr, "budstikke run: cannot create topics: %s\n", st.error().message.c_str());
    return 1;
  }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  log::info(kModule, "engine running", {{"kafka", cfg.kafka.bootstrap()}});
  while (g_signal.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  log::info(kModule, "stopping", {{"signal", std::to_string(g_signal.load())}});
  return 0;
}

}  // namespace budstikke::runtime
