#include "engine/cli/components.hpp"

#include <cstdio>
#include <filesystem>

#include "adapters/emelding/emelding_codec.hpp"
#include "adapters/file/folder_source.hpp"
#include "adapters/hl7v2/canonical.hpp"
#include "adapters/http/http_sink.hpp"
#include "adapters/http/http_source.hpp"
#include "adapters/mllp/mllp_client.hpp"
#include "adapters/mllp/mllp_source.hpp"

namespace budstikke::cli {

runtime::SourceRegistry source_registry() {
  runtime::SourceRegistry r;
  r.add(adapters::folder_source_factory());
  r.add(adapters::http_source_factory());
  r.add(adapters::mllp_source_factory());
  return r;
}

std::shared_ptr<const emelding::SchemaSet> load_schemas(const std::string& dir) {
  if (dir.empty() || !std::filesystem::is_directory(dir)) {
    std::fprintf(stderr,
                 "budstikke: WARNING: XSD validation is OFF: schema directory '%s' not found. "
                 "e-meldinger are checked for well-formedness and structure only. See README, "
                 "'Official schemas'.\n",
                 dir.c_str());
    return nullptr;
  }
  auto set = emelding::SchemaSet::load(dir);
  if (!set) {
    std::fprintf(stderr, "budstikke: WARNING: XSD validation is OFF: %s\n",
                 set.error().message.c_str());
    return nullptr;
  }
  return *set;
}

runtime::CodecRegistry codec_registry(std::shared_ptr<const emelding::SchemaSet> schemas) {
  runtime::CodecRegistry r;
  r.add(std::make_shared<hl7v2::Hl7Codec>());
  r.add(std::make_shared<emelding::EmeldingCodec>(std::move(schemas)));
  return r;
}

bool load_config(const std::string& file, config::EngineConfig& out, config::Diagnostics& d) {
  out = config::load_engine_config(file, d);
  if (!d.has_errors()) source_registry().validate(out.sources, file, d);
  std::fputs(d.format_all().c_str(), stderr);
  return !d.has_errors();
}

namespace {

adapters::MllpClientSettings mllp_settings(const registry::System& s) {
  adapters::MllpClientSettings m;
  m.host = s.connector.host;
  m.port = s.connector.port;
  m.connect_timeout = std::chrono::milliseconds(s.connector.connect_timeout_ms);
  m.ack_timeout = std::chrono::milliseconds(s.connector.timeout_ms);
  m.tls = s.connector.tls_enabled();
  m.ca_file = s.connector.tls.ca_file;
  m.cert_file = s.connector.tls.cert_file;
  m.key_file = s.connector.tls.key_file;
  m.verify = s.connector.tls.verify;
  return m;
}

}  // namespace

void add_connector_sinks(delivery::SinkFactories& f) {
  using SinkResult = Result<std::unique_ptr<runtime::Sink>>;
  for (const char* scheme : {"http", "https"}) {
    f.add(scheme, [](const registry::System& s) -> SinkResult {
      return std::unique_ptr<runtime::Sink>(std::make_unique<adapters::HttpSink>(s));
    });
    f.add_on_loop(
        scheme, [](const registry::System& s, boost::asio::io_context& loop) -> SinkResult {
          return std::unique_ptr<runtime::Sink>(std::make_unique<adapters::HttpSink>(s, &loop));
        });
  }
  for (const char* scheme : {"mllp", "mllps"}) {
    f.add(scheme, [](const registry::System& s) -> SinkResult {
      return std::unique_ptr<runtime::Sink>(
          std::make_unique<adapters::MllpClient>(mllp_settings(s)));
    });
    f.add_on_loop(scheme,
                  [](const registry::System& s, boost::asio::io_context& loop) -> SinkResult {
                    return std::unique_ptr<runtime::Sink>(
                        std::make_unique<adapters::MllpClient>(mllp_settings(s), &loop));
                  });
  }
}

}  // namespace budstikke::cli
