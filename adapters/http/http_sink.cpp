#include "adapters/http/http_sink.hpp"

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

struct HttpSink::Impl {
  asio::io_context io;
  std::unique_ptr<beast::tcp_stream> stream;
  beast::flat_buffer buffer;

  void drop() {
    if (!stream) return;
    beast::error_code ec;
    stream->socket().shutdown(tcp::socket::shutdown_both, ec);
    stream->socket().close(ec);
    stream.reset();
    buffer.clear();
  }
  // Runs the queued async operations to completion.
  void run() {
    io.restart();
    io.run();
  }
};

HttpSink::HttpSink(const registry::System& system)
    : sys_(system), impl_(std::make_unique<Impl>()) {}

HttpSink::~HttpSink() {
  impl_->drop();
}

bool HttpSink::healthy() {
  return impl_->stream != nullptr;
}

runtime::DeliveryResult HttpSink::send(const runtime::DeliveryJob& job) {
  auto& I = *impl_;
  const auto& c = sys_.connector;
  const std::string where = c.host + ":" + std::to_string(c.port);
  for (int round = 0; round < 2; ++round) {
    const bool reused = I.stream != nullptr;
    beast::error_code ec;
    if (!I.stream) {
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
      I.stream = std::make_unique<beast::tcp_stream>(I.io);
      I.stream->expires_after(std::chrono::milliseconds(c.connect_timeout_ms));
      I.stream->async_connect(endpoints,
                              [&](beast::error_code e, const tcp::endpoint&) { ec = e; });
      I.run();
      if (ec) {
        I.drop();
        return runtime::DeliveryResult::retriable("cannot connect to " + where + ": " +
                                                  ec.message());
      }
      I.stream->socket().set_option(tcp::no_delay(true), ec);
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
    I.stream->expires_after(std::chrono::milliseconds(c.timeout_ms));
    http::async_write(*I.stream, req, [&](beast::error_code e, size_t) {
      ec = e;
      if (e) return;
      http::async_read(*I.stream, I.buffer, res, [&](beast::error_code e2, size_t) { ec = e2; });
    });
    I.run();
    if (ec) {
      I.drop();
      // A kept-open connection the server closed meanwhile: try once on a fresh one.
      if (reused && round == 0 && ec != beast::error::timeout) continue;
      if (ec == beast::error::timeout)
        return runtime::DeliveryResult::retriable("no answer from " + where + " within " +
                                                  std::to_string(c.timeout_ms) + " ms");
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
