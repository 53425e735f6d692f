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

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;

// One connection, plain or TLS, driven by async operations on a private io_context so that
// every step has a deadline (beast::tcp_stream's expiry).
struct MllpClient::Impl {
  explicit Impl(asio::io_context* loop) : io(loop ? *loop : own), on_loop(loop != nullptr) {}
  asio::io_context own;  // used when the client is made without a loop
  asio::io_context& io;
  bool on_loop;
  std::unique_ptr<ssl::context> tls;
  std::string tls_error;
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  tcp::resolver resolver{io};
  // The send in progress.
  const runtime::DeliveryJob* job = nullptr;
  runtime::Sink::Done done;
  std::string framed;
  std::unique_ptr<mllp::Deframer> deframer;
  std::vector<std::string> frames;
  bool too_large = false;
  std::array<char, 8192> buf{};

  bool open() const { return plain || secure; }
  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }
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

MllpClient::MllpClient(MllpClientSettings s, asio::io_context* loop)
    : s_(std::move(s)), impl_(std::make_unique<Impl>(loop)) {
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

void MllpClient::connect(std::function<void(std::string)> then) {
  if (impl_->open()) return then("");
  if (s_.tls && !impl_->tls) return then(impl_->tls_error);
  impl_->resolver.async_resolve(
      s_.host, std::to_string(s_.port),
      [this, then](boost::system::error_code ec, tcp::resolver::results_type r) {
        if (ec) return then("cannot resolve " + s_.host + ": " + ec.message());
        auto& I = *impl_;
        if (s_.tls)
          I.secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(I.io, *I.tls);
        else
          I.plain = std::make_unique<beast::tcp_stream>(I.io);
        I.lowest().expires_after(s_.connect_timeout);
        I.lowest().async_connect(r, [this, then](boost::system::error_code e,
                                                 const tcp::endpoint&) { connected(e, then); });
      });
}

void MllpClient::connected(boost::system::error_code ec, std::function<void(std::string)> then) {
  auto& I = *impl_;
  const std::string where = s_.host + ":" + std::to_string(s_.port);
  if (ec) {
    drop();
    return then("cannot connect to " + where + ": " + ec.message());
  }
  I.lowest().socket().set_option(tcp::no_delay(true), ec);
  if (!s_.tls) {
    ++connects_;
    return then("");
  }
  boost::system::error_code not_ip;
  (void)asio::ip::make_address(s_.host, not_ip);
  if (not_ip)
    SSL_ctrl(I.secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(s_.host.c_str()));
  if (s_.verify) I.secure->set_verify_callback(ssl::host_name_verification(s_.host));
  I.lowest().expires_after(s_.connect_timeout);
  I.secure->async_handshake(
      ssl::stream_base::client, [this, then, where](boost::system::error_code e) {
        if (e) {
          drop();
          return then("TLS handshake with " + where + " failed: " + e.message());
        }
        ++connects_;
        then("");
      });
}

bool MllpClient::healthy() {
  if (impl_->on_loop) return impl_->open();
  bool ok = false;
  connect([&ok](const std::string& why) { ok = why.empty(); });
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
  auto& I = *impl_;
  I.job = &job;
  I.done = std::move(done);
  if (I.open()) return exchange();
  // `then` is called inline when the TLS settings are unusable: the outcome is posted, so
  // that `done` is never called inside send_async.
  connect([this](const std::string& why) {
    if (why.empty()) return exchange();
    asio::post(impl_->io, [this, why] { impl_->finish(runtime::DeliveryResult::retriable(why)); });
  });
}

// Writes the frame, then reads until one complete frame (the ACK) arrives; both within
// ack_timeout.
void MllpClient::exchange() {
  auto& I = *impl_;
  I.framed = mllp::frame(I.job->payload);
  I.deframer = std::make_unique<mllp::Deframer>(s_.max_ack_bytes);
  I.frames.clear();
  I.too_large = false;
  I.lowest().expires_after(s_.ack_timeout);
  const auto on_written = [this](boost::system::error_code ec, size_t) {
    if (ec) return acknowledged(ec);
    read_more();
  };
  if (I.secure)
    asio::async_write(*I.secure, asio::buffer(I.framed), on_written);
  else
    asio::async_write(*I.plain, asio::buffer(I.framed), on_written);
}

// Reads until a frame is complete.
void MllpClient::read_more() {
  auto& I = *impl_;
  const auto on_read = [this](boost::system::error_code ec, size_t n) {
    Impl& R = *impl_;
    if (ec) return acknowledged(ec);
    if (R.deframer->feed(std::string_view(R.buf.data(), n), R.frames) ==
        mllp::Deframer::Status::kTooLarge) {
      R.too_large = true;
      return acknowledged({});
    }
    if (!R.frames.empty()) return acknowledged({});
    read_more();
  };
  if (I.secure)
    I.secure->async_read_some(asio::buffer(I.buf), on_read);
  else
    I.plain->async_read_some(asio::buffer(I.buf), on_read);
}

// The exchange ended: the ACK, or why there is none, to an outcome.
void MllpClient::acknowledged(boost::system::error_code ec) {
  auto& I = *impl_;
  if (I.too_large) {
    drop();
    return I.finish(runtime::DeliveryResult::retriable(
        "acknowledgement larger than " + std::to_string(s_.max_ack_bytes) + " bytes"));
  }
  if (ec == beast::error::timeout) {
    drop();  // a late ACK must not be taken for the next message's
    return I.finish(runtime::DeliveryResult::retriable(
        "no acknowledgement within " + std::to_string(s_.ack_timeout.count()) + " ms"));
  }
  if (ec) {
    drop();
    // With TLS 1.3 a refused client certificate shows only now, as an alert on the read.
    if (ec.category() == asio::error::get_ssl_category())
      return I.finish(runtime::DeliveryResult::retriable(
          "TLS error with " + s_.host + ":" + std::to_string(s_.port) + ": " + ec.message()));
    return I.finish(runtime::DeliveryResult::retriable(
        "connection lost before the acknowledgement: " + ec.message()));
  }
  I.finish(evaluate_ack(I.frames.front()));
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
  const std::string_view payload = job.payload;
  std::string sent_id;
  if (auto sent = hl7v2::Message::parse(payload.substr(0, payload.find_first_of("\r\n")));
      std::holds_alternative<hl7v2::Message>(sent))
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
