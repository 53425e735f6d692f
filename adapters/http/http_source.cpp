#include "adapters/http/http_source.hpp"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <optional>

#include <nlohmann/json.hpp>

#include "engine/core/log.hpp"
#include "engine/runtime/tcp_listener.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using nlohmann::json;

namespace {
constexpr std::string_view kModule = "source.http";
}

struct HttpSource::Impl {
  HttpSourceSettings s;
  runtime::Ingest& ingest;
  std::shared_ptr<runtime::TcpListener> listener = runtime::TcpListener::create();
  std::atomic<uint64_t> request_seq{0};
  Impl(HttpSourceSettings settings, runtime::Ingest& in) : s(std::move(settings)), ingest(in) {}
};

namespace {

class Session final : public runtime::TcpListener::Connection,
                      public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, std::shared_ptr<HttpSource::Impl> impl)
      : stream_(std::move(socket)), impl_(std::move(impl)) {}

  void start() { read(); }

  void close_for_stop() override {
    asio::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stopped_ = true;
      self->stream_.close();  // aborts the read or write in progress
    });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(static_cast<uint64_t>(impl_->s.max_body_bytes));
    stream_.expires_after(std::chrono::milliseconds(impl_->s.read_timeout_ms));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (stopped_) return;
    if (ec == http::error::end_of_stream || ec == asio::error::connection_reset ||
        ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      close();
      return;
    }
    if (ec == http::error::body_limit) {
      respond(http::status::payload_too_large,
              json{{"status", "rejected"},
                   {"reason", "the body is larger than max_body_bytes (" +
                                  std::to_string(impl_->s.max_body_bytes) + " bytes)"}},
              false);
      return;
    }
    if (ec) {
      respond(http::status::bad_request,
              json{{"status", "rejected"}, {"reason", "malformed HTTP request: " + ec.message()}},
              false);
      return;
    }
    auto& req = parser_->get();
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    if (path != impl_->s.path) {
      respond(
          http::status::not_found,
          json{{"status", "error"}, {"reason", "no such path; POST messages to " + impl_->s.path}},
          req.keep_alive());
      return;
    }
    if (req.method() != http::verb::post) {
      respond(http::status::method_not_allowed, json{{"status", "error"}, {"reason", "use POST"}},
              req.keep_alive());
      return;
    }
    runtime::Inbound in;
    in.bytes = std::move(req.body());
    in.channel = "http:" + impl_->s.name;
    in.name = "request-" + std::to_string(impl_->request_seq.fetch_add(1) + 1);
    in.validate = impl_->s.validate;
    const bool keep_alive = req.keep_alive();
    impl_->listener->begin_request();
    auto self = shared_from_this();
    impl_->ingest.submit(std::move(in), [self, keep_alive](runtime::IngestResult r) {
      asio::post(self->stream_.get_executor(), [self, keep_alive, r = std::move(r)]() {
        self->answer(r, keep_alive);
        self->impl_->listener->end_request();
      });
    });
  }

  void answer(const runtime::IngestResult& r, bool keep_alive) {
    switch (r.outcome) {
      case runtime::Outcome::kAccepted:
        respond(
            http::status::accepted,
            json{{"status", "accepted"}, {"event_ids", r.event_ids}, {"message_id", r.message_id}},
            keep_alive);
        return;
      case runtime::Outcome::kRejected:
        respond(r.rejection.code == "T01" ? http::status::bad_request
                                          : http::status::unprocessable_entity,
                json{{"status", "rejected"},
                     {"code", r.rejection.code},
                     {"code_text", r.rejection.code_text},
                     {"reason", r.rejection.reason},
                     {"message_id", r.rejection.message_id},
                     {"apprec_queued", r.receipt_produced}},
                keep_alive);
        return;
      case runtime::Outcome::kRetry:
        respond(http::status::service_unavailable,
                json{{"status", "retry"}, {"reason", "not stored, try again: " + r.error}},
                keep_alive, "5");
        return;
    }
  }

  void respond(http::status status, const json& body, bool keep_alive,
               const char* retry_after = nullptr) {
    auto res = std::make_shared<http::response<http::string_body>>(status, 11);
    res->set(http::field::server, "budstikke");
    res->set(http::field::content_type, "application/json");
    if (retry_after) res->set(http::field::retry_after, retry_after);
    res->keep_alive(keep_alive);
    res->body() = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
    res->prepare_payload();
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                        if (ec || !keep_alive) {
                          self->close();
                          return;
                        }
                        self->read();
                      });
  }

  void close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpSource::Impl> impl_;
  bool stopped_ = false;
};

}  // namespace

HttpSource::HttpSource(HttpSourceSettings s, runtime::Ingest& ingest)
    : s_(std::move(s)), ingest_(ingest) {}

HttpSource::~HttpSource() {
  stop();
}

Status HttpSource::start() {
  impl_ = std::make_shared<Impl>(s_, ingest_);
  std::weak_ptr<Impl> weak = impl_;
  auto port = impl_->listener->start(
      "source " + s_.name, s_.host, s_.port, s_.threads, [weak](tcp::socket socket) {
        auto impl = weak.lock();
        if (!impl) return;
        auto session = std::make_shared<Session>(std::move(socket), impl);
        impl->listener->track(session);
        session->start();
      });
  if (!port) return port.error();
  bound_port_ = *port;
  log::info(kModule, "listening",
            {{"source", s_.name},
             {"address", s_.host + ":" + std::to_string(bound_port_.load())},
             {"path", s_.path}});
  return {};
}

void HttpSource::stop() {
  if (!impl_) return;
  impl_->listener->stop();
  impl_.reset();
}

runtime::SourceFactory http_source_factory() {
  using config::Kind;
  auto spec = std::make_shared<config::Spec>();
  spec->name = "sources[] (type: http)";
  spec->description = "Receives messages by HTTP POST; answers 202 only after Kafka has them.";
  spec->fields = {
      config::make_field("name", Kind::kString, "Unique name of the source (channel http:<name>).",
                         std::nullopt, true),
      config::make_field("type", Kind::kString, "http", std::nullopt, true),
      config::make_field("host", Kind::kString, "Address to listen on.", "127.0.0.1"),
      config::make_int("port", "Port to listen on (0: any free port).", 8080, 0, 65535),
      config::make_field("path", Kind::kString, "Path that takes POSTed messages.", "/ingest"),
      config::make_int("max_body_bytes", "Largest body accepted (413 above).", 20971520, 1),
      config::make_field("validate", Kind::kBool, "Validate e-meldinger against the XSDs.", "true"),
      config::make_int("threads", "I/O threads.", 2, 1, 64),
      config::make_int("read_timeout_ms", "Time allowed to read one request.", 30000, 100),
  };
  runtime::SourceFactory fac;
  fac.type = "http";
  fac.description = spec->description;
  fac.spec = spec;
  fac.create = [spec](const YAML::Node& n,
                      runtime::SourceContext& ctx) -> Result<std::unique_ptr<runtime::Source>> {
    HttpSourceSettings s;
    s.name = config::get_string(n, *spec, "name");
    s.host = config::get_string(n, *spec, "host");
    s.port = static_cast<int>(config::get_int(n, *spec, "port"));
    s.path = config::get_string(n, *spec, "path");
    s.max_body_bytes = config::get_int(n, *spec, "max_body_bytes");
    s.validate = config::get_bool(n, *spec, "validate");
    s.threads = static_cast<int>(config::get_int(n, *spec, "threads"));
    s.read_timeout_ms = static_cast<int>(config::get_int(n, *spec, "read_timeout_ms"));
    return std::unique_ptr<runtime::Source>(new HttpSource(s, ctx.ingest));
  };
  return fac;
}

}  // namespace budstikke::adapters
