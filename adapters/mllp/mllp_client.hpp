#pragma once
// MLLP client for delivery to HL7 systems: keeps its connection open between messages,
// sends one framed message, waits for the ACK and checks it.
//
//   AA / CA with MSA-2 = our MSH-10   -> ok
//   AE / CE                           -> retriable (the receiver asks us to try again)
//   AR / CR                           -> permanent (the receiver will not take it)
//   no ACK within ack_timeout, connection lost, unreadable ACK -> retriable (the
//   connection is dropped and opened again on the next send)
//
// One MllpClient is one connection and is used by one thread at a time; a sink with
// concurrency N holds N clients.

#include <chrono>
#include <memory>
#include <string>

#include "engine/runtime/sink.hpp"

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
  explicit MllpClient(MllpClientSettings s);
  ~MllpClient() override;
  runtime::DeliveryResult send(const runtime::DeliveryJob& job) override;
  bool healthy() override;
  size_t connects() const { return connects_; }

 private:
  bool ensure_connected(std::string& why);
  void drop();
  struct Impl;
  MllpClientSettings s_;
  std::unique_ptr<Impl> impl_;
  size_t connects_ = 0;
};

}  // namespace budstikke::adapters
