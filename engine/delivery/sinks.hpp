#pragma once
// Connectors the engine itself provides: file (write to a temporary name, fsync, rename;
// the job id names the file, so a redelivery rewrites the same file) and kafka (produce to
// the system's topic with the job's key and headers, acknowledged by Kafka; it also sends on
// the delivery stage's event loops, without a thread per connection). HTTP(S) and MLLP come
// from their adapters and are registered by the CLI.

#include <string>

#include "engine/bus/bus.hpp"
#include "engine/delivery/delivery.hpp"

namespace budstikke::delivery {

// Kafka connector topics get the engine's topic prefix, like every other topic.
void add_builtin_sinks(SinkFactories& f, bus::Producer& producer, const std::string& prefix);

}  // namespace budstikke::delivery
