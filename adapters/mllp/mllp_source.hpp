#pragma once
// MLLP listener source (Boost.Asio): HL7 v2 over TCP with MLLP framing.
//
// Per connection, frames are handled in order: each message goes to the ingest stage and is
// acknowledged only after Kafka has it (AA, or CA in enhanced mode), AR with an ERR segment
// and the reason when it is rejected, AE when Kafka did not take it (the sender resends).
// MSH-15 decides in enhanced mode whether an accept acknowledgement is sent at all.
// A read timeout closes idle connections; frames above max_message_bytes are refused with
// AR and the connection is closed.
//
// Threading: an io_context run by `threads` threads, a strand per connection; ingest
// callbacks are posted back to the connection. stop() closes the listener, waits (30 s at
// most) for messages in flight, then closes connections.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/source.hpp"

namespace budstikke::adapters {

struct MllpSourceSettings {
  std::string name;
  std::string host = "127.0.0.1";
  int port = 6661;  // 0: any free port
  int64_t max_message_bytes = 16 << 20;
  int read_timeout_ms = 300000;  // idle connections are closed after this
  int threads = 2;
  // TLS: a server certificate and key turn it on; a CA file requires client certificates.
  std::string tls_cert_file = {};
  std::string tls_key_file = {};
  std::string tls_ca_file = {};
};

class MllpSource final : public runtime::Source {
 public:
  MllpSource(MllpSourceSettings s, runtime::Ingest& ingest);
  ~MllpSource() override;
  const std::string& name() const override { return s_.name; }
  Status start() override;
  void stop() override;
  int bound_port() const { return bound_port_.load(); }

  struct Impl;

 private:
  MllpSourceSettings s_;
  runtime::Ingest& ingest_;
  std::shared_ptr<Impl> impl_;
  std::atomic<int> bound_port_{0};
};

runtime::SourceFactory mllp_source_factory();

}  // namespace budstikke::adapters
