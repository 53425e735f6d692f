#pragma once
// HTTP POST source (Boost.Beast): POST <path> with a message as the body.
//
//   202 Accepted  {"status":"accepted","event_ids":[...],"message_id":"..."}
//                 only after Kafka has acknowledged the canonical event(s)
//   400           not well-formed (T01), with the reason
//   422           rejected (T02 invalid, T10 unsupported, E10 no message id), with the reason
//                 and whether a negative AppRec was queued for the sender
//   413           body larger than max_body_bytes
//   503           Kafka did not take the records: try again (Retry-After)
//   404 / 405     other paths / methods
//
// Threading: an io_context run by `threads` threads; each connection is a chain of async
// operations. Ingest callbacks (on the producer thread) post the response back to the
// connection. Lifetime: stop() closes the acceptor, lets in-flight requests finish (up to
// 30 s), then stops the io_context.

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "engine/runtime/source.hpp"

namespace budstikke::adapters {

struct HttpSourceSettings {
  std::string name;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (tests); see bound_port()
  std::string path = "/ingest";
  int64_t max_body_bytes = 20 << 20;
  bool validate = true;
  int threads = 2;
  int read_timeout_ms = 30000;
};

class HttpSource final : public runtime::Source {
 public:
  HttpSource(HttpSourceSettings s, runtime::Ingest& ingest);
  ~HttpSource() override;
  const std::string& name() const override { return s_.name; }
  Status start() override;
  void stop() override;
  int bound_port() const { return bound_port_.load(); }

  struct Impl;

 private:
  HttpSourceSettings s_;
  runtime::Ingest& ingest_;
  std::shared_ptr<Impl> impl_;
  std::atomic<int> bound_port_{0};
};

runtime::SourceFactory http_source_factory();

}  // namespace budstikke::adapters
