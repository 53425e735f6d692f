#pragma once
// HTTP delivery (Boost.Beast): POSTs the rendered bytes to the system's URL over a kept-open
// connection, with the idempotency key (Idempotency-Key), the job and event ids and the
// format as headers.
//
//   2xx                          -> ok
//   408, 425, 429, 5xx           -> retriable (the receiver may take it later)
//   other 4xx, 3xx               -> permanent (the receiver will not take it as it is)
//   connect/read timeout, reset  -> retriable (the connection is opened again)
//
// One HttpSink is one connection, used by one thread at a time.

#include <memory>
#include <string>

#include "engine/registry/registry.hpp"
#include "engine/runtime/sink.hpp"

namespace budstikke::adapters {

class HttpSink final : public runtime::Sink {
 public:
  explicit HttpSink(const registry::System& system);
  ~HttpSink() override;
  runtime::DeliveryResult send(const runtime::DeliveryJob& job) override;
  bool healthy() override;
  size_t connects() const { return connects_; }

 private:
  struct Impl;
  const registry::System& sys_;
  std::unique_ptr<Impl> impl_;
  size_t connects_ = 0;
};

}  // namespace budstikke::adapters
