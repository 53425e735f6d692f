#include "adapters/http/http_sink.hpp"

#include <utility>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpSink::Impl {
  asio::io_context io;
  std::unique_ptr<ssl::context> tls;  // https only
  std::string tls_error;              // why the TLS context could not be made
  std::unique_ptr<beast::tcp_stream> plain;
  std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;

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
  // Runs the queued async operations to completion.
  void run() {
    io.restart();
    io.run();
  }
  // Writes the request and reads the answer on whichever stream is open.
  template <class Stream>
  beast::error_code exchange(Stream& s, http::request<http::string_body>& req,
                             http::response<http::string_body>& res) {
    beast::error_code ec;
    http::async_write(s, req, [&](beast::error_code e, size_t) {
      ec = e;
      if (e) return;
      http::async_read(s, buffer, res, [&](beast::error_code e2, size_t) { ec = e2; });
    });
    run();
    return ec;
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

HttpSink::HttpSink(const registry::System& system) : sys_(system), impl_(std::make_unique<Impl>()) {
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
  const auto& c = sys_.connector;
  const bool https = c.tls_enabled();
  // A certificate that cannot be loaded is the configuration's fault: retrying will not help.
  if (https && !I.tls) return runtime::DeliveryResult::permanent(I.tls_error);
  const std::string where = c.host + ":" + std::to_string(c.port);
  for (int round = 0; round < 2; ++round) {
    const bool reused = I.open();
    beast::error_code ec;
    if (!I.open()) {
      tcp::resolver resolver(I.io);
      tcp::resolver::results_type endpoints;
      resolver.async_resolve(c.host, std::to_string(c.port),
                             [&](beast::error_code e, tcp::resolver::results_type r) {
                               ec = e;
                               endpoints = std::move(r);
                             });
      I.run();
      if (ec)
        return runtime::DeliveryResult::retriable("cannot resolve " + c.host + ": " + ec.message());
      if (https)
        I.secure = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(I.io, *I.tls);
      else
        I.plain = std::make_unique<beast::tcp_stream>(I.io);
      I.lowest().expires_after(std::chrono::milliseconds(c.connect_timeout_ms));
      I.lowest().async_connect(endpoints,
                               [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
      I.run();
      if (ec) {
        I.drop();
        return runtime::DeliveryResult::retriable("cannot connect to " + where + ": " +
                                                  ec.message());
      }
      I.lowest().socket().set_option(tcp::no_delay(true), ec);
      if (https) {
        // SNI (for names, never for IP literals) and the name the certificate must carry.
        boost::system::error_code not_ip;
        (void)asio::ip::make_address(c.host, not_ip);
        if (not_ip)
          SSL_ctrl(I.secure->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME,
                   TLSEXT_NAMETYPE_host_name, const_cast<char*>(c.host.c_str()));
        if (c.tls.verify) I.secure->set_verify_callback(ssl::host_name_verification(c.host));
        I.secure->async_handshake(ssl::stream_base::client, [&](beast::error_code e) { ec = e; });
        I.run();
        if (ec) {
          I.drop();
          // A certificate the receiver or we refuse will not get better by itself, but the
          // receiver may be mid-rotation: retriable, with the reason in the DLQ if it lasts.
          return runtime::DeliveryResult::retriable("TLS handshake with " + where +
                                                    " failed: " + ec.message());
        }
      }
      ++connects_;
    }
    http::request<http::string_body> req{http::verb::post, c.path, 11};
    req.set(http::field::host, c.host);
    req.set(http::field::user_agent, "budstikke");
    req.set(http::field::content_type,
            job.content_type.empty() ? "application/octet-stream" : job.content_type);
    if (!job.idempotency_key.empty()) req.set("Idempotency-Key", job.idempotency_key);
    if (!job.job_id.empty()) req.set("X-Budstikke-Job-Id", job.job_id);
    if (!job.event_id.empty()) req.set("X-Budstikke-Event-Id", job.event_id);
    if (!job.format.empty()) req.set("X-Budstikke-Format", job.format);
    for (const auto& [k, v] : c.headers) req.set(k, v);
    req.keep_alive(true);
    req.body() = job.payload;
    req.prepare_payload();
    http::response<http::string_body> res;
    I.lowest().expires_after(std::chrono::milliseconds(c.timeout_ms));
    ec = https ? I.exchange(*I.secure, req, res) : I.exchange(*I.plain, req, res);
    if (ec) {
      I.drop();
      // A kept-open connection the server closed meanwhile: try once on a fresh one.
      if (reused && round == 0 && ec != beast::error::timeout) continue;
      if (ec == beast::error::timeout)
        return runtime::DeliveryResult::retriable("no answer from " + where + " within " +
                                                  std::to_string(c.timeout_ms) + " ms");
      // With TLS 1.3 a refused client certificate shows only now, as an alert on the read.
      if (ec.category() == asio::error::get_ssl_category())
        return runtime::DeliveryResult::retriable("TLS error with " + where + ": " + ec.message());
      return runtime::DeliveryResult::retriable("HTTP to " + where + " failed: " + ec.message());
    }
    if (!res.keep_alive()) I.drop();
    const unsigned status = res.result_int();
    std::string answer = std::to_string(status) + " " + std::string(res.reason());
    const std::string body = res.body().substr(0, 300);
    if (status >= 200 && status < 300) return runtime::DeliveryResult::ok(answer);
    const std::string why = "HTTP " + answer + (body.empty() ? "" : ": " + body);
    if (status == 408 || status == 425 || status == 429 || status >= 500)
      return runtime::DeliveryResult::retriable(why, body);
    return runtime::DeliveryResult::permanent(why, body);
  }
  return runtime::DeliveryResult::retriable("HTTP to " + where + " failed");
}

}  // namespace budstikke::adapters
