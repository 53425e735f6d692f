#include "engine/ops/admin_server.hpp"

#include <utility>  // before asio (Boost 1.74)

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "engine/core/log.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/thread_name.hpp"
#include "engine/delivery/delivery.hpp"
#include "engine/ops/history.hpp"
#include "engine/ops/replay.hpp"

namespace budstikke::ops {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
constexpr std::string_view kModule = "admin";

struct Reply {
  http::status status = http::status::ok;
  std::string content_type = "application/json";
  std::string body;
  std::string allow;  // for 405
};

Reply json_reply(http::status s, const json& j) {
  // Defence in depth: whatever a record carried, no identity number leaves this API.
  return {s, "application/json",
          redact_identity_numbers(j.dump(2, ' ', false, json::error_handler_t::replace)) + "\n",
          ""};
}

Reply error_reply(http::status s, const std::string& why) {
  return json_reply(s, {{"error", why}});
}

// Constant-time comparison of the presented token.
bool token_matches(std::string_view presented, const std::string& token) {
  if (token.empty() || presented.size() != token.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < token.size(); ++i)
    diff |= static_cast<unsigned char>(presented[i] ^ token[i]);
  return diff == 0;
}

std::string url_decode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else if (s[i] == '+') {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

std::map<std::string, std::string> query_of(const std::string& target) {
  std::map<std::string, std::string> q;
  const auto qm = target.find('?');
  if (qm == std::string::npos) return q;
  std::string_view rest(target);
  rest.remove_prefix(qm + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const std::string_view kv = rest.substr(0, amp);
    const auto eq = kv.find('=');
    q[url_decode(kv.substr(0, eq))] =
        eq == std::string_view::npos ? "" : url_decode(kv.substr(eq + 1));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return q;
}

}  // namespace

struct AdminServer::Impl : std::enable_shared_from_this<AdminServer::Impl> {
  const config::EngineConfig& cfg;
  AdminHooks hooks;
  bus::Producer& producer;
  AuditLog audit;
  asio::io_context io;
  tcp::acceptor acceptor{io};
  std::thread io_thread;
  int port = 0;
  Clock::time_point started = Clock::now();

  // Handlers run on their own threads (they may read Kafka for seconds); stop() waits for them.
  std::mutex mu;
  std::condition_variable cv;
  int active = 0;
  bool stopping = false;

  // Readiness and Kafka-derived gauges are cached for a few seconds.
  std::mutex cache_mu;
  Clock::time_point kafka_at{};
  std::string kafka_error = "not checked yet";
  Clock::time_point gauges_at{};
  std::vector<metrics::GaugeSample> dlq_samples, lag_samples;

  Impl(const config::EngineConfig& c, AdminHooks h, bus::Producer& p)
      : cfg(c), hooks(std::move(h)), producer(p), audit(c, &p) {}

  std::string kafka_state() {
    const std::lock_guard lock(cache_mu);
    if (Clock::now() - kafka_at > std::chrono::seconds(2)) {
      auto t = bus::list_topics(cfg.kafka, std::chrono::milliseconds(2000));
      kafka_error = t ? "" : t.error().message;
      kafka_at = Clock::now();
    }
    return kafka_error;
  }

  void refresh_gauges() {
    {
      const std::lock_guard lock(cache_mu);
      if (Clock::now() - gauges_at < std::chrono::seconds(10)) return;
    }
    std::vector<metrics::GaugeSample> dlq, lag;
    if (auto reg = hooks.registry ? hooks.registry() : nullptr) {
      std::vector<std::string> ids;
      for (const auto& s : reg->systems()) ids.push_back(s.id);
      if (auto d = dlq_depths(cfg, ids))
        for (const auto& x : *d)
          dlq.push_back({{{"system", x.system}}, static_cast<double>(x.depth)});
    }
    if (hooks.groups)
      for (const auto& [group, topics] : hooks.groups()) {
        auto o = bus::group_offsets(cfg.kafka, group, topics);
        if (!o) continue;
        int64_t total = 0;
        for (const auto& p : *o) total += p.lag();
        std::string label = group.substr(std::min(group.size(), cfg.topic_prefix.size()));
        lag.push_back({{{"group", label}}, static_cast<double>(total)});
      }
    const std::lock_guard lock(cache_mu);
    dlq_samples = std::move(dlq);
    lag_samples = std::move(lag);
    gauges_at = Clock::now();
  }

  Reply handle(const http::request<http::string_body>& req, const std::string& peer) {
    const std::string target(req.target());
    const std::string path = target.substr(0, target.find('?'));
    const auto q = query_of(target);
    const auto method = req.method();
    auto only = [&](http::verb v, const char* allow) -> std::optional<Reply> {
      if (method == v) return std::nullopt;
      Reply r = error_reply(http::status::method_not_allowed,
                            "use " + std::string(allow) + " for " + path);
      r.allow = allow;
      return r;
    };
    if (path == "/healthz") {
      if (auto r = only(http::verb::get, "GET")) return *r;
      return json_reply(
          http::status::ok,
          {{"status", "ok"},
           {"instance", cfg.instance},
           {"uptime_s",
            std::chrono::duration_cast<std::chrono::seconds>(Clock::now() - started).count()}});
    }
    if (path == "/readyz") {
      if (auto r = only(http::verb::get, "GET")) return *r;
      const std::string kafka = kafka_state();
      const bool routes = hooks.control && hooks.control->stages_running();
      const bool ready = kafka.empty() && routes;
      return json_reply(ready ? http::status::ok : http::status::service_unavailable,
                        {{"ready", ready},
                         {"kafka", kafka.empty() ? "reachable" : "unreachable: " + kafka},
                         {"routes", routes ? "loaded" : "not loaded"}});
    }
    // Everything else needs the token.
    const auto auth_bv = req[http::field::authorization];
    const std::string_view auth(auth_bv.data(), auth_bv.size());
    const std::string_view bearer = "Bearer ";
    if (auth.size() <= bearer.size() || auth.substr(0, bearer.size()) != bearer ||
        !token_matches(auth.substr(bearer.size()), cfg.admin_token)) {
      Reply r = error_reply(http::status::unauthorized,
                            cfg.admin_token.empty()
                                ? "no admin token is configured (admin.token); the API is closed"
                                : "missing or wrong bearer token");
      return r;
    }
    const std::string actor = "admin-api@" + peer;
    if (path == "/metrics") {
      if (auto r = only(http::verb::get, "GET")) return *r;
      refresh_gauges();  // the gauges registered at start() read what this caches
      return {http::status::ok, "text/plain; version=0.0.4; charset=utf-8",
              redact_identity_numbers(metrics::global().render()), ""};
    }
    if (path.rfind("/api/messages/", 0) == 0) {
      if (auto r = only(http::verb::get, "GET")) return *r;
      const std::string id = url_decode(path.substr(14));
      if (id.empty()) return error_reply(http::status::bad_request, "give a message id");
      auto h = message_history(cfg, id);
      if (!h) return error_reply(http::status::service_unavailable, h.error().message);
      AuditEntry a{actor,
                   "api.message",
                   id,
                   "",
                   "",
                   h->patient_refs,
                   static_cast<int64_t>(h->states.size())};
      if (auto st = audit.record(a); !st)
        return error_reply(http::status::service_unavailable,
                           "refused: the audit record could not be written: " + st.error().message);
      if (h->states.empty())
        return error_reply(http::status::not_found, "nothing is known about '" + id + "' (" +
                                                        std::to_string(h->scanned) +
                                                        " tracking records read)");
      json states = json::array();
      for (const auto& s : h->states) {
        json c = s;
        c.erase("patient_ref");
        c["summary"] = describe_state(s);
        states.push_back(std::move(c));
      }
      return json_reply(http::status::ok, {{"id", id}, {"states", states}});
    }
    if (path == "/api/dlq") {
      if (auto r = only(http::verb::get, "GET")) return *r;
      auto reg = hooks.registry ? hooks.registry() : nullptr;
      if (!reg) return error_reply(http::status::not_found, "this engine runs no delivery");
      const auto sys = q.find("system");
      if (sys == q.end()) {
        std::vector<std::string> ids;
        for (const auto& s : reg->systems()) ids.push_back(s.id);
        auto d = dlq_depths(cfg, ids);
        if (!d) return error_reply(http::status::service_unavailable, d.error().message);
        json out = json::array();
        int64_t depth = 0;
        for (const auto& x : *d) {
          out.push_back({{"system", x.system}, {"depth", x.depth}, {"total", x.total}});
          depth += x.depth;
        }
        return json_reply(http::status::ok, {{"depth", depth}, {"systems", out}});
      }
      if (!reg->find(sys->second))
        return error_reply(http::status::not_found, "unknown system '" + sys->second + "'");
      json entries = json::array();
      std::set<std::string> refs;
      const std::string topic = delivery::dlq_topic(cfg.topic_prefix, sys->second);
      auto st = bus::scan_topics(cfg.kafka, {topic}, [&](const bus::Message& m) {
        namespace hd = delivery::header;
        auto hv = [&](const char* n) { return m.header(n).value_or(""); };
        entries.push_back({{"partition", m.partition()},
                           {"offset", m.offset()},
                           {"message_id", hv(hd::kIdempotencyKey)},
                           {"event_id", hv(hd::kEventId)},
                           {"job_id", hv(hd::kJobId)},
                           {"route", hv(hd::kRoute)},
                           {"format", hv(hd::kFormat)},
                           {"attempts", hv(hd::kAttempts)},
                           {"reason", hv(hd::kReason)},
                           {"failed_at", hv("bs-failed-at")},
                           {"replay_of", hv(hd::kReplayOf)}});
        if (auto pr = hv(hd::kPatientRef); !pr.empty()) refs.insert(pr);
        return true;
      });
      if (!st) return error_reply(http::status::service_unavailable, st.error().message);
      AuditEntry a{actor,
                   "api.dlq",
                   "",
                   sys->second,
                   "listed dead letters (metadata)",
                   refs,
                   static_cast<int64_t>(entries.size())};
      if (auto s2 = audit.record(a); !s2)
        return error_reply(http::status::service_unavailable,
                           "refused: the audit record could not be written: " + s2.error().message);
      return json_reply(http::status::ok, {{"system", sys->second}, {"entries", entries}});
    }
    if (path == "/api/dlq/replay") {
      if (auto r = only(http::verb::post, "POST")) return *r;
      auto reg = hooks.registry ? hooks.registry() : nullptr;
      if (!reg || !hooks.codecs)
        return error_reply(http::status::not_found, "this engine runs no delivery");
      const json body =
          req.body().empty() ? json::object() : json::parse(req.body(), nullptr, false);
      if (!body.is_object())
        return error_reply(http::status::bad_request, "the body must be a JSON object");
      ReplayRequest rr;
      rr.actor = actor;
      try {
        if (body.contains("system")) rr.systems = {body.at("system").get<std::string>()};
        rr.all = body.value("all", false);
        rr.message_id = body.value("message_id", "");
        rr.to_system = body.value("to", "");
        rr.route_failed = body.value("route_failed", false);
        rr.route = body.value("route", "");
        rr.dry_run = body.value("dry_run", false);
        for (const char* k : {"since", "until"}) {
          if (!body.contains(k)) continue;
          auto t = parse_time_ms(body.at(k).get<std::string>());
          if (!t)
            return error_reply(http::status::bad_request,
                               std::string(k) + ": not a time (2026-11-22T10:00:00Z, 2h, 7d)");
          (std::string(k) == "since" ? rr.since_ms : rr.until_ms) = t;
        }
      } catch (const json::exception& e) {
        return error_reply(http::status::bad_request, std::string("bad field: ") + e.what());
      }
      auto rep = replay(cfg, *reg, *hooks.codecs, rr, audit, &producer);
      if (!rep)
        return error_reply(rep.error().domain == ErrorDomain::kConfig
                               ? http::status::bad_request
                               : http::status::service_unavailable,
                           rep.error().message);
      json items = json::array();
      for (const auto& i : rep->items)
        items.push_back({{"system", i.system},
                         {"from", i.from},
                         {"message_id", i.message_id},
                         {"job_id", i.job_id},
                         {"reason", i.reason}});
      json not_replayed = json::array();
      for (const auto& i : rep->not_replayed)
        not_replayed.push_back({{"system", i.system},
                                {"from", i.from},
                                {"message_id", i.message_id},
                                {"reason", i.reason}});
      return json_reply(http::status::ok, {{"dry_run", rep->dry_run},
                                           {"replayed", items.size()},
                                           {"items", items},
                                           {"not_replayed", not_replayed},
                                           {"failed_again", rep->failed_again}});
    }
    if (path == "/api/routes") {
      if (auto r = only(http::verb::get, "GET")) return *r;
      return json_reply(http::status::ok, hooks.control ? hooks.control->status() : json::object());
    }
    if (path == "/api/routes/reload") {
      if (auto r = only(http::verb::post, "POST")) return *r;
      if (!hooks.control) return error_reply(http::status::not_found, "no engine to reload");
      log::info(kModule, "reload requested", {{"by", actor}});
      const json out = hooks.control->reload(std::chrono::minutes(3));
      return json_reply(
          out.value("applied", false) ? http::status::ok : http::status::unprocessable_entity, out);
    }
    return error_reply(http::status::not_found,
                       "no such endpoint: " + path +
                           " (see /healthz, /readyz, /metrics, /api/messages/{id}, /api/dlq, "
                           "/api/routes)");
  }
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket s, const std::shared_ptr<AdminServer::Impl>& impl)
      : stream_(std::move(s)), impl_(impl) {
    beast::error_code ec;
    const auto ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string();
  }
  void start() { read(); }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(1 << 20);
    stream_.expires_after(std::chrono::seconds(30));
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->on_read(ec); });
  }
  void on_read(beast::error_code ec) {
    if (ec) {
      if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
          ec != asio::error::operation_aborted && ec != asio::error::connection_reset) {
        Reply r = error_reply(http::status::bad_request, "malformed request: " + ec.message());
        write(std::move(r), false);
        return;
      }
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    req_ = parser_->release();
    const auto impl = impl_.lock();
    if (!impl) return;
    // The handler may read Kafka for a while: on its own thread, then back to the socket's.
    {
      std::unique_lock lock(impl->mu);
      if (impl->stopping) return;
      ++impl->active;
    }
    std::thread([self = shared_from_this(), impl]() mutable {
      set_thread_name("bs-admin-req");
      Reply r;
      try {
        r = impl->handle(self->req_, self->peer_);
      } catch (const std::exception& e) {
        r = error_reply(http::status::internal_server_error, e.what());
      }
      const bool keep = self->req_.keep_alive();
      asio::post(self->stream_.get_executor(),
                 [self, r = std::move(r), keep]() mutable { self->write(std::move(r), keep); });
      {
        const std::lock_guard lock(impl->mu);
        --impl->active;
      }
      impl->cv.notify_all();
      // The session goes first: should this thread hold the server's state last (a stop
      // that gave up waiting for it), its io_context must outlive the session's socket.
      self.reset();
    }).detach();
  }
  void write(Reply r, bool keep) {
    res_ = {};
    res_.result(r.status);
    res_.version(11);
    res_.set(http::field::server, "budstikke-admin");
    res_.set(http::field::content_type, r.content_type);
    res_.set(http::field::cache_control, "no-store");
    if (r.status == http::status::unauthorized)
      res_.set(http::field::www_authenticate, "Bearer realm=\"budstikke\"");
    if (!r.allow.empty()) res_.set(http::field::allow, r.allow);
    res_.body() = std::move(r.body);
    res_.keep_alive(keep);
    res_.prepare_payload();
    http::async_write(stream_, res_,
                      [self = shared_from_this(), keep](beast::error_code ec, size_t) {
                        if (ec || !keep) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
                          return;
                        }
                        self->read();
                      });
  }

  beast::tcp_stream stream_;
  // Weak: a session's pending operations sit in the io_context the server's state owns; a
  // strong reference from them would keep that state, and so the io_context, alive forever.
  std::weak_ptr<AdminServer::Impl> impl_;
  std::string peer_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
};

// The pending accept holds the server's state weakly (see Session::impl_): stop() leaves it
// queued, and the io_context's destruction, with the state's, discards it.
void do_accept(const std::shared_ptr<AdminServer::Impl>& impl) {
  impl->acceptor.async_accept(
      [weak = std::weak_ptr<AdminServer::Impl>(impl)](beast::error_code ec, tcp::socket s) {
        const auto self = weak.lock();
        if (!self || ec == asio::error::operation_aborted) return;
        if (ec) {
          log::warn(kModule, "accept failed", {{"error", ec.message()}});
        } else {
          std::make_shared<Session>(std::move(s), self)->start();
        }
        do_accept(self);
      });
}

}  // namespace

AdminServer::AdminServer(const config::EngineConfig& cfg, AdminHooks hooks, bus::Producer& producer)
    : impl_(std::make_shared<Impl>(cfg, std::move(hooks), producer)) {}

AdminServer::~AdminServer() {
  stop();
}

std::string AdminServer::name() const {
  if (impl_->port == 0) return "admin API";  // not listening (yet)
  return "admin API on " + impl_->cfg.admin_host + ":" + std::to_string(impl_->port);
}

int AdminServer::port() const {
  return impl_->port;
}

Status AdminServer::start() {
  auto& im = *impl_;
  beast::error_code ec;
  const auto addr = asio::ip::make_address(im.cfg.admin_host, ec);
  if (ec)
    return Error::permanent(ErrorDomain::kConfig,
                            "admin.host '" + im.cfg.admin_host + "' is not an IP address");
  const tcp::endpoint ep(addr, static_cast<unsigned short>(std::max(0, im.cfg.admin_port)));
  im.acceptor.open(ep.protocol(), ec);
  if (!ec) im.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) im.acceptor.bind(ep, ec);
  if (!ec) im.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error::permanent(ErrorDomain::kTransport,
                            "cannot listen on " + im.cfg.admin_host + ":" +
                                std::to_string(im.cfg.admin_port) + ": " + ec.message() +
                                " (admin.port: 0 picks a free port, -1 turns the API off)");
  im.port = im.acceptor.local_endpoint().port();
  // Kafka-derived gauges come from the cache /metrics refreshes (at most every 10 s).
  Impl* ip = impl_.get();
  auto& g = metrics::global();
  g.gauge("budstikke_dlq_depth", "Dead letters per system not replayed yet.", [ip] {
    const std::lock_guard lock(ip->cache_mu);
    return ip->dlq_samples;
  });
  g.gauge("budstikke_consumer_lag", "Records the engine's consumer groups have not processed yet.",
          [ip] {
            const std::lock_guard lock(ip->cache_mu);
            return ip->lag_samples;
          });
  g.gauge("budstikke_routes_loaded", "1 when the route stages run.", [ip] {
    const bool running = ip->hooks.control && ip->hooks.control->stages_running();
    return std::vector<metrics::GaugeSample>{{{}, running ? 1.0 : 0.0}};
  });
  if (im.cfg.admin_token.empty())
    log::warn(kModule, "no admin.token configured: /metrics and /api answer 401");
  do_accept(impl_);
  im.io_thread = std::thread([impl = impl_] {
    set_thread_name("bs-admin");
    auto guard = asio::make_work_guard(impl->io);
    impl->io.run();
  });
  log::info(kModule, "admin API listening",
            {{"address", im.cfg.admin_host + ":" + std::to_string(im.port)}});
  std::printf("budstikke: admin API on http://%s:%d\n", im.cfg.admin_host.c_str(), im.port);
  std::fflush(stdout);
  return {};
}

void AdminServer::stop() {
  auto& im = *impl_;
  {
    std::unique_lock lock(im.mu);
    if (im.stopping) return;
    im.stopping = true;
    // Handlers in flight finish first (they may still use the engine's objects).
    im.cv.wait_for(lock, std::chrono::seconds(60), [&] { return im.active == 0; });
  }
  for (const char* g : {"budstikke_dlq_depth", "budstikke_consumer_lag", "budstikke_routes_loaded"})
    metrics::global().remove_gauge(g);
  asio::post(im.io, [impl = impl_] {
    beast::error_code ec;
    impl->acceptor.close(ec);
    impl->io.stop();
  });
  if (im.io_thread.joinable()) im.io_thread.join();
}

}  // namespace budstikke::ops
