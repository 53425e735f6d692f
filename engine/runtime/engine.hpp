#pragma once
// The engine's lifecycle: check Kafka, provision topics, start sources, wait for a signal,
// stop sources (they finish in-flight work), flush the producer, exit.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/config/engine_config.hpp"
#include "engine/runtime/codec.hpp"
#include "engine/runtime/source.hpp"

namespace budstikke::runtime {

// A stage the engine runs beside its sources (routes, delivery): started after the sources,
// stopped (in reverse order) after the sources stopped taking input.
class Stage {
 public:
  virtual ~Stage() = default;
  virtual std::string name() const = 0;
  virtual Status start() = 0;
  virtual void stop() = 0;
  // What the admin API shows of it (/api/routes).
  virtual nlohmann::json status() const { return nlohmann::json::object(); }
};

// What the admin API sees of the running engine and asks of it. Thread-safe.
class EngineControl {
 public:
  // Asks the main loop to reload the stages (as SIGHUP does) and waits for the outcome:
  // {"applied": bool, "errors": "..."}; {"applied": false, "errors": "timed out"} after
  // `timeout`.
  nlohmann::json reload(std::chrono::milliseconds timeout);
  // Stages running (routes loaded) and their status.
  bool stages_running() const;
  nlohmann::json status() const;

  // The main loop's side.
  bool take_reload_request();
  void reload_finished(bool applied, const std::string& errors);
  void set_stages(bool running, nlohmann::json status);
  // Shutting down: reload requests are answered at once, never again applied.
  void closing();

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool requested_ = false;
  uint64_t finished_ = 0;  // reloads finished so far
  nlohmann::json last_reload_ = nullptr;
  bool running_ = false;
  bool closing_ = false;
  nlohmann::json status_ = nlohmann::json::object();
};

// Services beside the engine (the admin API): started before the sources, stopped last.
using ServiceBuilder = std::function<Result<std::vector<std::unique_ptr<Stage>>>(
    EngineControl& control, bus::Producer& producer)>;

// Builds the stages once Kafka is reachable and the engine's producer exists.
using StageBuilder =
    std::function<Result<std::vector<std::unique_ptr<Stage>>>(bus::Producer& producer)>;

// Asks the running engine to stop, as SIGTERM does, and to exit with 1: for a stage that
// cannot go on (it was fenced by another engine with its kafka.instance). Thread-safe.
void request_engine_stop(const std::string& why);
// Why a fenced stage stops: another engine joined with this engine's kafka.instance (`where`
// names the stage, e.g. "route adt-fanout").
std::string instance_taken(const std::string& instance, const std::string& where);

// Returns the process exit code.
int run_engine(const config::EngineConfig& cfg, const CodecRegistry& codecs,
               const SourceRegistry& sources, const StageBuilder& stages = {},
               const ServiceBuilder& services = {});

// Applies the configured log levels.
void apply_logging(const config::EngineConfig& cfg);

}  // namespace budstikke::runtime
