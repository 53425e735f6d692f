#include "adapters/mllp/mllp_source.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>

#include <chrono>
#include <deque>
#include <optional>
#include <type_traits>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/mllp/framer.hpp"
#include "engine/core/log.hpp"
#include "engine/runtime/tcp_listener.hpp"

namespace budstikke::adapters {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {
constexpr std::string_view kModule = "source.mllp";
}

struct MllpSource::Impl {
  MllpSourceSettings s;
  runtime::Ingest& ingest;
  std::shared_ptr<runtime::TcpListener> listener = runtime::TcpListener::create();
  std::atomic<uint64_t> seq{0};
  std::unique_ptr<ssl::context> tls;  // set when the source listens with TLS
  Impl(MllpSourceSettings settings, runtime::Ingest& in) : s(std::move(settings)), ingest(in) {}
};

namespace {

// One connection: a plain socket, or a TLS stream over one (then the handshake comes
// first, within the read timeout).
template <class Stream>
class Connection final : public runtime::TcpListener::Connection,
                         public std::enable_shared_from_this<Connection<Stream>> {
 public:
  template <class... TlsArgs>
  Connection(tcp::socket socket, std::shared_ptr<MllpSource::Impl> impl, TlsArgs&... tls)
      : socket_(std::move(socket), tls...),
        strand_(asio::make_strand(socket_.get_executor())),
        timer_(socket_.get_executor()),
        impl_(std::move(impl)),
        deframer_(static_cast<size_t>(impl_->s.max_message_bytes)) {
    beast_peer_ = peer();
  }

  void start() {
    last_activity_ = std::chrono::steady_clock::now();
    arm_timer(std::chrono::milliseconds(impl_->s.read_timeout_ms));  // covers a TLS handshake
    if constexpr (std::is_same_v<Stream, tcp::socket>) {
      read();
    } else {
      socket_.async_handshake(ssl::stream_base::server,
                              asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                               boost::system::error_code ec) {
                                if (self->closing_) return;
                                if (ec) {
                                  log::warn(kModule, "TLS handshake refused",
                                            {{"peer", self->beast_peer_}, {"error", ec.message()}});
                                  self->close("TLS handshake failed");
                                  return;
                                }
                                self->read();
                              }));
    }
  }

  void close_for_stop() override {
    asio::post(strand_, [self = shared_from_this()] { self->close("the source stops"); });
  }

 private:
  using std::enable_shared_from_this<Connection<Stream>>::shared_from_this;
  auto& lowest() { return socket_.lowest_layer(); }

  std::string peer() {
    boost::system::error_code ec;
    auto ep = lowest().remote_endpoint(ec);
    return ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
  }

  // The idle timer is armed once and, when it fires, again for what is left of the timeout
  // since the connection's last activity; reads and ACKs only note the time. (Re-arming it
  // for every message cancelled a wait whose handler then ran, once per message.) A
  // connection with a message in hand is not idle.
  void arm_timer(std::chrono::steady_clock::duration after) {
    timer_.expires_after(after);
    timer_.async_wait(
        asio::bind_executor(strand_, [self = shared_from_this()](boost::system::error_code ec) {
          if (!ec && !self->closing_) self->on_timer();
        }));
  }

  void on_timer() {
    const auto timeout = std::chrono::milliseconds(impl_->s.read_timeout_ms);
    const auto idle = std::chrono::steady_clock::now() - last_activity_;
    if (busy_ || !pending_.empty())
      arm_timer(timeout);
    else if (idle < timeout)
      arm_timer(timeout - idle);
    else
      close("idle timeout");
  }

  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            asio::bind_executor(strand_, [self = shared_from_this()](
                                                             boost::system::error_code ec,
                                                             size_t n) { self->on_read(ec, n); }));
  }

  void on_read(boost::system::error_code ec, size_t n) {
    if (ec) {
      close(ec == asio::error::eof ? "closed by peer" : ec.message());
      return;
    }
    last_activity_ = std::chrono::steady_clock::now();
    std::vector<std::string> frames;
    const auto st = deframer_.feed(std::string_view(buf_.data(), n), frames);
    for (auto& f : frames) pending_.push_back(std::move(f));
    if (st == mllp::Deframer::Status::kTooLarge) {
      // Answer, then close: the rest of that frame cannot be trusted.
      pending_.push_back(std::string());
      too_large_ = true;
    }
    next();
    if (!closing_) read();
  }

  // Handles the pending frames one at a time, in order.
  void next() {
    if (busy_ || pending_.empty()) return;
    std::string payload = std::move(pending_.front());
    pending_.pop_front();
    if (too_large_ && pending_.empty() && payload.empty()) {
      write(
          hl7v2::make_nak_for_unparsable("", "message larger than max_message_bytes (" +
                                                 std::to_string(impl_->s.max_message_bytes) + ")"),
          true);
      return;
    }
    busy_ = true;
    runtime::Inbound in;
    in.bytes = payload;
    in.channel = "mllp:" + impl_->s.name;
    in.name = "frame-" + std::to_string(impl_->seq.fetch_add(1) + 1) + "@" + beast_peer_;
    in.receipt_inline = true;
    impl_->listener->begin_request();
    auto self = shared_from_this();
    impl_->ingest.submit(
        std::move(in), [self, payload = std::move(payload)](runtime::IngestResult r) mutable {
          asio::post(self->strand_, [self, r = std::move(r), payload = std::move(payload)]() {
            self->answer(r, payload);
            self->impl_->listener->end_request();
          });
        });
  }

  void answer(const runtime::IngestResult& r, const std::string& payload) {
    std::optional<std::string> ack;
    if (r.outcome == runtime::Outcome::kAccepted && !r.receipt.empty()) {
      ack = r.receipt;  // built by the codec from its own parse
    } else if (r.outcome == runtime::Outcome::kRejected && !r.rejection.receipt.empty() &&
               r.rejection.receipt_format == "hl7v2/ack") {
      ack = r.rejection.receipt;
    } else {
      auto parsed = hl7v2::Message::parse(payload);
      if (auto* m = std::get_if<hl7v2::Message>(&parsed)) {
        switch (r.outcome) {
          case runtime::Outcome::kAccepted:
            ack = hl7v2::make_ack(*m, {hl7v2::AckCode::kAccept, "", "", ""});
            break;
          case runtime::Outcome::kRejected:
            ack = hl7v2::make_ack(*m, {hl7v2::AckCode::kReject, r.rejection.reason, "200", ""});
            break;
          case runtime::Outcome::kRetry:
            ack = hl7v2::make_ack(
                *m, {hl7v2::AckCode::kError, "not stored, send again: " + r.error, "207", ""});
            break;
        }
      } else {
        ack = hl7v2::make_nak_for_unparsable(payload,
                                             r.outcome == runtime::Outcome::kRejected
                                                 ? r.rejection.reason
                                                 : std::get<hl7v2::ParseError>(parsed).to_string());
      }
    }
    busy_ = false;
    if (ack) {
      write(*ack, false);
    } else {
      next();
    }
  }

  void write(const std::string& ack, bool close_after) {
    auto framed = std::make_shared<std::string>(mllp::frame(ack));
    busy_ = true;
    asio::async_write(socket_, asio::buffer(*framed),
                      asio::bind_executor(strand_, [self = shared_from_this(), framed, close_after](
                                                       boost::system::error_code ec, size_t) {
                        self->busy_ = false;
                        self->last_activity_ = std::chrono::steady_clock::now();
                        if (ec || close_after) {
                          self->close(ec ? ec.message() : "frame too large");
                          return;
                        }
                        self->next();
                      }));
  }

  void close(const std::string& why) {
    if (closing_) return;
    closing_ = true;
    boost::system::error_code ec;
    timer_.cancel();
    lowest().shutdown(tcp::socket::shutdown_both, ec);
    lowest().close(ec);
    log::debug(kModule, "connection closed", {{"peer", beast_peer_}, {"why", why}});
  }

  Stream socket_;
  asio::strand<asio::any_io_executor> strand_;
  asio::steady_timer timer_;
  std::chrono::steady_clock::time_point last_activity_;
  std::shared_ptr<MllpSource::Impl> impl_;
  mllp::Deframer deframer_;
  std::array<char, 64 * 1024> buf_{};
  std::deque<std::string> pending_;
  bool busy_ = false;
  bool closing_ = false;
  bool too_large_ = false;
  std::string beast_peer_;
};

}  // namespace

MllpSource::MllpSource(MllpSourceSettings s, runtime::Ingest& ingest)
    : s_(std::move(s)), ingest_(ingest) {}

MllpSource::~MllpSource() {
  stop();
}

Status MllpSource::start() {
  impl_ = std::make_shared<Impl>(s_, ingest_);
  if (!s_.tls_cert_file.empty()) {
    // The server certificate; with tls_ca_file, senders must present a certificate that CA
    // signed (mutual TLS).
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
    boost::system::error_code ec;
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                         ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                     ec);
    ctx->use_certificate_chain_file(s_.tls_cert_file, ec);
    if (!ec) ctx->use_private_key_file(s_.tls_key_file, ssl::context::pem, ec);
    if (ec)
      return Error::permanent(ErrorDomain::kConfig, "source " + s_.name +
                                                        ": cannot load the TLS certificate '" +
                                                        s_.tls_cert_file + "' / key '" +
                                                        s_.tls_key_file + "': " + ec.message());
    if (!s_.tls_ca_file.empty()) {
      ctx->load_verify_file(s_.tls_ca_file, ec);
      if (ec)
        return Error::permanent(ErrorDomain::kConfig, "source " + s_.name +
                                                          ": cannot load the TLS CA file '" +
                                                          s_.tls_ca_file + "': " + ec.message());
      ctx->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
    }
    impl_->tls = std::move(ctx);
  }
  std::weak_ptr<Impl> weak = impl_;
  auto port = impl_->listener->start(
      "source " + s_.name, s_.host, s_.port, s_.threads, [weak](tcp::socket socket) {
        auto impl = weak.lock();
        if (!impl) return;
        const auto run = [&](auto connection) {
          impl->listener->track(connection);
          connection->start();
        };
        if (impl->tls)
          run(std::make_shared<Connection<ssl::stream<tcp::socket>>>(std::move(socket), impl,
                                                                     *impl->tls));
        else
          run(std::make_shared<Connection<tcp::socket>>(std::move(socket), impl));
      });
  if (!port) return port.error();
  bound_port_ = *port;
  log::info(kModule, "listening",
            {{"source", s_.name}, {"address", s_.host + ":" + std::to_string(bound_port_.load())}});
  return {};
}

void MllpSource::stop() {
  if (!impl_) return;
  impl_->listener->stop();
  impl_.reset();
}

runtime::SourceFactory mllp_source_factory() {
  using config::Kind;
  auto spec = std::make_shared<config::Spec>();
  spec->name = "sources[] (type: mllp)";
  spec->description = "Receives HL7 v2 over MLLP; acknowledges only after Kafka has the message.";
  spec->fields = {
      config::make_field("name", Kind::kString, "Unique name of the source (channel mllp:<name>).",
                         std::nullopt, true),
      config::make_field("type", Kind::kString, "mllp", std::nullopt, true),
      config::make_field("host", Kind::kString, "Address to listen on.", "127.0.0.1"),
      config::make_int("port", "Port to listen on (0: any free port).", 6661, 0, 65535),
      config::make_int("max_message_bytes", "Largest message accepted (AR and close above).",
                       16777216, 1),
      config::make_int("read_timeout_ms",
                       "A connection is closed when it has been idle this long since its last "
                       "read or ACK (one with a message waiting for Kafka is not idle).",
                       300000, 100),
      config::make_int("threads", "I/O threads.", 2, 1, 64),
      config::make_field("tls_cert_file", Kind::kString,
                         "PEM server certificate: set it to listen with TLS (MLLP over TLS)."),
      config::make_field("tls_key_file", Kind::kString, "PEM private key of the certificate."),
      config::make_field("tls_ca_file", Kind::kString,
                         "PEM CA file: when set, senders must present a certificate it signed "
                         "(mutual TLS)."),
  };
  runtime::SourceFactory fac;
  fac.type = "mllp";
  fac.description = spec->description;
  fac.spec = spec;
  fac.create = [spec](const YAML::Node& n,
                      runtime::SourceContext& ctx) -> Result<std::unique_ptr<runtime::Source>> {
    MllpSourceSettings s;
    s.name = config::get_string(n, *spec, "name");
    s.host = config::get_string(n, *spec, "host");
    s.port = static_cast<int>(config::get_int(n, *spec, "port"));
    s.max_message_bytes = config::get_int(n, *spec, "max_message_bytes");
    s.read_timeout_ms = static_cast<int>(config::get_int(n, *spec, "read_timeout_ms"));
    s.threads = static_cast<int>(config::get_int(n, *spec, "threads"));
    s.tls_cert_file = config::get_string(n, *spec, "tls_cert_file");
    s.tls_key_file = config::get_string(n, *spec, "tls_key_file");
    s.tls_ca_file = config::get_string(n, *spec, "tls_ca_file");
    if (!s.tls_cert_file.empty()) {
      s.tls_cert_file = config::resolve_path(ctx.engine, s.tls_cert_file);
      s.tls_key_file = config::resolve_path(ctx.engine, s.tls_key_file);
    }
    if (!s.tls_ca_file.empty()) s.tls_ca_file = config::resolve_path(ctx.engine, s.tls_ca_file);
    return std::unique_ptr<runtime::Source>(new MllpSource(s, ctx.ingest));
  };
  return fac;
}

}  // namespace budstikke::adapters
