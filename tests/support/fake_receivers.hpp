#pragma once
// Fake connected systems for tests and benchmarks: real servers on 127.0.0.1 (port 0), all
// connections of a receiver served by one event-loop thread. HttpReceiver takes POSTs (the
// system is the last path segment); MllpReceiver takes framed HL7 and ACKs it (the system is
// MSH-5). What they answer is scripted (answer_next) or decided per system (set_policy),
// optionally after a delay per system (a slow system). They count what they accepted per
// system and keep the payloads unless keep_payloads(false) (benchmarks). HttpsReceiver and
// MllpsReceiver speak them over TLS with mutual authentication, with certificates from
// make_test_pki() (the openssl command). One loop, not a thread per connection: in the
// routing benchmark a thread woke for each of ~9,600 deliveries a second, on the two cores the
// engine and the broker use (BENCHMARKS.md, routes, session 41).

#include <array>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"

namespace budstikke::testenv {

enum class Answer { kAccept, kLater, kReject };

struct Received {
  std::string system;
  std::string key;  // idempotency key (HTTP) or MSH-10 (MLLP)
  std::string payload;
};

// What a connector's receiver offers a test.
class Receiver {
 public:
  virtual ~Receiver() = default;
  virtual std::string url() = 0;  // the connector URL for systems.yaml
  virtual void answer_next(Answer a) = 0;
  virtual std::vector<Received> received() = 0;
  virtual bool can_reject() const { return true; }
  virtual bool can_go_down() const { return true; }
  // More connector keys for systems.yaml (e.g. the tls: block), indented for `connector:`.
  virtual std::string connector_extra() const { return {}; }
  virtual void drop_connections() {}
  virtual void go_down() {}
  virtual void come_back() {}
};

// A TCP server on 127.0.0.1:0 that can drop its connections, stop listening and listen
// again on the same port. Its sockets, sessions and timers live on one io_context run by one
// thread; the methods a test calls from its own threads hand their work to that thread and
// wait for it.
class TcpReceiver : public Receiver {
 public:
  using tcp = boost::asio::ip::tcp;
  using Policy = std::function<Answer(const std::string& system)>;
  // Asked with each message's key (HTTP Idempotency-Key, MLLP MSH-10); before the Policy.
  using KeyPolicy = std::function<Answer(const std::string& system, const std::string& key)>;
  using Delay = std::function<std::chrono::milliseconds(const std::string& system)>;

  TcpReceiver() : guard_(boost::asio::make_work_guard(io_)) {
    loop_ = std::thread([this] { io_.run(); });
    listen(0);
  }
  ~TcpReceiver() override { stop_loop(); }
  TcpReceiver(const TcpReceiver&) = delete;
  TcpReceiver& operator=(const TcpReceiver&) = delete;
  int port() const { return port_; }
  void answer_next(Answer a) override {
    std::lock_guard lock(mu_);
    script_.push_back(a);
  }
  void set_policy(Policy p) {
    std::lock_guard lock(mu_);
    policy_ = std::move(p);
  }
  void set_key_policy(KeyPolicy p) {
    std::lock_guard lock(mu_);
    key_policy_ = std::move(p);
  }
  void set_delay(Delay d) {
    std::lock_guard lock(mu_);
    delay_ = std::move(d);
  }
  void keep_payloads(bool keep) { keep_ = keep; }
  std::vector<Received> received() override {
    std::lock_guard lock(mu_);
    return got_;
  }
  std::map<std::string, long> counts() const {
    std::lock_guard lock(mu_);
    return counts_;
  }
  long total() const { return total_.load(); }
  void drop_connections() override {
    on_loop([this] { shut_sockets(); });
  }
  void go_down() override { shutdown(); }
  void come_back() override { listen(port_); }

 protected:
  // Starts serving one accepted connection (on the loop); it ends when the peer closes.
  virtual void serve(std::shared_ptr<tcp::socket> s) = 0;
  // Decides the answer for the next message to `system` and calls done(answer) on the loop,
  // after the system's delay (a slow system holds that connection, not the others).
  void next(const std::string& system, const std::string& key, std::function<void(Answer)> done) {
    std::chrono::milliseconds wait{0};
    Answer a = Answer::kAccept;
    {
      std::lock_guard lock(mu_);
      if (delay_) wait = delay_(system);
      if (!script_.empty()) {
        a = script_.front();
        script_.pop_front();
      } else if (key_policy_) {
        a = key_policy_(system, key);
      } else if (policy_) {
        a = policy_(system);
      }
    }
    if (wait.count() <= 0) {
      done(a);
      return;
    }
    auto timer = std::make_shared<boost::asio::steady_timer>(io_, wait);
    timer->async_wait(
        [timer, a, done = std::move(done)](const boost::system::error_code&) { done(a); });
  }
  void record(const std::string& system, std::string key, std::string payload) {
    std::lock_guard lock(mu_);
    ++counts_[system];
    ++total_;
    if (keep_) got_.push_back({system, std::move(key), std::move(payload)});
  }
  // Stops serving and ends the loop thread; a subclass whose sessions use its members (a TLS
  // context) calls it first in its destructor. Idempotent.
  void stop_loop() {
    if (!loop_.joinable()) return;
    shutdown();
    guard_.reset();
    io_.stop();
    loop_.join();
  }
  int port_ = 0;
  std::atomic<long> refused_{0};  // TLS handshakes refused

 private:
  // Runs f on the loop thread and waits for it; what f throws (a port taken) is thrown here.
  template <class F>
  void on_loop(F f) {
    if (std::this_thread::get_id() == loop_.get_id()) {
      f();
      return;
    }
    std::promise<void> ran;
    auto done = ran.get_future();
    boost::asio::post(io_, [&] {
      try {
        f();
        ran.set_value();
      } catch (...) {
        ran.set_exception(std::current_exception());
      }
    });
    done.get();
  }
  void listen(int port) {
    on_loop([this, port] {
      namespace asio = boost::asio;
      acceptor_ = std::make_unique<tcp::acceptor>(io_);
      const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"),
                             static_cast<unsigned short>(port));
      acceptor_->open(ep.protocol());
      acceptor_->set_option(tcp::acceptor::reuse_address(true));
      acceptor_->bind(ep);
      acceptor_->listen();
      port_ = acceptor_->local_endpoint().port();
      accept(acceptor_.get());
    });
  }
  void accept(tcp::acceptor* a) {
    a->async_accept([this, a](const boost::system::error_code& ec, tcp::socket peer) {
      if (ec || acceptor_.get() != a) return;  // closed (go_down), or replaced since
      auto s = std::make_shared<tcp::socket>(std::move(peer));
      boost::system::error_code ignored;
      s->set_option(tcp::no_delay(true), ignored);
      std::erase_if(sockets_, [](const std::weak_ptr<tcp::socket>& w) { return w.expired(); });
      sockets_.push_back(s);
      serve(std::move(s));
      accept(a);
    });
  }
  void shut_sockets() {
    for (auto& w : sockets_)
      if (auto s = w.lock()) {
        boost::system::error_code ec;
        s->shutdown(tcp::socket::shutdown_both, ec);
      }
  }
  void shutdown() {
    on_loop([this] {
      if (!acceptor_) return;
      boost::system::error_code ec;
      acceptor_->close(ec);
      acceptor_.reset();
      shut_sockets();
      sockets_.clear();
    });
  }
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard_;
  std::thread loop_;
  std::unique_ptr<tcp::acceptor> acceptor_;          // the loop's
  std::vector<std::weak_ptr<tcp::socket>> sockets_;  // the loop's
  std::atomic<bool> keep_{true};
  std::atomic<long> total_{0};
  mutable std::mutex mu_;
  std::deque<Answer> script_;
  Policy policy_;
  KeyPolicy key_policy_;
  Delay delay_;
  std::vector<Received> got_;
  std::map<std::string, long> counts_;
};

// One connection of a receiver, the base of its Session: the socket (shared with the
// receiver, which may shut it down) and the stream over it, plain (Stream = tcp::socket&) or
// TLS (boost::asio::ssl::stream<tcp::socket&>). start() does a TLS stream's handshake
// (counting a refused one) and then Session::read().
template <class Session, class Stream>
class Connection : public std::enable_shared_from_this<Session> {
 public:
  void start() {
    if constexpr (!std::is_reference_v<Stream>) {
      stream_.async_handshake(
          boost::asio::ssl::stream_base::server,
          [self = this->shared_from_this()](const boost::system::error_code& ec) {
            if (ec) {
              ++self->refused_;
              return;
            }
            self->read();
          });
    } else {
      static_cast<Session*>(this)->read();
    }
  }

 protected:
  template <class... Args>
  Connection(std::shared_ptr<boost::asio::ip::tcp::socket> s, std::atomic<long>& refused,
             Args&... args)
      : socket_(std::move(s)), stream_(*socket_, args...), refused_(refused) {}
  std::shared_ptr<boost::asio::ip::tcp::socket> socket_;
  Stream stream_;
  std::atomic<long>& refused_;
};

// 200 accepts, 503 says "later", 400 "never". Over TLS when given a server context
// (HttpsReceiver); the HTTP exchange is the same on either stream.
class HttpReceiver : public TcpReceiver {
 public:
  // A URL whose last segment is the system id; {id} in systems.yaml templates.
  virtual std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string url() override { return base_url() + "/systems/conformance"; }

 protected:
  template <class Stream>
  class Session : public Connection<Session<Stream>, Stream> {
   public:
    template <class... Args>
    Session(HttpReceiver* r, std::shared_ptr<tcp::socket> s, Args&... args)
        : Connection<Session, Stream>(std::move(s), r->refused_, args...), r_(r) {}

   private:
    friend class Connection<Session, Stream>;
    void read() {
      namespace http = boost::beast::http;
      req_ = {};
      http::async_read(
          this->stream_, buf_, req_,
          [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
            if (!ec) self->answer();
          });
    }
    void answer() {
      const std::string target(req_.target());
      std::string system = target.substr(target.rfind('/') + 1);
      std::string key(req_["Idempotency-Key"]);
      r_->next(system, key, [self = this->shared_from_this(), system, key](Answer a) mutable {
        self->respond(a, system, std::move(key));
      });
    }
    void respond(Answer a, const std::string& system, std::string key) {
      namespace http = boost::beast::http;
      res_ = {};
      res_.version(11);
      res_.result(a == Answer::kAccept  ? http::status::ok
                  : a == Answer::kLater ? http::status::service_unavailable
                                        : http::status::bad_request);
      if (a == Answer::kAccept) r_->record(system, std::move(key), std::move(req_.body()));
      res_.keep_alive(req_.keep_alive());
      res_.prepare_payload();
      http::async_write(
          this->stream_, res_,
          [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
            if (!ec) self->read();
          });
    }
    HttpReceiver* r_;
    boost::beast::flat_buffer buf_;
    boost::beast::http::request<boost::beast::http::string_body> req_;
    boost::beast::http::response<boost::beast::http::string_body> res_;
  };

 private:
  void serve(std::shared_ptr<tcp::socket> s) override {
    std::make_shared<Session<tcp::socket&>>(this, std::move(s))->start();
  }
};

// A throwaway PKI for TLS tests, made with the openssl command in `dir`: a CA, a server
// certificate for 127.0.0.1 and a client certificate, all signed by the CA.
struct TestPki {
  std::string ca, server_cert, server_key, client_cert, client_key;
  std::string other_ca;  // a CA that signed nothing here (an untrusted server)
};

inline std::optional<TestPki> make_test_pki(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  const std::string d = dir.string();
  const std::string key = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  const std::string cmd =
      "cd '" + d + "' && printf 'subjectAltName=IP:127.0.0.1\\n' > server.ext && " +
      "openssl req -x509" + key + " -keyout ca.key -out ca.pem -days 2 -subj '/CN=Test CA' && " +
      "openssl req -x509" + key +
      " -keyout other.key -out other.pem -days 2 -subj '/CN=Other' && " + "openssl req" + key +
      " -keyout server.key -out server.csr -subj '/CN=127.0.0.1' && " +
      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 " +
      "-extfile server.ext -out server.pem && " + "openssl req" + key +
      " -keyout client.key -out client.csr -subj '/CN=budstikke' && " +
      "openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 " +
      "-out client.pem";
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0) return std::nullopt;
  return TestPki{d + "/ca.pem",     d + "/server.pem", d + "/server.key",
                 d + "/client.pem", d + "/client.key", d + "/other.pem"};
}

// A receiver over TLS with mutual TLS: the client must present a certificate signed by the
// test CA. Plain is HttpReceiver or MllpReceiver; the exchange is theirs.
template <class Plain>
class WithTls : public Plain {
 public:
  explicit WithTls(const TestPki& pki) : ctx_(boost::asio::ssl::context::tls_server) {
    namespace ssl = boost::asio::ssl;
    ctx_.use_certificate_chain_file(pki.server_cert);
    ctx_.use_private_key_file(pki.server_key, ssl::context::pem);
    ctx_.load_verify_file(pki.ca);
    ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  ~WithTls() override { this->stop_loop(); }  // the sessions use ctx_
  WithTls(const WithTls&) = delete;
  WithTls& operator=(const WithTls&) = delete;
  long handshakes_refused() const { return this->refused_.load(); }

 private:
  void serve(std::shared_ptr<boost::asio::ip::tcp::socket> s) override {
    using Tls = boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>;
    std::make_shared<typename Plain::template Session<Tls>>(this, std::move(s), ctx_)->start();
  }
  boost::asio::ssl::context ctx_;
};

class HttpsReceiver : public WithTls<HttpReceiver> {
 public:
  using WithTls::WithTls;
  std::string base_url() const override { return "https://127.0.0.1:" + std::to_string(port_); }
};

// AA accepts, AE says "later", AR "never". Over TLS in MllpsReceiver.
class MllpReceiver : public TcpReceiver {
 public:
  std::string url() override { return "mllp://127.0.0.1:" + std::to_string(port_); }

 protected:
  // Reads frames and answers each in turn (MLLP is one message at a time per connection); a
  // frame that is not HL7 ends the connection.
  template <class Stream>
  class Session : public Connection<Session<Stream>, Stream> {
   public:
    template <class... Args>
    Session(MllpReceiver* r, std::shared_ptr<tcp::socket> s, Args&... args)
        : Connection<Session, Stream>(std::move(s), r->refused_, args...), r_(r) {}

   private:
    friend class Connection<Session, Stream>;
    void read() {
      this->stream_.async_read_some(
          boost::asio::buffer(buf_),
          [self = this->shared_from_this()](const boost::system::error_code& ec, size_t n) {
            if (ec) return;
            std::vector<std::string> frames;
            self->deframer_.feed(std::string_view(self->buf_.data(), n), frames);
            for (auto& f : frames) self->frames_.push_back(std::move(f));
            self->next_frame();
          });
    }
    void next_frame() {
      if (frames_.empty()) {
        read();
        return;
      }
      std::string f = std::move(frames_.front());
      frames_.pop_front();
      auto parsed = hl7v2::Message::parse(f);
      if (!std::holds_alternative<hl7v2::Message>(parsed)) return;
      auto m = std::make_shared<hl7v2::Message>(std::move(std::get<hl7v2::Message>(parsed)));
      std::string system = m->get("MSH-5").value_or("");
      std::string key = m->get("MSH-10").value_or("");
      r_->next(
          system, key,
          [self = this->shared_from_this(), m, f = std::move(f), system, key](Answer a) mutable {
            self->respond(a, *m, system, std::move(key), std::move(f));
          });
    }
    void respond(Answer a, const hl7v2::Message& m, const std::string& system, std::string key,
                 std::string payload) {
      const auto code = a == Answer::kAccept  ? hl7v2::AckCode::kAccept
                        : a == Answer::kLater ? hl7v2::AckCode::kError
                                              : hl7v2::AckCode::kReject;
      ack_ = mllp::frame(*hl7v2::make_ack(m, {code, a == Answer::kAccept ? "" : "no", "207", ""}));
      if (a == Answer::kAccept) r_->record(system, std::move(key), std::move(payload));
      boost::asio::async_write(
          this->stream_, boost::asio::buffer(ack_),
          [self = this->shared_from_this()](const boost::system::error_code& ec, size_t) {
            if (!ec) self->next_frame();
          });
    }
    MllpReceiver* r_;
    mllp::Deframer deframer_;
    std::deque<std::string> frames_;
    std::array<char, 16384> buf_{};
    std::string ack_;
  };

 private:
  void serve(std::shared_ptr<tcp::socket> s) override {
    std::make_shared<Session<tcp::socket&>>(this, std::move(s))->start();
  }
};

// MLLP over TLS with mutual TLS, like HttpsReceiver.
class MllpsReceiver : public WithTls<MllpReceiver> {
 public:
  using WithTls::WithTls;
  std::string url() override { return "mllps://127.0.0.1:" + std::to_string(port_); }
};

}  // namespace budstikke::testenv
