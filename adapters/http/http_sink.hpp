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
// One HttpSink is one connection with one request at a time. Made on an event loop (the
// delivery stage's), it sends with send_async on that loop; made without one, it runs its
// own loop inside send(). (send() on one made on a loop begins the send there and waits for
// it: from another thread only; see engine/runtime/loop_send.hpp.)

#include <memory>
#include <string>

#include <boost/system/error_code.hpp>

#include "engine/registry/registry.hpp"
#include "engine/runtime/sink.hpp"

namespace boost::asio {
class io_context;
}

namespace budstikke::adapters {

class HttpSink final : public runtime::Sink {
 public:
  explicit HttpSink(const registry::System& system, boost::asio::io_context* loop = nullptr);
  ~HttpSink() override;
  runtime::DeliveryResult send(const runtime::DeliveryJob& job) override;
  void send_async(const runtime::DeliveryJob& job, Done done) override;
  bool healthy() override;
  size_t connects() const;

 private:
  struct Impl;
  void attempt();
  void exchange();
  void answered(boost::system::error_code ec);
  const registry::System& sys_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace budstikke::adapters
