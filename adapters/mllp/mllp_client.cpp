#include "adapters/mllp/mllp_client.hpp"

#include <functional>
#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// One connection, plain or TLS, driven by async operations on a private io_context so that
// every step has a deadline (beast::tcp_stream's expiry).
struct MllpClient::Impl {
  asio::io_context io;
  std::unique_ptr<ssl::context> tls;
  std::string tls_error;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;

  bool open() const { return plain || secure; }
  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }
  void run() {
    io.restart();
    io.run();
  }
  template <class F>
  void with_stream(F&& f) {
    if (secure)
      f(*secure);
    else
      f(*plain);
  }
};

namespace {

std::unique_ptr<ssl::context> make_tls(const MllpClientSettings& s, std::string& why) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (s.ca_file.empty())
    ctx->set_default_verify_paths(ec);
  else
    ctx->load_verify_file(s.ca_file, ec);
  if (ec) {
    why = "TLS: cannot load the CA file '" + s.ca_file + "': " + ec.message();
    return nullptr;
  }
  if (!s.cert_file.empty()) {
    ctx->use_certificate_chain_file(s.cert_file, ec);
    if (!ec) ctx->use_private_key_file(s.key_file, ssl::context::pem, ec);
    if (ec) {
      why = "TLS: cannot load the client certificate '" + s.cert_file + "' / key '" + s.key_file +
            "': " + ec.message();
      return nullptr;
    }
  }
  ctx->set_verify_mode(s.verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

}  // namespace

MllpClient::MllpClient(MllpClientSettings s) : s_(std::move(s)), impl_(std::make_unique<Impl>()) {
  if (s_.tls) impl_->tls = make_tls(s_, impl_->tls_error);
}

MllpClient::~MllpClient() {
  drop();
}

void MllpClient::drop() {
  if (!impl_->open()) return;
  boost::system::error_code ec;
  impl_->lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  impl_->lowest().socket().close(ec);
  impl_->plain.reset();
  impl_->secure.reset();
}

bool MllpClient::ensure_connected(std::string& why) {
  auto& I = *impl_;
  if (I.open()) return true;
  if (s_.tls && !I.tls) {
    why = I.tls_error;
    return false;
  }
  const std::string where = s_.host + ":" + std::to_string(s_.port);
  boost::system::error_code ec;
  tcp::resolver::results_type endpoints;
  tcp::resolver resolver(I.io);
  resolver.async_resolve(s_.host, std::to_string(s_.port),
                         [&](boost::system::error_code e, tcp::resolver::results_type r) {
                           ec = e;
                           endpoints = std::move(r);
                         });
  I.run();
  if (ec) {
    why = "cannot resolve " + s_.host + ": " + ec.message();
    return false;
  }
  if (s_.tls)
    I.secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(I.io, *I.tls);
  else
    I.plain = std::make_unique<beast::tcp_stream>(I.io);
  I.lowest().expires_after(s_.connect_timeout);
  I.lowest().async_connect(endpoints,
                           [&](boost::system::error_code e, const tcp::endpoint&) { ec = e; });
  I.run();
  if (ec) {
    drop();
    why = "cannot connect to " + where + ": " + ec.message();
    return false;
  }
  I.lowest().socket().set_option(tcp::no_delay(true), ec);
  if (s_.tls) {
    boost::system::error_code not_ip;
    (void)asio::ip::make_address(s_.host, not_ip);
    if (not_ip)
      SSL_ctrl(I.secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
               const_cast<char*>(s_.host.c_str()));
    if (s_.verify) I.secure->set_verify_callback(ssl::host_name_verification(s_.host));
    I.lowest().expires_after(s_.connect_timeout);
    I.secure->async_handshake(ssl::stream_base::client,
                              [&](boost::system::error_code e) { ec = e; });
    I.run();
    if (ec) {
      drop();
      why = "TLS handshake with " + where + " failed: " + ec.message();
      return false;
    }
  }
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
  auto& I = *impl_;
  // Write the frame, then read until one complete frame (the ACK) arrives; both within
  // ack_timeout.
  const std::string framed = mllp::frame(job.payload);
  mllp::Deframer deframer(s_.max_ack_bytes);
  std::vector<std::string> frames;
  boost::system::error_code ec;
  bool too_large = false;
  char buf[8192];
  I.lowest().expires_after(s_.ack_timeout);
  I.with_stream([&](auto& stream) {
    asio::async_write(stream, asio::buffer(framed), [&](boost::system::error_code e, size_t) {
      ec = e;
      if (e) return;
      // Read until a frame is complete.
      std::function<void()> read_more;
      read_more = [&] {
        stream.async_read_some(asio::buffer(buf), [&](boost::system::error_code e2, size_t n) {
          if (e2) {
            ec = e2;
            return;
          }
          if (deframer.feed(std::string_view(buf, n), frames) ==
              mllp::Deframer::Status::kTooLarge) {
            too_large = true;
            return;
          }
          if (frames.empty()) read_more();
        });
      };
      read_more();
    });
  });
  I.run();
  if (too_large) {
    drop();
    return runtime::DeliveryResult::retriable("acknowledgement larger than " +
                                              std::to_string(s_.max_ack_bytes) + " bytes");
  }
  if (ec == beast::error::timeout) {
    drop();  // a late ACK must not be taken for the next message's
    return runtime::DeliveryResult::retriable("no acknowledgement within " +
                                              std::to_string(s_.ack_timeout.count()) + " ms");
  }
  if (ec) {
    drop();
    // With TLS 1.3 a refused client certificate shows only now, as an alert on the read.
    if (ec.category() == asio::error::get_ssl_category())
      return runtime::DeliveryResult::retriable("TLS error with " + s_.host + ":" +
                                                std::to_string(s_.port) + ": " + ec.message());
    return runtime::DeliveryResult::retriable("connection lost before the acknowledgement: " +
                                              ec.message());
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
