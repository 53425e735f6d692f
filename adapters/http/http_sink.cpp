#include "adapters/http/http_sink.hpp"

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "engine/runtime/loop_send.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpSink::Impl {
  explicit Impl(asio::io_context* loop) : io(loop ? *loop : own) {}
  asio::io_context own;  // used when the sink is made without a loop
  asio::io_context& io;
  std::unique_ptr<ssl::context> tls;  // https only
  std::string tls_error;              // why the TLS context could not be made
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  tcp::resolver resolver{io};
  // The send in progress.
  const runtime::DeliveryJob* job = nullptr;
  runtime::Sink::Done done;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
  bool reused = false;  // it went out on a connection kept open from an earlier send
  int round = 0;        // 1: again on a fresh connection after a kept-open one failed

  bool open() const { return plain || secure; }
  beast::tcp_stream& lowest() { return plain ? *plain : beast::get_lowest_layer(*secure); }
  void drop() {
    if (!open()) return;
    beast::error_code ec;
    lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
    lowest().socket().close(ec);
    plain.reset();
    secure.reset();
    buffer.clear();
  }
  void finish(runtime::DeliveryResult r) {
    job = nullptr;
    auto d = std::move(done);
    done = nullptr;
    d(std::move(r));
  }
};

namespace {

// The TLS context of an https:// system: its CA (or the system's trust store), hostname
// verification unless verify is off, and the client certificate for mutual TLS.
std::unique_ptr<ssl::context> make_tls(const registry::Connector& c, std::string& why) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (c.tls.ca_file.empty())
    ctx->set_default_verify_paths(ec);
  else
    ctx->load_verify_file(c.tls.ca_file, ec);
  if (ec) {
    why = "TLS: cannot load the CA file '" + c.tls.ca_file + "': " + ec.message();
    return nullptr;
  }
  if (!c.tls.cert_file.empty()) {
    ctx->use_certificate_chain_file(c.tls.cert_file, ec);
    if (!ec) ctx->use_private_key_file(c.tls.key_file, ssl::context::pem, ec);
    if (ec) {
      why = "TLS: cannot load the client certificate '" + c.tls.cert_file + "' / key '" +
            c.tls.key_file + "': " + ec.message();
      return nullptr;
    }
  }
  ctx->set_verify_mode(c.tls.verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

}  // namespace

HttpSink::HttpSink(const registry::System& system, asio::io_context* loop)
    : sys_(system), impl_(std::make_unique<Impl>(loop)) {
  if (sys_.connector.tls_enabled()) impl_->tls = make_tls(sys_.connector, impl_->tls_error);
}

HttpSink::~HttpSink() {
  impl_->drop();
}

bool HttpSink::healthy() {
  return impl_->open();
}

runtime::DeliveryResult HttpSink::send(const runtime::DeliveryJob& job) {
  auto& I = *impl_;
  if (&I.io != &I.own) return runtime::send_on_loop(I.io, *this, job);
  runtime::DeliveryResult out;
  send_async(job, [&out](runtime::DeliveryResult r) { out = std::move(r); });
  I.io.restart();
  I.io.run();
  return out;
}

void HttpSink::send_async(const runtime::DeliveryJob& job, Done done) {
  auto& I = *impl_;
  I.job = &job;
  I.done = std::move(done);
  I.round = 0;
  // A certificate that cannot be loaded is the configuration's fault: retrying will not help.
  if (sys_.connector.tls_enabled() && !I.tls) {
    asio::post(I.io,
               [this] { impl_->finish(runtime::DeliveryResult::permanent(impl_->tls_error)); });
    return;
  }
  attempt();
}

// Opens a connection when none is kept open, then exchanges.
void HttpSink::attempt() {
  impl_->reused = impl_->open();
  if (impl_->open()) return exchange();
  const auto& conn = sys_.connector;
  impl_->resolver.async_resolve(
      conn.host, std::to_string(conn.port),
      [this](beast::error_code ec, tcp::resolver::results_type r) { resolved(ec, std::move(r)); });
}

void HttpSink::resolved(boost::system::error_code ec, tcp_results endpoints) {
  auto& I = *impl_;
  const auto& c = sys_.connector;
  if (ec)
    return I.finish(
        runtime::DeliveryResult::retriable("cannot resolve " + c.host + ": " + ec.message()));
  if (c.tls_enabled())
    I.secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(I.io, *I.tls);
  else
    I.plain = std::make_unique<beast::tcp_stream>(I.io);
  I.lowest().expires_after(std::chrono::milliseconds(c.connect_timeout_ms));
  I.lowest().async_connect(endpoints,
                           [this](beast::error_code e, const tcp::endpoint&) { connected(e); });
}

void HttpSink::connected(boost::system::error_code ec) {
  auto& I = *impl_;
  const auto& c = sys_.connector;
  const std::string where = c.host + ":" + std::to_string(c.port);
  if (ec) {
    I.drop();
    return I.finish(
        runtime::DeliveryResult::retriable("cannot connect to " + where + ": " + ec.message()));
  }
  I.lowest().socket().set_option(tcp::no_delay(true), ec);
  if (!c.tls_enabled()) {
    ++connects_;
    return exchange();
  }
  // SNI (for names, never for IP literals) and the name the certificate must carry.
  boost::system::error_code not_ip;
  (void)asio::ip::make_address(c.host, not_ip);
  if (not_ip)
    SSL_ctrl(I.secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(c.host.c_str()));
  if (c.tls.verify) I.secure->set_verify_callback(ssl::host_name_verification(c.host));
  I.secure->async_handshake(ssl::stream_base::client, [this, where](beast::error_code e) {
    if (e) {
      impl_->drop();
      // A certificate the receiver or we refuse will not get better by itself, but the
      // receiver may be mid-rotation: retriable, with the reason in the DLQ if it lasts.
      return impl_->finish(runtime::DeliveryResult::retriable("TLS handshake with " + where +
                                                              " failed: " + e.message()));
    }
    ++connects_;
    exchange();
  });
}

// Writes the request and reads the answer on the open connection.
void HttpSink::exchange() {
  auto& I = *impl_;
  const auto& c = sys_.connector;
  const auto& job = *I.job;
  I.req = {http::verb::post, c.path, 11};
  I.req.set(http::field::host, c.host);
  I.req.set(http::field::user_agent, "budstikke");
  I.req.set(http::field::content_type,
            job.content_type.empty() ? "application/octet-stream" : job.content_type);
  if (!job.idempotency_key.empty()) I.req.set("Idempotency-Key", job.idempotency_key);
  if (!job.job_id.empty()) I.req.set("X-Budstikke-Job-Id", job.job_id);
  if (!job.event_id.empty()) I.req.set("X-Budstikke-Event-Id", job.event_id);
  if (!job.format.empty()) I.req.set("X-Budstikke-Format", job.format);
  for (const auto& [k, v] : c.headers) I.req.set(k, v);
  I.req.keep_alive(true);
  I.req.body() = job.payload;
  I.req.prepare_payload();
  I.res = {};
  I.lowest().expires_after(std::chrono::milliseconds(c.timeout_ms));
  const auto go = [this](auto& stream) {
    http::async_write(stream, impl_->req, [this, &stream](beast::error_code ec, size_t) {
      if (ec) return answered(ec);
      http::async_read(stream, impl_->buffer, impl_->res,
                       [this](beast::error_code e, size_t) { answered(e); });
    });
  };
  if (I.secure)
    go(*I.secure);
  else
    go(*I.plain);
}

// The exchange ended: the answer, or why there is none, to an outcome.
void HttpSink::answered(boost::system::error_code ec) {
  auto& I = *impl_;
  const auto& c = sys_.connector;
  const std::string where = c.host + ":" + std::to_string(c.port);
  if (ec) {
    I.drop();
    // A kept-open connection the server closed meanwhile: try once on a fresh one.
    if (I.reused && I.round == 0 && ec != beast::error::timeout) {
      I.round = 1;
      return attempt();
    }
    if (ec == beast::error::timeout)
      return I.finish(runtime::DeliveryResult::retriable("no answer from " + where + " within " +
                                                         std::to_string(c.timeout_ms) + " ms"));
    // With TLS 1.3 a refused client certificate shows only now, as an alert on the read.
    if (ec.category() == asio::error::get_ssl_category())
      return I.finish(
          runtime::DeliveryResult::retriable("TLS error with " + where + ": " + ec.message()));
    return I.finish(
        runtime::DeliveryResult::retriable("HTTP to " + where + " failed: " + ec.message()));
  }
  if (!I.res.keep_alive()) I.drop();
  const unsigned status = I.res.result_int();
  std::string answer = std::to_string(status) + " " + std::string(I.res.reason());
  const std::string body = I.res.body().substr(0, 300);
  if (status >= 200 && status < 300) return I.finish(runtime::DeliveryResult::ok(answer));
  const std::string why = "HTTP " + answer + (body.empty() ? "" : ": " + body);
  if (status == 408 || status == 425 || status == 429 || status >= 500)
    return I.finish(runtime::DeliveryResult::retriable(why, body));
  I.finish(runtime::DeliveryResult::permanent(why, body));
}

}  // namespace budstikke::adapters
