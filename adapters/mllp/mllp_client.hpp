#pragma once
// MLLP client for delivery to HL7 systems: keeps its connection open between messages,
// sends one framed message, waits for the ACK and checks it.
//
//   AA / CA with MSA-2 = our MSH-10   -> ok
//   AE / CE                           -> retriable (the receiver asks us to try again)
//   AR / CR                           -> permanent (the receiver will not take it)
//   no ACK within ack_timeout, connection lost, unreadable ACK -> retriable (the
//   connection is dropped and opened again on the next send)
//   TLS files that cannot be loaded -> permanent (the configuration's fault)
//
// One MllpClient is one connection with one message at a time; a system with concurrency N
// gets N clients. Made on an event loop (the delivery stage's), it sends with send_async on
// that loop; made without one, it runs its own loop inside send(). (send() on one made on a
// loop begins the send there and waits for it: from another thread only; see
// engine/runtime/loop_send.hpp.)

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include <boost/system/error_code.hpp>

#include "engine/runtime/sink.hpp"

namespace boost::asio {
class io_context;
}

namespace budstikke::adapters {

struct MllpClientSettings {
  std::string host = "127.0.0.1";
  int port = 0;
  std::chrono::milliseconds connect_timeout{5000};
  std::chrono::milliseconds ack_timeout{30000};
  size_t max_ack_bytes = 1 << 20;
  // MLLP over TLS (mllps://): trust ca_file (empty: the system's store), present
  // cert_file/key_file (mutual TLS), check the host name unless verify is false.
  bool tls = false;
  std::string ca_file = {};
  std::string cert_file = {};
  std::string key_file = {};
  bool verify = true;
};

class MllpClient final : public runtime::Sink {
 public:
  explicit MllpClient(MllpClientSettings s, boost::asio::io_context* loop = nullptr);
  ~MllpClient() override;
  runtime::DeliveryResult send(const runtime::DeliveryJob& job) override;
  void send_async(const runtime::DeliveryJob& job, Done done) override;
  // Made without a loop: connects if not connected. On a loop: whether it is connected.
  bool healthy() override;
  size_t connects() const;

 private:
  void exchange();
  void read_more();
  void acknowledged(boost::system::error_code ec);
  runtime::DeliveryResult evaluate_ack(const std::string& ack);
  void drop();
  struct Impl;
  MllpClientSettings s_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace budstikke::adapters
