#pragma once
// The engine's lifecycle: check Kafka, provision topics, start sources, wait for a signal,
// stop sources (they finish in-flight work), flush the producer, exit.

#include "engine/config/engine_config.hpp"
#include "engine/runtime/codec.hpp"
#include "engine/runtime/source.hpp"

namespace budstikke::runtime {

// Returns the process exit code.
int run_engine(const config::EngineConfig& cfg, const CodecRegistry& codecs,
               const SourceRegistry& sources);

// Applies the configured log levels.
void apply_logging(const config::EngineConfig& cfg);

}  // namespace budstikke::runtime
