#include "adapters/mllp/mllp_client.hpp"

#include <array>
#include <functional>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"
#include "engine/runtime/loop_send.hpp"
#include "engine/runtime/tcp_client.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// One connection, plain or TLS, driven by async operations on a private io_context (or the
// loop it was made on) so that every step has a deadline (beast::tcp_stream's expiry).
struct MllpClient::Impl {
  Impl(asio::io_context* loop, const MllpClientSettings& s)
      : io(loop ? *loop : own),
        on_loop(loop != nullptr),
        conn(io, s.host, s.port,
             runtime::ClientTls{s.tls, s.ca_file, s.cert_file, s.key_file, s.verify}) {}
  asio::io_context own;  // used when the client is made without a loop
  asio::io_context& io;
  bool on_loop;
  runtime::TcpClientConnection conn;
  // The send in progress.
  const runtime::DeliveryJob* job = nullptr;
  runtime::Sink::Done done;
  std::string framed;
  std::unique_ptr<mllp::Deframer> deframer;
  std::vector<std::string> frames;
  bool too_large = false;
  std::array<char, 8192> buf{};

  void run() {
    io.restart();
    io.run();
  }
  void finish(runtime::DeliveryResult r) {
    job = nullptr;
    auto d = std::move(done);
    done = nullptr;
    d(std::move(r));
  }
};

MllpClient::MllpClient(MllpClientSettings s, asio::io_context* loop)
    : s_(std::move(s)), impl_(std::make_unique<Impl>(loop, s_)) {}

MllpClient::~MllpClient() = default;

size_t MllpClient::connects() const {
  return impl_->conn.connects();
}

void MllpClient::drop() {
  impl_->conn.drop();
}

bool MllpClient::healthy() {
  if (impl_->on_loop) return impl_->conn.open();
  bool ok = false;
  impl_->conn.connect(s_.connect_timeout, [&ok](const std::string& why) { ok = why.empty(); });
  impl_->run();
  return ok;
}

runtime::DeliveryResult MllpClient::send(const runtime::DeliveryJob& job) {
  if (impl_->on_loop) return runtime::send_on_loop(impl_->io, *this, job);
  runtime::DeliveryResult out;
  send_async(job, [&out](runtime::DeliveryResult r) { out = std::move(r); });
  impl_->run();
  return out;
}

void MllpClient::send_async(const runtime::DeliveryJob& job, Done done) {
  auto& im = *impl_;
  im.job = &job;
  im.done = std::move(done);
  if (im.conn.open()) return exchange();
  // Settings that cannot be loaded are the configuration's fault: retrying will not help.
  // The outcome is posted, so that `done` is never called inside send_async.
  if (!im.conn.tls_error().empty()) {
    asio::post(im.io, [this] {
      impl_->finish(runtime::DeliveryResult::permanent(impl_->conn.tls_error()));
    });
    return;
  }
  im.conn.connect(s_.connect_timeout, [this](const std::string& why) {
    if (why.empty()) return exchange();
    // Retriable, a refused certificate too: the receiver may be mid-rotation.
    impl_->finish(runtime::DeliveryResult::retriable(why));
  });
}

// Writes the frame, then reads until one complete frame (the ACK) arrives; both within
// ack_timeout.
void MllpClient::exchange() {
  auto& im = *impl_;
  im.framed = mllp::frame(im.job->payload);
  im.deframer = std::make_unique<mllp::Deframer>(s_.max_ack_bytes);
  im.frames.clear();
  im.too_large = false;
  im.conn.lowest().expires_after(s_.ack_timeout);
  im.conn.with_stream([this](auto& stream) {
    asio::async_write(stream, asio::buffer(impl_->framed),
                      [this](boost::system::error_code ec, size_t) {
                        if (ec) return acknowledged(ec);
                        read_more();
                      });
  });
}

// Reads until a frame is complete.
void MllpClient::read_more() {
  auto& im = *impl_;
  const auto on_read = [this](boost::system::error_code ec, size_t n) {
    Impl& self = *impl_;
    if (ec) return acknowledged(ec);
    if (self.deframer->feed(std::string_view(self.buf.data(), n), self.frames) ==
        mllp::Deframer::Status::kTooLarge) {
      self.too_large = true;
      return acknowledged({});
    }
    if (!self.frames.empty()) return acknowledged({});
    read_more();
  };
  im.conn.with_stream([&](auto& stream) { stream.async_read_some(asio::buffer(im.buf), on_read); });
}

// The exchange ended: the ACK, or why there is none, to an outcome.
void MllpClient::acknowledged(boost::system::error_code ec) {
  auto& im = *impl_;
  if (im.too_large) {
    drop();
    return im.finish(runtime::DeliveryResult::retriable(
        "acknowledgement larger than " + std::to_string(s_.max_ack_bytes) + " bytes"));
  }
  if (ec == beast::error::timeout) {
    drop();  // a late ACK must not be taken for the next message's
    return im.finish(runtime::DeliveryResult::retriable(
        "no acknowledgement within " + std::to_string(s_.ack_timeout.count()) + " ms"));
  }
  if (ec) {
    drop();
    // With TLS 1.3 a refused client certificate shows only now, as an alert on the read.
    if (ec.category() == asio::error::get_ssl_category())
      return im.finish(runtime::DeliveryResult::retriable("TLS error with " + im.conn.where() +
                                                          ": " + ec.message()));
    return im.finish(runtime::DeliveryResult::retriable(
        "connection lost before the acknowledgement: " + ec.message()));
  }
  im.finish(evaluate_ack(im.frames.front()));
}

// The ACK's verdict on the message sent.
runtime::DeliveryResult MllpClient::evaluate_ack(const std::string& ack) {
  const runtime::DeliveryJob& job = *impl_->job;
  auto parsed = hl7v2::Message::parse(ack);
  if (!std::holds_alternative<hl7v2::Message>(parsed)) {
    drop();
    return runtime::DeliveryResult::retriable(
        "unreadable acknowledgement: " + std::get<hl7v2::ParseError>(parsed).to_string(), ack);
  }
  const auto info = hl7v2::read_ack(std::get<hl7v2::Message>(parsed));
  if (!info) {
    drop();
    return runtime::DeliveryResult::retriable("acknowledgement without MSA", ack);
  }
  // MSA-2 must name the message we sent (our MSH-10), read from its MSH segment alone.
  const std::string sent_id = hl7v2::control_id_of(job.payload);
  if (!sent_id.empty() && info->acknowledged_id != sent_id) {
    drop();
    return runtime::DeliveryResult::retriable(
        "acknowledgement for '" + info->acknowledged_id + "', not for '" + sent_id + "'", ack);
  }
  if (info->code == "AA" || info->code == "CA") return runtime::DeliveryResult::ok(ack);
  const std::string text =
      info->text.empty() ? std::get<hl7v2::Message>(parsed).get("ERR-8").value_or("") : info->text;
  if (info->code == "AE" || info->code == "CE")
    return runtime::DeliveryResult::retriable("receiver answered " + info->code + ": " + text, ack);
  if (info->code == "AR" || info->code == "CR")
    return runtime::DeliveryResult::permanent("receiver answered " + info->code + ": " + text, ack);
  drop();
  return runtime::DeliveryResult::retriable("unknown acknowledgement code '" + info->code + "'",
                                            ack);
}

}  // namespace budstikke::adapters
