#include "engine/runtime/engine.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "engine/bus/bus.hpp"
#include "engine/core/log.hpp"
#include "engine/core/time.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::runtime {
namespace {

constexpr std::string_view kModule = "engine";
std::atomic<int> g_signal{0};
std::atomic<bool> g_reload{false};
std::atomic<bool> g_stop_requested{false};

void on_signal(int sig) {
  g_signal.store(sig);
}

void on_hangup(int) {
  g_reload.store(true);
}

std::string stage_names(const std::vector<std::unique_ptr<Stage>>& stages) {
  std::string names;
  for (const auto& s : stages) names += (names.empty() ? "" : ", ") + s->name();
  return names;
}

// SIGHUP: builds the stages again from the files on disk. Refused (the running stages stay)
// when the new configuration has errors. Otherwise the running stages stop gracefully (a
// route finishes its transaction, delivery finishes its sends and commits them) and the new
// ones start on the same consumer groups, so nothing is dropped or delivered twice; input
// meanwhile waits on Kafka.
nlohmann::json stages_status(const std::vector<std::unique_ptr<Stage>>& stages) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& s : stages) {
    nlohmann::json j = s->status();
    j["stage"] = s->name();
    out.push_back(std::move(j));
  }
  return out;
}

// Returns the errors when refused, empty when applied.
std::string reload(const StageBuilder& build, bus::Producer& producer,
                   std::vector<std::unique_ptr<Stage>>& stages, const char* why) {
  log::info(kModule, std::string("reload requested (") + why + ")");
  auto built = build(producer);
  if (!built) {
    log::error(kModule, "reload refused; the running configuration stays",
               {{"errors", built.error().message}});
    std::fprintf(stderr, "budstikke: reload refused; the running configuration stays:\n%s\n",
                 built.error().message.c_str());
    return built.error().message;
  }
  for (auto it = stages.rbegin(); it != stages.rend(); ++it) (*it)->stop();
  stages = std::move(*built);
  for (auto& st : stages) {
    for (;;) {
      auto s = st->start();
      if (s) break;
      log::error(kModule, "stage did not start after reload; retrying",
                 {{"stage", st->name()}, {"error", s.error().message}});
      if (g_signal.load() != 0) return "";
      std::this_thread::sleep_for(std::chrono::seconds(5));
    }
  }
  log::info(kModule, "reload applied", {{"stages", stage_names(stages)}});
  return "";
}

}  // namespace

std::string instance_taken(const std::string& instance, const std::string& where) {
  return "another engine runs as kafka.instance '" + instance + "' (" + where +
         "); give each engine its own kafka.instance";
}

void request_engine_stop(const std::string& why) {
  if (g_stop_requested.exchange(true)) return;
  log::error(kModule, "the engine stops", {{"reason", why}});
}

nlohmann::json EngineControl::reload(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const uint64_t before = finished_;
  if (closing_) return {{"applied", false}, {"errors", "the engine is shutting down"}};
  requested_ = true;
  if (!cv_.wait_for(lock, timeout, [&] { return finished_ > before || closing_; }))
    return {{"applied", false}, {"errors", "timed out waiting for the reload"}};
  if (finished_ == before) return {{"applied", false}, {"errors", "the engine is shutting down"}};
  return last_reload_;
}

bool EngineControl::stages_running() const {
  const std::lock_guard lock(mu_);
  return running_;
}

nlohmann::json EngineControl::status() const {
  const std::lock_guard lock(mu_);
  nlohmann::json j = {{"running", running_}, {"stages", status_}};
  if (!last_reload_.is_null()) j["last_reload"] = last_reload_;
  return j;
}

bool EngineControl::take_reload_request() {
  const std::lock_guard lock(mu_);
  const bool r = requested_;
  requested_ = false;
  return r;
}

void EngineControl::reload_finished(bool applied, const std::string& errors) {
  {
    const std::lock_guard lock(mu_);
    ++finished_;
    last_reload_ = {{"applied", applied}, {"at", now_rfc3339()}};
    if (!errors.empty()) last_reload_["errors"] = errors;
  }
  cv_.notify_all();
}

void EngineControl::set_stages(bool running, nlohmann::json status) {
  const std::lock_guard lock(mu_);
  running_ = running;
  status_ = std::move(status);
}

void EngineControl::closing() {
  {
    const std::lock_guard lock(mu_);
    closing_ = true;
  }
  cv_.notify_all();
}

void apply_logging(const config::EngineConfig& cfg) {
  log::Level l = log::Level::kInfo;
  if (log::parse_level(cfg.log_level, l)) log::set_level(l);
  for (const auto& [m, lvl] : cfg.log_modules)
    if (log::parse_level(lvl, l)) log::set_module_level(m, l);
}

int run_engine(const config::EngineConfig& cfg, const CodecRegistry& codecs,
               const SourceRegistry& sources, const StageBuilder& build_stages,
               const ServiceBuilder& build_services) {
  apply_logging(cfg);
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
  auto producer = bus::Producer::create(cfg.kafka.for_role("engine"));
  if (!producer) {
    std::fprintf(stderr, "budstikke run: %s\n", producer.error().message.c_str());
    return 1;
  }
  IngestSettings is;
  is.topic_prefix = cfg.topic_prefix;
  is.key_secret = cfg.key_secret;
  is.claim_check_dir = cfg.claim_check_dir;
  is.claim_check_threshold = static_cast<size_t>(cfg.claim_check_threshold);
  is.instance = cfg.instance;
  Ingest ingest(**producer, codecs, is);
  SourceContext ctx{ingest, cfg};
  auto created = sources.create_all(cfg.sources, ctx);
  if (!created) {
    std::fprintf(stderr, "budstikke run: %s\n", created.error().message.c_str());
    return 2;
  }
  std::vector<std::unique_ptr<Stage>> stages;
  if (build_stages) {
    auto built = build_stages(**producer);
    if (!built) {
      std::fprintf(stderr, "budstikke run: %s\n", built.error().message.c_str());
      return 2;
    }
    stages = std::move(*built);
  }
  EngineControl control;
  std::vector<std::unique_ptr<Stage>> services;
  if (build_services) {
    auto built = build_services(control, **producer);
    if (!built) {
      std::fprintf(stderr, "budstikke run: %s\n", built.error().message.c_str());
      return 2;
    }
    services = std::move(*built);
  }
  std::vector<Source*> started;
  std::vector<Stage*> running;
  std::vector<Stage*> running_services;
  int rc = 0;
  for (auto& sv : services) {
    if (auto s = sv->start(); !s) {
      std::fprintf(stderr, "budstikke run: %s: %s\n", sv->name().c_str(),
                   s.error().message.c_str());
      rc = 1;
      break;
    }
    running_services.push_back(sv.get());
  }
  for (auto& st : stages) {
    if (rc != 0) break;
    if (auto s = st->start(); !s) {
      std::fprintf(stderr, "budstikke run: %s: %s\n", st->name().c_str(),
                   s.error().message.c_str());
      rc = 1;
      break;
    }
    running.push_back(st.get());
  }
  for (auto& s : *created) {
    if (rc != 0) break;
    if (auto st = s->start(); !st) {
      std::fprintf(stderr, "budstikke run: %s\n", st.error().message.c_str());
      rc = 1;
      break;
    }
    started.push_back(s.get());
  }
  // signal() fails only for an invalid signal number or SIG_IGN/SIG_DFL misuse.
  (void)std::signal(SIGINT, on_signal);
  (void)std::signal(SIGTERM, on_signal);
  (void)std::signal(SIGHUP, on_hangup);
  if (rc == 0) {
    std::string names;
    for (auto* s : started) names += (names.empty() ? "" : ", ") + s->name();
    if (!stages.empty()) names += "; stages: " + stage_names(stages);
    log::info(kModule, "engine running",
              {{"kafka", cfg.kafka.bootstrap()}, {"instance", cfg.instance}, {"sources", names}});
    std::printf("budstikke: running on %s with sources: %s\n", cfg.kafka.bootstrap().c_str(),
                names.empty() ? "(none)" : names.c_str());
    std::fflush(stdout);
    control.set_stages(true, stages_status(stages));
    while (g_signal.load() == 0 && !g_stop_requested.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const bool by_signal = g_reload.exchange(false);
      const bool by_api = control.take_reload_request();
      if (by_signal || by_api) {
        if (!build_stages) {
          control.reload_finished(false, "this engine runs no routes");
          continue;
        }
        const std::string errors =
            reload(build_stages, **producer, stages, by_api ? "admin API" : "SIGHUP");
        running.clear();
        for (auto& st : stages) running.push_back(st.get());
        control.set_stages(true, stages_status(stages));
        control.reload_finished(errors.empty(), errors);
      }
    }
    control.set_stages(false, stages_status(stages));
    control.closing();
    log::info(kModule, "stopping", {{"signal", std::to_string(g_signal.load())}});
    if (g_stop_requested.load()) rc = 1;
  }
  // Graceful: sources stop taking input and finish what is in flight; then flush.
  for (auto it = started.rbegin(); it != started.rend(); ++it) (*it)->stop();
  for (auto it = running.rbegin(); it != running.rend(); ++it) (*it)->stop();
  for (auto it = running_services.rbegin(); it != running_services.rend(); ++it) (*it)->stop();
  if (auto st = (*producer)->flush(std::chrono::seconds(30)); !st) {
    log::error(kModule, "records not confirmed by Kafka at shutdown",
               {{"error", st.error().message}});
    rc = rc ? rc : 1;
  }
  const auto& c = ingest.counters();
  log::info(kModule, "stopped",
            {{"received", std::to_string(c.received.load())},
             {"accepted", std::to_string(c.accepted.load())},
             {"rejected", std::to_string(c.rejected.load())},
             {"failed", std::to_string(c.failed.load())}});
  return rc;
}

}  // namespace budstikke::runtime
