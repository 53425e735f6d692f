#pragma once
// Fake connected systems for tests and benchmarks: real servers on 127.0.0.1 (port 0), one
// thread per connection. HttpReceiver takes POSTs (the system is the last path segment);
// MllpReceiver takes framed HL7 and ACKs it (the system is MSH-5). What they answer is
// scripted (answer_next) or decided per system (set_policy), optionally after a delay per
// system (a slow system). They count what they accepted per system and keep the payloads
// unless keep_payloads(false) (benchmarks). HttpsReceiver speaks HTTPS with mutual TLS, with
// certificates from make_test_pki() (the openssl command).

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
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
// again on the same port.
class TcpReceiver : public Receiver {
 public:
  using tcp = boost::asio::ip::tcp;
  using Policy = std::function<Answer(const std::string& system)>;
  // Asked with each message's key (HTTP Idempotency-Key, MLLP MSH-10); before the Policy.
  using KeyPolicy = std::function<Answer(const std::string& system, const std::string& key)>;
  using Delay = std::function<std::chrono::milliseconds(const std::string& system)>;

  TcpReceiver() { listen(0); }
  ~TcpReceiver() override { shutdown(); }
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
    std::lock_guard lock(mu_);
    for (auto& s : sockets_) {
      boost::system::error_code ec;
      s->shutdown(tcp::socket::shutdown_both, ec);
    }
  }
  void go_down() override { shutdown(); }
  void come_back() override { listen(port_); }

 protected:
  // Serves one connection until it closes.
  virtual void serve(tcp::socket& s) = 0;
  // The answer for the next message to `system`, after its delay.
  Answer next(const std::string& system, const std::string& key = {}) {
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
    if (wait.count() > 0) std::this_thread::sleep_for(wait);
    return a;
  }
  void record(const std::string& system, std::string key, std::string payload) {
    std::lock_guard lock(mu_);
    ++counts_[system];
    ++total_;
    if (keep_) got_.push_back({system, std::move(key), std::move(payload)});
  }
  int port_ = 0;

 private:
  void listen(int port) {
    namespace asio = boost::asio;
    stop_ = false;
    acceptor_ = std::make_unique<tcp::acceptor>(io_);
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port));
    acceptor_->open(ep.protocol());
    acceptor_->set_option(tcp::acceptor::reuse_address(true));
    acceptor_->bind(ep);
    acceptor_->listen();
    port_ = acceptor_->local_endpoint().port();
    accept_thread_ = std::thread([this] {
      while (!stop_) {
        auto s = std::make_shared<tcp::socket>(io_);
        boost::system::error_code ec;
        acceptor_->accept(*s, ec);
        if (ec || stop_) return;
        s->set_option(tcp::no_delay(true), ec);
        std::lock_guard lock(mu_);
        sockets_.push_back(s);
        workers_.emplace_back([this, s] { serve(*s); });
      }
    });
  }
  void shutdown() {
    namespace asio = boost::asio;
    if (!acceptor_) return;
    stop_ = true;
    boost::system::error_code ec;
    {
      // A blocking accept() is not woken by closing the acceptor from another thread:
      // connect once so it returns and sees stop_.
      asio::io_context io;
      tcp::socket wake(io);
      wake.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)}, ec);
    }
    if (accept_thread_.joinable()) accept_thread_.join();
    acceptor_->close(ec);
    acceptor_.reset();
    drop_connections();
    std::vector<std::thread> w;
    {
      std::lock_guard lock(mu_);
      w.swap(workers_);
      sockets_.clear();
    }
    for (auto& t : w) t.join();
  }
  boost::asio::io_context io_;
  std::unique_ptr<tcp::acceptor> acceptor_;
  std::thread accept_thread_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> keep_{true};
  std::atomic<long> total_{0};
  mutable std::mutex mu_;
  std::deque<Answer> script_;
  Policy policy_;
  KeyPolicy key_policy_;
  Delay delay_;
  std::vector<Received> got_;
  std::map<std::string, long> counts_;
  std::vector<std::shared_ptr<tcp::socket>> sockets_;
  std::vector<std::thread> workers_;
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
  void exchange(Stream& s) {
    namespace beast = boost::beast;
    namespace http = beast::http;
    beast::flat_buffer buf;
    for (;;) {
      http::request<http::string_body> req;
      beast::error_code ec;
      http::read(s, buf, req, ec);
      if (ec) return;
      const std::string target(req.target());
      const std::string system = target.substr(target.rfind('/') + 1);
      const Answer a = next(system, std::string(req["Idempotency-Key"]));
      http::response<http::string_body> res;
      res.version(11);
      res.result(a == Answer::kAccept  ? http::status::ok
                 : a == Answer::kLater ? http::status::service_unavailable
                                       : http::status::bad_request);
      if (a == Answer::kAccept)
        record(system, std::string(req["Idempotency-Key"]), std::move(req.body()));
      res.keep_alive(req.keep_alive());
      res.prepare_payload();
      http::write(s, res, ec);
      if (ec) return;
    }
  }

 private:
  void serve(tcp::socket& s) override { exchange(s); }
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

// HTTPS with mutual TLS: the client must present a certificate signed by the test CA.
class HttpsReceiver : public HttpReceiver {
 public:
  explicit HttpsReceiver(const TestPki& pki) : ctx_(boost::asio::ssl::context::tls_server) {
    namespace ssl = boost::asio::ssl;
    ctx_.use_certificate_chain_file(pki.server_cert);
    ctx_.use_private_key_file(pki.server_key, ssl::context::pem);
    ctx_.load_verify_file(pki.ca);
    ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  std::string base_url() const override { return "https://127.0.0.1:" + std::to_string(port_); }
  long handshakes_refused() const { return refused_.load(); }

 private:
  void serve(tcp::socket& s) override {
    boost::asio::ssl::stream<tcp::socket&> tls(s, ctx_);
    boost::system::error_code ec;
    tls.handshake(boost::asio::ssl::stream_base::server, ec);
    if (ec) {
      ++refused_;
      return;
    }
    exchange(tls);
  }
  boost::asio::ssl::context ctx_;
  std::atomic<long> refused_{0};
};

// AA accepts, AE says "later", AR "never". Over TLS in MllpsReceiver.
class MllpReceiver : public TcpReceiver {
 public:
  std::string url() override { return "mllp://127.0.0.1:" + std::to_string(port_); }

 protected:
  template <class Stream>
  void exchange(Stream& s) {
    namespace asio = boost::asio;
    mllp::Deframer d;
    std::vector<std::string> frames;
    char buf[16384];
    for (;;) {
      boost::system::error_code ec;
      const size_t n = s.read_some(asio::buffer(buf), ec);
      if (ec) return;
      d.feed(std::string_view(buf, n), frames);
      for (auto& f : frames) {
        auto parsed = hl7v2::Message::parse(f);
        if (!std::holds_alternative<hl7v2::Message>(parsed)) return;
        const auto& m = std::get<hl7v2::Message>(parsed);
        const std::string system = m.get("MSH-5").value_or("");
        const Answer a = next(system, m.get("MSH-10").value_or(""));
        const auto code = a == Answer::kAccept  ? hl7v2::AckCode::kAccept
                          : a == Answer::kLater ? hl7v2::AckCode::kError
                                                : hl7v2::AckCode::kReject;
        if (a == Answer::kAccept) record(system, m.get("MSH-10").value_or(""), std::move(f));
        const std::string ack =
            *hl7v2::make_ack(m, {code, a == Answer::kAccept ? "" : "no", "207", ""});
        asio::write(s, asio::buffer(mllp::frame(ack)), ec);
        if (ec) return;
      }
      frames.clear();
    }
  }

 private:
  void serve(tcp::socket& s) override { exchange(s); }
};

// MLLP over TLS with mutual TLS, like HttpsReceiver.
class MllpsReceiver : public MllpReceiver {
 public:
  explicit MllpsReceiver(const TestPki& pki) : ctx_(boost::asio::ssl::context::tls_server) {
    namespace ssl = boost::asio::ssl;
    ctx_.use_certificate_chain_file(pki.server_cert);
    ctx_.use_private_key_file(pki.server_key, ssl::context::pem);
    ctx_.load_verify_file(pki.ca);
    ctx_.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  }
  std::string url() override { return "mllps://127.0.0.1:" + std::to_string(port_); }
  long handshakes_refused() const { return refused_.load(); }

 private:
  void serve(tcp::socket& s) override {
    boost::asio::ssl::stream<tcp::socket&> tls(s, ctx_);
    boost::system::error_code ec;
    tls.handshake(boost::asio::ssl::stream_base::server, ec);
    if (ec) {
      ++refused_;
      return;
    }
    exchange(tls);
  }
  boost::asio::ssl::context ctx_;
  std::atomic<long> refused_{0};
};

}  // namespace budstikke::testenv
