#include "adapters/http/http_sink.hpp"

#include <utility>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "engine/runtime/loop_send.hpp"
#include "engine/runtime/tcp_client.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;

struct HttpSink::Impl {
  Impl(asio::io_context* loop, const registry::Connector& c)
      : io(loop ? *loop : own),
        conn(io, c.host, c.port,
             runtime::ClientTls{c.tls_enabled(), c.tls.ca_file, c.tls.cert_file, c.tls.key_file,
                                c.tls.verify}) {}
  asio::io_context own;  // used when the sink is made without a loop
  asio::io_context& io;
  runtime::TcpClientConnection conn;
  beast::flat_buffer buffer;
  // The send in progress.
  const runtime::DeliveryJob* job = nullptr;
  runtime::Sink::Done done;
  http::request<http::string_body> req;
  http::response<http::string_body> res;
  bool reused = false;  // it went out on a connection kept open from an earlier send
  int round = 0;        // 1: again on a fresh connection after a kept-open one failed

  void drop() {
    conn.drop();
    buffer.clear();
  }
  void finish(runtime::DeliveryResult r) {
    job = nullptr;
    auto d = std::move(done);
    done = nullptr;
    d(std::move(r));
  }
};

HttpSink::HttpSink(const registry::System& system, asio::io_context* loop)
    : sys_(system), impl_(std::make_unique<Impl>(loop, system.connector)) {}

HttpSink::~HttpSink() {
  impl_->drop();
}

bool HttpSink::healthy() {
  return impl_->conn.open();
}

size_t HttpSink::connects() const {
  return impl_->conn.connects();
}

runtime::DeliveryResult HttpSink::send(const runtime::DeliveryJob& job) {
  auto& im = *impl_;
  if (&im.io != &im.own) return runtime::send_on_loop(im.io, *this, job);
  runtime::DeliveryResult out;
  send_async(job, [&out](runtime::DeliveryResult r) { out = std::move(r); });
  im.io.restart();
  im.io.run();
  return out;
}

void HttpSink::send_async(const runtime::DeliveryJob& job, Done done) {
  auto& im = *impl_;
  im.job = &job;
  im.done = std::move(done);
  im.round = 0;
  // A certificate that cannot be loaded is the configuration's fault: retrying will not help.
  if (!im.conn.tls_error().empty()) {
    asio::post(im.io, [this] {
      impl_->finish(runtime::DeliveryResult::permanent(impl_->conn.tls_error()));
    });
    return;
  }
  attempt();
}

// Opens a connection when none is kept open, then exchanges.
void HttpSink::attempt() {
  auto& im = *impl_;
  im.reused = im.conn.open();
  if (im.reused) return exchange();
  im.conn.connect(std::chrono::milliseconds(sys_.connector.connect_timeout_ms),
                  [this](const std::string& why) {
                    // Retriable, a refused certificate too: the receiver may be mid-rotation;
                    // the reason goes to the DLQ if it lasts.
                    if (!why.empty()) return impl_->finish(runtime::DeliveryResult::retriable(why));
                    exchange();
                  });
}

// Writes the request and reads the answer on the open connection.
void HttpSink::exchange() {
  auto& im = *impl_;
  const auto& c = sys_.connector;
  const auto& job = *im.job;
  im.req = {http::verb::post, c.path, 11};
  im.req.set(http::field::host, c.host);
  im.req.set(http::field::user_agent, "budstikke");
  im.req.set(http::field::content_type,
             job.content_type.empty() ? "application/octet-stream" : job.content_type);
  if (!job.idempotency_key.empty()) im.req.set("Idempotency-Key", job.idempotency_key);
  if (!job.job_id.empty()) im.req.set("X-Budstikke-Job-Id", job.job_id);
  if (!job.event_id.empty()) im.req.set("X-Budstikke-Event-Id", job.event_id);
  if (!job.format.empty()) im.req.set("X-Budstikke-Format", job.format);
  for (const auto& [k, v] : c.headers) im.req.set(k, v);
  im.req.keep_alive(true);
  im.req.body() = job.payload;
  im.req.prepare_payload();
  im.res = {};
  im.conn.lowest().expires_after(std::chrono::milliseconds(c.timeout_ms));
  im.conn.with_stream([this](auto& stream) {
    http::async_write(stream, impl_->req, [this, &stream](beast::error_code ec, size_t) {
      if (ec) return answered(ec);
      http::async_read(stream, impl_->buffer, impl_->res,
                       [this](beast::error_code e, size_t) { answered(e); });
    });
  });
}

// The exchange ended: the answer, or why there is none, to an outcome.
void HttpSink::answered(boost::system::error_code ec) {
  auto& im = *impl_;
  const auto& c = sys_.connector;
  const std::string& where = im.conn.where();
  if (ec) {
    im.drop();
    // A kept-open connection the server closed meanwhile: try once on a fresh one.
    if (im.reused && im.round == 0 && ec != beast::error::timeout) {
      im.round = 1;
      return attempt();
    }
    if (ec == beast::error::timeout)
      return im.finish(runtime::DeliveryResult::retriable("no answer from " + where + " within " +
                                                          std::to_string(c.timeout_ms) + " ms"));
    // With TLS 1.3 a refused client certificate shows only now, as an alert on the read.
    if (ec.category() == asio::error::get_ssl_category())
      return im.finish(
          runtime::DeliveryResult::retriable("TLS error with " + where + ": " + ec.message()));
    return im.finish(
        runtime::DeliveryResult::retriable("HTTP to " + where + " failed: " + ec.message()));
  }
  if (!im.res.keep_alive()) im.drop();
  const unsigned status = im.res.result_int();
  std::string answer = std::to_string(status) + " " + std::string(im.res.reason());
  const std::string body = im.res.body().substr(0, 300);
  if (status >= 200 && status < 300) return im.finish(runtime::DeliveryResult::ok(answer));
  const std::string why = "HTTP " + answer + (body.empty() ? "" : ": " + body);
  if (status == 408 || status == 425 || status == 429 || status >= 500)
    return im.finish(runtime::DeliveryResult::retriable(why, body));
  im.finish(runtime::DeliveryResult::permanent(why, body));
}

}  // namespace budstikke::adapters
