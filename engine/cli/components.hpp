#pragma once
// The explicit registry of components the budstikke binary knows: codecs and source types.
// (DESIGN.md: factories are registered here, by hand, not by static initialisers.)

#include <memory>
#include <string>

#include "adapters/emelding/schema_set.hpp"
#include "engine/config/engine_config.hpp"
#include "engine/delivery/delivery.hpp"
#include "engine/runtime/codec.hpp"
#include "engine/runtime/source.hpp"

namespace budstikke::cli {

runtime::SourceRegistry source_registry();

// Loads the XSDs from `dir`. Without them (empty or missing) returns null and prints the
// warning that XSD validation is off.
std::shared_ptr<const emelding::SchemaSet> load_schemas(const std::string& dir);

// Connectors from the adapters: http, https, mllp, mllps (TLS, with mutual TLS).
void add_connector_sinks(delivery::SinkFactories& f);

runtime::CodecRegistry codec_registry(std::shared_ptr<const emelding::SchemaSet> schemas);

// Loads engine.yaml and validates it, sources included. Prints diagnostics to stderr.
bool load_config(const std::string& file, config::EngineConfig& out, config::Diagnostics& d);

}  // namespace budstikke::cli
