#pragma once
// The engine's lifecycle: check Kafka, provision topics, start sources, wait for a signal,
// stop sources (they finish in-flight work), flush the producer, exit.

#include <functional>
#include <memory>
#include <string>
#include <vector>

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
};

// Builds the stages once Kafka is reachable and the engine's producer exists.
using StageBuilder =
    std::function<Result<std::vector<std::unique_ptr<Stage>>>(bus::Producer& producer)>;

// Returns the process exit code.
int run_engine(const config::EngineConfig& cfg, const CodecRegistry& codecs,
               const SourceRegistry& sources, const StageBuilder& stages = {});

// Applies the configured log levels.
void apply_logging(const config::EngineConfig& cfg);

}  // namespace budstikke::runtime
