#include "adapters/mllp/mllp_client.hpp"

#include <poll.h>

#include <utility>

#include <boost/asio.hpp>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct MllpClient::Impl {
  asio::io_context io;
  std::unique_ptr<tcp::socket> socket;
};

MllpClient::MllpClient(MllpClientSettings s) : s_(std::move(s)), impl_(std::make_unique<Impl>()) {}

MllpClient::~MllpClient() {
  drop();
}

void MllpClient::drop() {
  if (!impl_->socket) return;
  boost::system::error_code ec;
  impl_->socket->close(ec);
  impl_->socket.reset();
}

bool MllpClient::ensure_connected(std::string& why) {
  if (impl_->socket) return true;
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(s_.host, ec);
  if (ec) {
    why = "bad host '" + s_.host + "'";
    return false;
  }
  auto sock = std::make_unique<tcp::socket>(impl_->io);
  sock->open(tcp::v4(), ec);
  if (!ec) sock->non_blocking(true, ec);
  if (!ec) {
    sock->connect(tcp::endpoint(addr, static_cast<unsigned short>(s_.port)), ec);
    if (ec == asio::error::would_block || ec == asio::error::in_progress) {
      pollfd p{sock->native_handle(), POLLOUT, 0};
      const int r = ::poll(&p, 1, static_cast<int>(s_.connect_timeout.count()));
      ec = r > 0 ? boost::system::error_code() : asio::error::timed_out;
      if (!ec) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(sock->native_handle(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) ec = boost::system::error_code(err, boost::system::system_category());
      }
    }
  }
  if (ec) {
    why = "cannot connect to " + s_.host + ":" + std::to_string(s_.port) + ": " + ec.message();
    return false;
  }
  sock->set_option(tcp::no_delay(true), ec);
  impl_->socket = std::move(sock);
  ++connects_;
  return true;
}

bool MllpClient::healthy() {
  std::string why;
  return ensure_connected(why);
}

runtime::DeliveryResult MllpClient::send(const runtime::DeliveryJob& job) {
  std::string why;
  if (!ensure_connected(why)) return runtime::DeliveryResult::retriable(why);
  auto& sock = *impl_->socket;
  // Write the whole frame (non-blocking socket: wait for room with poll).
  const std::string framed = mllp::frame(job.payload);
  size_t off = 0;
  const auto deadline = std::chrono::steady_clock::now() + s_.ack_timeout;
  while (off < framed.size()) {
    boost::system::error_code ec;
    const size_t n = sock.write_some(asio::buffer(framed.data() + off, framed.size() - off), ec);
    if (ec == asio::error::would_block) {
      pollfd p{sock.native_handle(), POLLOUT, 0};
      ::poll(&p, 1, 100);
      if (std::chrono::steady_clock::now() > deadline) {
        drop();
        return runtime::DeliveryResult::retriable("timed out sending to " + s_.host);
      }
      continue;
    }
    if (ec) {
      drop();
      return runtime::DeliveryResult::retriable("connection lost while sending: " + ec.message());
    }
    off += n;
  }
  // Read until one complete frame (the ACK) arrives.
  mllp::Deframer deframer(s_.max_ack_bytes);
  std::vector<std::string> frames;
  char buf[8192];
  while (frames.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      drop();  // a late ACK must not be taken for the next message's
      return runtime::DeliveryResult::retriable("no acknowledgement within " +
                                                std::to_string(s_.ack_timeout.count()) + " ms");
    }
    pollfd p{sock.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 200))) <= 0) continue;
    boost::system::error_code ec;
    const size_t n = sock.read_some(asio::buffer(buf), ec);
    if (ec == asio::error::would_block) continue;
    if (ec) {
      drop();
      return runtime::DeliveryResult::retriable("connection lost before the acknowledgement: " +
                                                ec.message());
    }
    if (deframer.feed(std::string_view(buf, n), frames) == mllp::Deframer::Status::kTooLarge) {
      drop();
      return runtime::DeliveryResult::retriable("acknowledgement larger than " +
                                                std::to_string(s_.max_ack_bytes) + " bytes");
    }
  }
  const std::string& ack = frames.front();
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
  // MSA-2 must name the message we sent (our MSH-10).
  std::string sent_id;
  if (auto sent = hl7v2::Message::parse(job.payload); std::holds_alternative<hl7v2::Message>(sent))
    sent_id = std::get<hl7v2::Message>(sent).get("MSH-10").value_or("");
  if (!sent_id.empty() && info->acknowledged_id != sent_id) {
    drop();
    return runtime::DeliveryResult::retriable(
        "acknowledgement for '" + info->acknowledged_id + "', not for '" + sent_id + "'", ack);
  }
  const std::string text =
      info->text.empty() ? std::get<hl7v2::Message>(parsed).get("ERR-8").value_or("") : info->text;
  if (info->code == "AA" || info->code == "CA") return runtime::DeliveryResult::ok(ack);
  if (info->code == "AE" || info->code == "CE")
    return runtime::DeliveryResult::retriable("receiver answered " + info->code + ": " + text, ack);
  if (info->code == "AR" || info->code == "CR")
    return runtime::DeliveryResult::permanent("receiver answered " + info->code + ": " + text, ack);
  drop();
  return runtime::DeliveryResult::retriable("unknown acknowledgement code '" + info->code + "'",
                                            ack);
}

}  // namespace budstikke::adapters
