#include "engine/bus/bus.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "engine/bus/spin_brake.hpp"
#include "engine/core/log.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/thread_name.hpp"

namespace budstikke::bus {
namespace {

constexpr std::string_view kModule = "bus";

struct ConfDeleter {
  void operator()(rd_kafka_conf_t* c) const {
    if (c) rd_kafka_conf_destroy(c);
  }
};
using ConfPtr = std::unique_ptr<rd_kafka_conf_t, ConfDeleter>;

struct TplDeleter {
  void operator()(rd_kafka_topic_partition_list_t* p) const {
    if (p) rd_kafka_topic_partition_list_destroy(p);
  }
};
using TplPtr = std::unique_ptr<rd_kafka_topic_partition_list_t, TplDeleter>;

Result<ConfPtr> make_conf(const KafkaSettings& s,
                          const std::map<std::string, std::string>& overrides) {
  ConfPtr conf(rd_kafka_conf_new());
  char err[512];
  auto set = [&](const std::string& k, const std::string& v) -> Status {
    if (rd_kafka_conf_set(conf.get(), k.c_str(), v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      return Error::permanent(ErrorDomain::kConfig, "kafka property " + k + ": " + err);
    return {};
  };
  for (const auto& [k, v] : s.properties)
    if (auto st = set(k, v); !st) return st.error();
  for (const auto& [k, v] : overrides)
    if (auto st = set(k, v); !st) return st.error();
  rd_kafka_conf_set_log_cb(
      conf.get(), [](const rd_kafka_t*, int level, const char* fac, const char* buf) {
        const auto l = level <= 3
                           ? log::Level::kError
                           : (level <= 4 ? log::Level::kWarn
                                         : (level <= 6 ? log::Level::kInfo : log::Level::kDebug));
        log::write(l, "librdkafka", buf, {{"facility", fac}});
      });
  return conf;
}

// A transactional producer's main thread gets the brake on its busy-waits (design note 56).
Status add_spin_brake(rd_kafka_conf_t* conf, const KafkaSettings& s) {
  static metrics::Counter& pauses = metrics::global().counter(
      "budstikke_kafka_busy_wait_pauses_total",
      "Times a librdkafka main thread busy-waiting for a timer was paused instead "
      "(kafka.busy_wait_pause_us).");
  configure_spin_brake(std::chrono::microseconds(s.busy_wait_pause_us), &pauses);
  const auto e = rd_kafka_conf_interceptor_add_on_new(
      conf, "budstikke-spin-brake",
      [](rd_kafka_t* rk, const rd_kafka_conf_t*, void*, char*, size_t) {
        return rd_kafka_interceptor_add_on_thread_start(
            rk, "budstikke-spin-brake",
            [](rd_kafka_t*, rd_kafka_thread_type_t type, const char*, void*) {
              if (type == RD_KAFKA_THREAD_MAIN) brake_this_thread();
              return RD_KAFKA_RESP_ERR_NO_ERROR;
            },
            nullptr);
      },
      nullptr);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return Error::permanent(ErrorDomain::kKafka,
                            std::string("kafka interceptor: ") + rd_kafka_err2str(e));
  return {};
}

// Error callback: librdkafka reports connection trouble here and retries by itself. Only
// fatal errors matter to the owner; they are logged loudly.
void error_cb(rd_kafka_t* rk, int err, const char* reason, void*) {
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    char buf[512];
    const auto orig = rd_kafka_fatal_error(rk, buf, sizeof buf);
    log::error(kModule, "fatal kafka error", {{"error", rd_kafka_err2name(orig)}, {"reason", buf}});
    return;
  }
  log::warn(
      kModule, "kafka client error",
      {{"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))}, {"reason", reason}});
}

Error from_error_t(rd_kafka_error_t* e, std::string_view context) {
  Error out;
  out.domain = ErrorDomain::kKafka;
  out.code = rd_kafka_error_code(e);
  out.retriable = !rd_kafka_error_is_fatal(e) &&
                  (rd_kafka_error_is_retriable(e) || rd_kafka_error_txn_requires_abort(e));
  out.message = std::string(context) + ": " + rd_kafka_error_string(e);
  if (rd_kafka_error_txn_requires_abort(e)) out.message += " (abort the transaction and retry)";
  rd_kafka_error_destroy(e);
  return out;
}

std::vector<rd_kafka_vu_t> build_vu(const Record& r, rd_kafka_headers_t*& hdrs) {
  std::vector<rd_kafka_vu_t> vu;
  vu.reserve(6);
  rd_kafka_vu_t v{};
  v.vtype = RD_KAFKA_VTYPE_TOPIC;
  v.u.cstr = r.topic.c_str();
  vu.push_back(v);
  v = {};
  v.vtype = RD_KAFKA_VTYPE_MSGFLAGS;
  v.u.i = RD_KAFKA_MSG_F_COPY;
  vu.push_back(v);
  if (!r.key.empty()) {
    v = {};
    v.vtype = RD_KAFKA_VTYPE_KEY;
    v.u.mem.ptr = const_cast<char*>(r.key.data());
    v.u.mem.size = r.key.size();
    vu.push_back(v);
  }
  v = {};
  v.vtype = RD_KAFKA_VTYPE_VALUE;
  v.u.mem.ptr = const_cast<char*>(r.value.data());
  v.u.mem.size = r.value.size();
  vu.push_back(v);
  if (r.partition >= 0) {
    v = {};
    v.vtype = RD_KAFKA_VTYPE_PARTITION;
    v.u.i32 = r.partition;
    vu.push_back(v);
  }
  hdrs = nullptr;
  if (!r.headers.empty()) {
    hdrs = rd_kafka_headers_new(r.headers.size());
    for (const auto& h : r.headers)
      rd_kafka_header_add(hdrs, h.key.data(), static_cast<ssize_t>(h.key.size()), h.value.data(),
                          static_cast<ssize_t>(h.value.size()));
    v = {};
    v.vtype = RD_KAFKA_VTYPE_HEADERS;
    v.u.headers = hdrs;
    vu.push_back(v);
  }
  return vu;
}

struct Pending {
  DeliveryCallback cb;
};

// A record reported delivered without the offset the broker wrote it at was not confirmed by
// the broker: librdkafka 2.0.2 reports a refused batch delivered when a later one to the same
// partition was taken ("implicitly acked"), which is wrong for a partition's first batches
// from a producer (the broker takes those whatever their sequence numbers). With acks=all
// every record the broker took comes back with its offset, so one without is sent again by
// the caller: a possible duplicate instead of a possible loss (design note 59).
bool unconfirmed(const rd_kafka_message_t* m) {
  if (m->err || m->offset >= 0) return false;
  static metrics::Counter& count = metrics::global().counter(
      "budstikke_kafka_unconfirmed_deliveries_total",
      "Records librdkafka reported delivered without the broker's offset (counted as failed "
      "and sent again).");
  count.inc();
  log::warn(kModule, "record reported delivered without an offset; counted as not delivered",
            {{"topic", rd_kafka_topic_name(m->rkt)}, {"partition", std::to_string(m->partition)}});
  return true;
}

void producer_dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* in_flight = static_cast<std::atomic<int64_t>*>(opaque);
  std::unique_ptr<Pending> p(static_cast<Pending*>(m->_private));
  const bool not_confirmed = unconfirmed(m);
  if (p && p->cb) {
    if (m->err) {
      p->cb(kafka_error(m->err, std::string("delivery to ") + rd_kafka_topic_name(m->rkt)));
    } else if (not_confirmed) {
      p->cb(Error::transient(ErrorDomain::kKafka,
                             std::string("delivery to ") + rd_kafka_topic_name(m->rkt) +
                                 ": reported without the broker's offset (not confirmed)"));
    } else {
      p->cb(Delivery{rd_kafka_topic_name(m->rkt), m->partition, m->offset});
    }
  }
  in_flight->fetch_sub(1, std::memory_order_acq_rel);
}

}  // namespace

KafkaSettings KafkaSettings::for_role(const std::string& role) const {
  KafkaSettings s = *this;
  const auto it = properties.find("client.id");
  const std::string base = it == properties.end() || it->second.empty() ? "budstikke" : it->second;
  s.properties["client.id"] = role.empty() ? base : base + "." + role;
  return s;
}

std::string KafkaSettings::bootstrap() const {
  const auto it = properties.find("bootstrap.servers");
  return it == properties.end() ? std::string() : it->second;
}

bool is_retriable_code(int code) {
  switch (static_cast<rd_kafka_resp_err_t>(code)) {
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__PREV_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__IN_PROGRESS:
    case RD_KAFKA_RESP_ERR__TIMED_OUT_QUEUE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_CONCURRENT_TRANSACTIONS:
    case RD_KAFKA_RESP_ERR_KAFKA_STORAGE_ERROR:
    case RD_KAFKA_RESP_ERR_FETCH_SESSION_ID_NOT_FOUND:
    case RD_KAFKA_RESP_ERR_OFFSET_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_PREFERRED_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_THROTTLING_QUOTA_EXCEEDED:
      return true;
    default:
      return false;
  }
}

bool is_fenced(const Error& e) {
  if (e.domain != ErrorDomain::kKafka) return false;
  switch (e.code) {
    case RD_KAFKA_RESP_ERR__FENCED:
    case RD_KAFKA_RESP_ERR_PRODUCER_FENCED:
    case RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH:
    case RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID:
      return true;
    default:
      return false;
  }
}

Error kafka_error(int code, std::string_view context) {
  Error e;
  e.domain = ErrorDomain::kKafka;
  e.code = code;
  e.retriable = is_retriable_code(code);
  e.message = std::string(context) + ": " +
              rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(code)) + " (" +
              rd_kafka_err2str(static_cast<rd_kafka_resp_err_t>(code)) + ")";
  return e;
}

// ---------------------------------------------------------------- producer statistics

std::optional<ProducerStats> parse_producer_stats(std::string_view text) {
  // The topics section (every partition of every topic the client knows: with ~200
  // deliver.<system> topics most of the document) is left unread: the brokers come before it
  // and the client's totals after it, from the last "tx" key on (brokers have one too, but
  // earlier). A topic name cannot hold a quote, so the topics key appears only at the top.
  std::string head;
  std::string tail;
  if (const auto cut = text.find("\"topics\":{"); cut != std::string_view::npos) {
    head.assign(text.substr(0, cut));
    while (!head.empty() && (head.back() == ',' || head.back() == ' ')) head.pop_back();
    head += '}';
    if (const auto tx = text.rfind("\"tx\":"); tx != std::string_view::npos && tx > cut)
      tail = "{" + std::string(text.substr(tx));
  } else {
    head.assign(text);
  }
  const auto doc = nlohmann::json::parse(head, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("name")) return std::nullopt;
  const auto totals = tail.empty() ? doc : nlohmann::json::parse(tail, nullptr, false);
  if (totals.is_discarded() || !totals.is_object()) return std::nullopt;
  auto num = [](const nlohmann::json& o, const char* k) -> double {
    const auto it = o.find(k);
    return it != o.end() && it->is_number() ? it->get<double>() : 0.0;
  };
  ProducerStats st;
  st.client = doc["name"].is_string() ? doc["name"].get<std::string>() : "";
  st.queued_messages = static_cast<int64_t>(num(doc, "msg_cnt"));
  st.records_sent = static_cast<int64_t>(num(totals, "txmsgs"));
  st.record_bytes_sent = static_cast<int64_t>(num(totals, "txmsg_bytes"));
  st.bytes_sent = static_cast<int64_t>(num(totals, "tx_bytes"));
  if (const auto bs = doc.find("brokers"); bs != doc.end() && bs->is_object()) {
    for (const auto& [name, b] : bs->items()) {
      if (!b.is_object() || num(b, "nodeid") < 0) continue;  // bootstrap placeholders
      ProducerStats::Broker out;
      out.id = static_cast<int32_t>(num(b, "nodeid"));
      out.in_flight = static_cast<int64_t>(num(b, "waitresp_cnt"));
      if (const auto req = b.find("req"); req != b.end() && req->is_object())
        out.produce_requests = static_cast<int64_t>(num(*req, "Produce"));
      if (const auto q = b.find("int_latency"); q != b.end() && q->is_object()) {
        out.queue_samples = static_cast<int64_t>(num(*q, "cnt"));
        out.queue_p50_us = num(*q, "p50");
        out.queue_p99_us = num(*q, "p99");
      }
      if (const auto r = b.find("rtt"); r != b.end() && r->is_object()) {
        out.rtt_samples = static_cast<int64_t>(num(*r, "cnt"));
        out.rtt_p50_us = num(*r, "p50");
        out.rtt_p99_us = num(*r, "p99");
      }
      st.brokers.push_back(out);
    }
  }
  std::sort(st.brokers.begin(), st.brokers.end(),
            [](const auto& a, const auto& b) { return a.id < b.id; });
  return st;
}

namespace {

// The latest report of every live producer that takes statistics, by its handle.
struct StatsTable {
  std::mutex mu;
  std::map<const rd_kafka_t*, ProducerStats> latest;
};

StatsTable& stats_table() {
  static StatsTable t;
  return t;
}

void register_stats_gauges() {
  static std::once_flag once;
  std::call_once(once, [] {
    using metrics::GaugeSample;
    using Pick = std::function<void(const ProducerStats&, std::vector<GaugeSample>&)>;
    auto gauge = [](const char* name, const char* help, const Pick& pick) {
      metrics::global().gauge(name, help, [pick] {
        std::vector<GaugeSample> out;
        auto& t = stats_table();
        const std::lock_guard lock(t.mu);
        for (const auto& [rk, st] : t.latest) pick(st, out);
        return out;
      });
    };
    // Latency quantiles are over the last interval: a broker with no requests in it has none
    // (no series rather than a 0 that reads as instant).
    auto per_broker = [](const ProducerStats& st, std::vector<GaugeSample>& out, auto value,
                         const char* quantile, int64_t ProducerStats::Broker::*samples = nullptr) {
      for (const auto& b : st.brokers) {
        if (samples && b.*samples == 0) continue;
        metrics::Labels l{{"client", st.client}, {"broker", std::to_string(b.id)}};
        if (quantile) l.emplace_back("quantile", quantile);
        out.push_back({l, value(b)});
      }
    };
    // The p50 and p99 of one of a broker's latencies, skipped when it had no samples.
    using Member = double ProducerStats::Broker::*;
    auto quantiles = [per_broker](Member p50, Member p99, int64_t ProducerStats::Broker::*n) {
      return [=](const ProducerStats& st, std::vector<GaugeSample>& out) {
        per_broker(
            st, out, [p50](const auto& b) { return b.*p50 / 1e6; }, "0.5", n);
        per_broker(
            st, out, [p99](const auto& b) { return b.*p99 / 1e6; }, "0.99", n);
      };
    };
    using B = ProducerStats::Broker;
    gauge("budstikke_kafka_producer_queue_latency_seconds",
          "How long records waited in the producer before going to the broker (librdkafka "
          "int_latency over the last statistics interval).",
          quantiles(&B::queue_p50_us, &B::queue_p99_us, &B::queue_samples));
    gauge("budstikke_kafka_broker_rtt_seconds",
          "The broker's round trip for the producer's requests (librdkafka rtt over the last "
          "statistics interval).",
          quantiles(&B::rtt_p50_us, &B::rtt_p99_us, &B::rtt_samples));
    gauge("budstikke_kafka_requests_in_flight",
          "The producer's requests sent and not yet answered, at the last statistics report.",
          [per_broker](const ProducerStats& st, std::vector<GaugeSample>& out) {
            per_broker(
                st, out, [](const auto& b) { return static_cast<double>(b.in_flight); }, nullptr);
          });
    gauge("budstikke_kafka_produce_requests",
          "Produce requests the producer sent since it started, at the last statistics report "
          "(with budstikke_kafka_producer_records_sent: records per request).",
          [per_broker](const ProducerStats& st, std::vector<GaugeSample>& out) {
            per_broker(
                st, out, [](const auto& b) { return static_cast<double>(b.produce_requests); },
                nullptr);
          });
    gauge("budstikke_kafka_producer_records_sent",
          "Records the producer sent since it started, at the last statistics report.",
          [](const ProducerStats& st, std::vector<GaugeSample>& out) {
            out.push_back({{{"client", st.client}}, static_cast<double>(st.records_sent)});
          });
    gauge("budstikke_kafka_producer_record_bytes_sent",
          "The bytes of the records the producer sent since it started (keys, values, headers, "
          "before compression), at the last statistics report.",
          [](const ProducerStats& st, std::vector<GaugeSample>& out) {
            out.push_back({{{"client", st.client}}, static_cast<double>(st.record_bytes_sent)});
          });
    gauge("budstikke_kafka_producer_bytes_sent",
          "The bytes of every request the producer sent to the brokers since it started (after "
          "compression), at the last statistics report; against "
          "budstikke_kafka_producer_record_bytes_sent it shows what kafka.compression saves.",
          [](const ProducerStats& st, std::vector<GaugeSample>& out) {
            out.push_back({{{"client", st.client}}, static_cast<double>(st.bytes_sent)});
          });
    gauge("budstikke_kafka_producer_queued_messages",
          "Records in the producer not yet acknowledged by Kafka, at the last statistics report.",
          [](const ProducerStats& st, std::vector<GaugeSample>& out) {
            out.push_back({{{"client", st.client}}, static_cast<double>(st.queued_messages)});
          });
  });
}

int producer_stats_cb(rd_kafka_t* rk, char* json, size_t len, void*) {
  if (auto st = parse_producer_stats(std::string_view(json, len))) {
    auto& t = stats_table();
    const std::lock_guard lock(t.mu);
    t.latest[rk] = std::move(*st);
  }
  return 0;  // librdkafka frees the document
}

// Asks librdkafka for statistics every settings.statistics_interval_ms (none when 0); the
// callback runs where the producer's queue is served (rd_kafka_poll). Returns whether they
// were turned on.
Result<bool> enable_statistics(rd_kafka_conf_t* conf, const KafkaSettings& settings) {
  if (settings.statistics_interval_ms <= 0) return false;
  char serr[256];
  if (rd_kafka_conf_set(conf, "statistics.interval.ms",
                        std::to_string(settings.statistics_interval_ms).c_str(), serr,
                        sizeof serr) != RD_KAFKA_CONF_OK)
    return Error::permanent(ErrorDomain::kConfig,
                            std::string("kafka statistics_interval_ms: ") + serr);
  rd_kafka_conf_set_stats_cb(conf, producer_stats_cb);
  register_stats_gauges();
  return true;
}

// After rd_kafka_destroy: no statistics callback can run any more.
void forget_statistics(const rd_kafka_t* rk) {
  auto& t = stats_table();
  const std::lock_guard lock(t.mu);
  t.latest.erase(rk);
}

}  // namespace

// ---------------------------------------------------------------- Producer

namespace {

// Every topic's metadata into the client's cache (design note 58): a topic's first record
// then finds its partition's leader there instead of waiting for librdkafka 2.0.2's
// once-a-second lookup of unknown topics.
Status warm_topic_metadata(rd_kafka_t* rk, Millis timeout) {
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(rk, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, "metadata of every topic");
  rd_kafka_metadata_destroy(md);
  return {};
}

// How often a transactional producer fetches it again (ProducerOptions::rewarm_interval_ms).
constexpr Millis kRewarmInterval{300000};

void warm_or_note(rd_kafka_t* rk, Millis timeout) {
  if (auto st = warm_topic_metadata(rk, timeout); !st)
    log::debug(kModule, "topic metadata not fetched; a topic's first record may wait up to 1 s",
               {{"error", st.error().message}});
}

}  // namespace

Result<std::unique_ptr<Producer>> Producer::create(const KafkaSettings& settings,
                                                   const ProducerOptions& opts) {
  auto conf = make_conf(
      settings,
      {{"enable.idempotence", "true"},
       {"acks", "all"},
       {"linger.ms", std::to_string(opts.linger_ms >= 0 ? opts.linger_ms : settings.linger_ms)},
       {"queue.buffering.max.messages", std::to_string(opts.max_in_flight_messages)},
       {"queue.buffering.max.kbytes", "1048576"},
       {"message.timeout.ms", std::to_string(opts.message_timeout_ms)},
       {"compression.codec", settings.compression},
       {"message.max.bytes", "16777216"}});
  if (!conf) return conf.error();
  std::unique_ptr<Producer> p(new Producer());
  rd_kafka_conf_set_opaque(conf->get(), &p->in_flight_);
  rd_kafka_conf_set_dr_msg_cb(conf->get(), producer_dr_cb);
  rd_kafka_conf_set_error_cb(conf->get(), error_cb);
  auto stats = enable_statistics(conf->get(), settings);  // served on the poll thread
  if (!stats) return stats.error();
  p->stats_ = *stats;
  char err[512];
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), err, sizeof err);
  if (!p->rk_) return Error::permanent(ErrorDomain::kKafka, std::string("producer: ") + err);
  (void)conf->release();  // owned by rk_ now
  p->rewarm_ = opts.warm_metadata ? Millis(opts.rewarm_interval_ms) : Millis(0);
  p->poller_ = std::thread([raw = p.get()] {
    set_thread_name("bs-kafka-dr");
    raw->poll_loop();
  });
  if (opts.warm_metadata) warm_or_note(p->rk_, Millis(opts.warm_timeout_ms));
  return p;
}

Status Producer::warm_metadata(Millis timeout) {
  return warm_topic_metadata(rk_, timeout);
}

void Producer::poll_loop() {
  auto next_warm = std::chrono::steady_clock::now() + rewarm_;
  while (!stop_.load(std::memory_order_acquire)) {
    rd_kafka_poll(rk_, 100);
    if (rewarm_.count() > 0 && std::chrono::steady_clock::now() >= next_warm) {
      warm_or_note(rk_, Millis(1000));
      next_warm = std::chrono::steady_clock::now() + rewarm_;
    }
  }
}

Producer::~Producer() {
  if (!rk_) return;
  if (auto st = flush(Millis(30000)); !st)
    log::error(kModule, "producer closed with undelivered records",
               {{"count", std::to_string(in_flight())}, {"error", st.error().message}});
  stop_.store(true, std::memory_order_release);
  if (poller_.joinable()) poller_.join();
  rd_kafka_poll(rk_, 0);  // run any last callbacks on this thread
  rd_kafka_destroy(rk_);
  if (stats_) forget_statistics(rk_);
}

Status Producer::send(const Record& r, DeliveryCallback cb) {
  rd_kafka_headers_t* hdrs = nullptr;
  auto vu = build_vu(r, hdrs);
  auto pending = std::make_unique<Pending>(Pending{std::move(cb)});
  rd_kafka_vu_t op{};
  op.vtype = RD_KAFKA_VTYPE_OPAQUE;
  op.u.ptr = pending.get();
  vu.push_back(op);
  in_flight_.fetch_add(1, std::memory_order_acq_rel);
  for (int attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_produceva(rk_, vu.data(), vu.size());
    if (!e) {
      (void)pending.release();  // freed by the delivery report
      return {};
    }
    const auto code = rd_kafka_error_code(e);
    if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 300000) {
      rd_kafka_error_destroy(e);
      // Backpressure: the poll thread drains delivery reports; wait for room.
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      continue;
    }
    in_flight_.fetch_sub(1, std::memory_order_acq_rel);
    if (hdrs) rd_kafka_headers_destroy(hdrs);  // not taken over on failure
    return from_error_t(e, "produce to " + r.topic);
  }
}

Result<Delivery> Producer::send_sync(const Record& r, Millis timeout) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Result<Delivery>> result;
  };
  auto st = std::make_shared<State>();
  auto sent = send(r, [st](Result<Delivery> d) {
    const std::lock_guard lock(st->mu);
    st->result.emplace(std::move(d));
    st->cv.notify_all();
  });
  if (!sent) return sent.error();
  std::unique_lock lock(st->mu);
  if (!st->cv.wait_for(lock, timeout, [&] { return st->result.has_value(); }))
    return Error::transient(ErrorDomain::kKafka, "no delivery report for " + r.topic + " within " +
                                                     std::to_string(timeout.count()) + " ms");
  return std::move(*st->result);
}

Status Producer::flush(Millis timeout) {
  const auto err = rd_kafka_flush(rk_, static_cast<int>(timeout.count()));
  // rd_kafka_flush serves callbacks itself; the poll thread may still be running the last ones.
  const auto deadline = std::chrono::steady_clock::now() + Millis(1000);
  while (in_flight() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(Millis(1));
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR || in_flight() > 0)
    return kafka_error(err ? err : RD_KAFKA_RESP_ERR__TIMED_OUT,
                       "flush (" + std::to_string(in_flight()) + " records in flight)");
  return {};
}

int64_t Producer::in_flight() const {
  return in_flight_.load(std::memory_order_acquire);
}

// ---------------------------------------------------------------- Message

Message::Message(rd_kafka_message_s* m) : m_(m) {}
Message::~Message() {
  if (m_) rd_kafka_message_destroy(m_);
}
Message::Message(Message&& o) noexcept : m_(o.m_) {
  o.m_ = nullptr;
}
Message& Message::operator=(Message&& o) noexcept {
  if (this != &o) {
    if (m_) rd_kafka_message_destroy(m_);
    m_ = o.m_;
    o.m_ = nullptr;
  }
  return *this;
}
std::string_view Message::topic() const {
  return rd_kafka_topic_name(m_->rkt);
}
int32_t Message::partition() const {
  return m_->partition;
}
int64_t Message::offset() const {
  return m_->offset;
}
std::string_view Message::key() const {
  return m_->key ? std::string_view(static_cast<const char*>(m_->key), m_->key_len)
                 : std::string_view();
}
std::string_view Message::value() const {
  return m_->payload ? std::string_view(static_cast<const char*>(m_->payload), m_->len)
                     : std::string_view();
}
int64_t Message::timestamp_ms() const {
  return rd_kafka_message_timestamp(m_, nullptr);
}
std::optional<std::string> Message::header(std::string_view name) const {
  const auto v = header_view(std::string(name).c_str());
  return v ? std::optional<std::string>(std::string(*v)) : std::nullopt;
}
std::optional<std::string_view> Message::header_view(const char* name) const {
  rd_kafka_headers_t* h = nullptr;
  if (rd_kafka_message_headers(m_, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  const void* v = nullptr;
  size_t n = 0;
  if (rd_kafka_header_get_last(h, name, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return v ? std::string_view(static_cast<const char*>(v), n) : std::string_view();
}
std::vector<Header> Message::headers() const {
  std::vector<Header> out;
  rd_kafka_headers_t* h = nullptr;
  if (rd_kafka_message_headers(m_, &h) != RD_KAFKA_RESP_ERR_NO_ERROR) return out;
  out.reserve(rd_kafka_header_cnt(h));
  const char* name = nullptr;
  const void* v = nullptr;
  size_t n = 0;
  for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &n) == RD_KAFKA_RESP_ERR_NO_ERROR;
       ++i)
    out.push_back(Header{name, v ? std::string(static_cast<const char*>(v), n) : std::string()});
  return out;
}

// ---------------------------------------------------------------- Consumer

namespace {

// On revoke, commit what was processed before the partitions move to another member.
void rebalance_cb(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                  void* opaque) {
  auto* self = static_cast<Consumer*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    log::info(kModule, "partitions assigned",
              {{"group", self->group_id()}, {"count", std::to_string(parts->cnt)}});
    rd_kafka_assign(rk, parts);
  } else {
    std::vector<std::pair<std::string, int32_t>> revoked;
    revoked.reserve(static_cast<size_t>(parts->cnt));
    for (int i = 0; i < parts->cnt; ++i)
      revoked.emplace_back(parts->elems[i].topic, parts->elems[i].partition);
    self->call_revoke(revoked);
    if (self->transactional()) {
      self->clear_stored();
    } else if (auto st = self->commit(true); !st) {
      log::warn(kModule, "commit on revoke failed", {{"error", st.error().message}});
    }
    self->clear_stored();
    rd_kafka_assign(rk, nullptr);
  }
}

}  // namespace

Result<std::unique_ptr<Consumer>> Consumer::create(const KafkaSettings& settings,
                                                   const std::string& group_id,
                                                   const std::vector<std::string>& topics,
                                                   const ConsumerOptions& opts) {
  auto conf = make_conf(
      settings, {{"group.id", group_id},
                 {"enable.auto.commit", "false"},
                 {"enable.auto.offset.store", "false"},
                 {"auto.offset.reset", opts.auto_offset_reset},
                 {"isolation.level", opts.read_committed ? "read_committed" : "read_uncommitted"},
                 {"session.timeout.ms", std::to_string(opts.session_timeout_ms)},
                 {"max.poll.interval.ms", std::to_string(opts.max_poll_interval_ms)},
                 {"enable.partition.eof", opts.partition_eof ? "true" : "false"},
                 {"fetch.wait.max.ms", std::to_string(opts.fetch_wait_max_ms)}});
  if (!conf) return conf.error();
  for (const auto& [key, value] :
       {std::pair<const char*, const std::string&>{"group.instance.id", opts.group_instance_id},
        {"partition.assignment.strategy", opts.assignment_strategy}}) {
    if (value.empty()) continue;
    char err[512];
    if (rd_kafka_conf_set(conf->get(), key, value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK)
      return Error::permanent(ErrorDomain::kKafka, std::string(key) + ": " + err);
  }
  std::unique_ptr<Consumer> c(new Consumer());
  c->group_ = group_id;
  c->transactional_ = opts.transactional;
  rd_kafka_conf_set_opaque(conf->get(), c.get());
  rd_kafka_conf_set_rebalance_cb(conf->get(), rebalance_cb);
  rd_kafka_conf_set_error_cb(conf->get(), error_cb);
  char err[512];
  c->rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf->get(), err, sizeof err);
  if (!c->rk_) return Error::permanent(ErrorDomain::kKafka, std::string("consumer: ") + err);
  (void)conf->release();
  rd_kafka_poll_set_consumer(c->rk_);
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(topics.size())));
  for (const auto& t : topics)
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), RD_KAFKA_PARTITION_UA);
  if (const auto e = rd_kafka_subscribe(c->rk_, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return kafka_error(e, "subscribe");
  return c;
}

Consumer::~Consumer() {
  if (!rk_) return;
  if (!closed_) (void)close();
  // librdkafka 2.0.2 can block forever in rd_kafka_destroy() when a subscribed topic was
  // deleted while the consumer lived. Shutdown must never hang: wait a bounded time, then
  // leave the handle to the process exit and say so.
  auto done = std::make_shared<std::promise<void>>();
  auto finished = done->get_future();
  std::thread([rk = rk_, done] {
    rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    done->set_value();
  }).detach();
  if (finished.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    log::error(kModule, "consumer did not shut down within 10 s; abandoning its handle",
               {{"group", group_}});
}

bool Consumer::failed() const {
  return rd_kafka_fatal_error(rk_, nullptr, 0) != RD_KAFKA_RESP_ERR_NO_ERROR;
}

Result<std::optional<Message>> Consumer::poll(Millis timeout) {
  rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, static_cast<int>(timeout.count()));
  // An end of partition is reported and polled past (without waiting again): a caller
  // taking a burst of records must not see it as the end of what is ready.
  while (m && m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
    if (on_eof_ && m->rkt) on_eof_(rd_kafka_topic_name(m->rkt), m->partition, m->offset);
    rd_kafka_message_destroy(m);
    m = rd_kafka_consumer_poll(rk_, 0);
  }
  if (!m) return std::optional<Message>();
  Message msg(m);
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) return std::optional<Message>(std::move(msg));
  if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
    // The cause, not "fatal": a fenced static member (another consumer joined the group with
    // this group.instance.id) must be told apart from other ends.
    char reason[512];
    const auto orig = rd_kafka_fatal_error(rk_, reason, sizeof reason);
    Error e = kafka_error(orig, "consume (fatal)");
    e.retriable = false;
    e.message += ": " + std::string(reason);
    return e;
  }
  const Error e = kafka_error(m->err, "consume");
  if (e.retriable) {
    log::warn(kModule, "transient consume error", {{"error", e.message}});
    return std::optional<Message>();
  }
  return e;
}

Status Consumer::store(const Message& m) {
  auto& slot = stored_[{std::string(m.topic()), m.partition()}];
  slot = std::max(slot, m.offset() + 1);
  return {};
}

Status Consumer::store_offset(const std::string& topic, int32_t partition, int64_t next_offset) {
  auto& slot = stored_[{topic, partition}];
  slot = std::max(slot, next_offset);
  return {};
}

namespace {

Status pause_resume(rd_kafka_t* rk, const std::vector<std::pair<std::string, int32_t>>& parts,
                    bool pause) {
  if (parts.empty()) return {};
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
  for (const auto& [t, p] : parts) rd_kafka_topic_partition_list_add(list.get(), t.c_str(), p);
  const auto e = pause ? rd_kafka_pause_partitions(rk, list.get())
                       : rd_kafka_resume_partitions(rk, list.get());
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, pause ? "pause" : "resume");
  return {};
}

}  // namespace

Status Consumer::pause(const std::vector<std::pair<std::string, int32_t>>& partitions) {
  return pause_resume(rk_, partitions, true);
}

Status Consumer::resume(const std::vector<std::pair<std::string, int32_t>>& partitions) {
  return pause_resume(rk_, partitions, false);
}

Result<std::vector<int64_t>> Consumer::end_offsets(
    const std::vector<std::pair<std::string, int32_t>>& partitions, Millis timeout) {
  std::vector<int64_t> out(partitions.size(), -1);
  if (partitions.empty()) return out;
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(partitions.size())));
  // A ListOffsets request for "latest" (the timestamp -1) of every partition at once.
  for (const auto& [t, p] : partitions)
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), p)->offset = RD_KAFKA_OFFSET_END;
  if (const auto e = rd_kafka_offsets_for_times(rk_, list.get(), static_cast<int>(timeout.count()));
      e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return kafka_error(e, "end offsets");
  for (size_t i = 0; i < partitions.size(); ++i) {
    const auto* el = rd_kafka_topic_partition_list_find(list.get(), partitions[i].first.c_str(),
                                                        partitions[i].second);
    if (el && el->err == RD_KAFKA_RESP_ERR_NO_ERROR) out[i] = el->offset;
  }
  return out;
}

std::vector<std::pair<std::string, int32_t>> Consumer::assignment() const {
  std::vector<std::pair<std::string, int32_t>> out;
  rd_kafka_topic_partition_list_t* list = nullptr;
  if (rd_kafka_assignment(rk_, &list) != RD_KAFKA_RESP_ERR_NO_ERROR || !list) return out;
  for (int i = 0; i < list->cnt; ++i)
    out.emplace_back(list->elems[i].topic, list->elems[i].partition);
  rd_kafka_topic_partition_list_destroy(list);
  return out;
}

std::vector<TopicPartitionOffset> Consumer::stored_offsets() const {
  std::vector<TopicPartitionOffset> out;
  out.reserve(stored_.size());
  for (const auto& [tp, off] : stored_) out.push_back({tp.first, tp.second, off});
  return out;
}

void Consumer::clear_stored() {
  stored_.clear();
}

Status Consumer::commit(bool sync) {
  if (stored_.empty()) return {};
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(stored_.size())));
  for (const auto& [tp, off] : stored_)
    rd_kafka_topic_partition_list_add(list.get(), tp.first.c_str(), tp.second)->offset = off;
  const auto e = rd_kafka_commit(rk_, list.get(), sync ? 0 : 1);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, "commit");
  if (sync) {
    for (int i = 0; i < list->cnt; ++i)
      if (list->elems[i].err)
        return kafka_error(list->elems[i].err, std::string("commit ") + list->elems[i].topic + "[" +
                                                   std::to_string(list->elems[i].partition) + "]");
  }
  stored_.clear();
  return {};
}

Status Consumer::close() {
  if (closed_) return {};
  closed_ = true;
  Status st = transactional_ ? Status() : commit(true);
  rd_kafka_consumer_close(rk_);
  return st;
}

// ---------------------------------------------------------------- TransactionalProducer

void txn_dr_cb(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* self = static_cast<TransactionalProducer*>(opaque);
  if (unconfirmed(m)) {
    self->failed_.fetch_add(1);  // commit() aborts instead
    return;
  }
  if (!m->err) return;
  self->failed_.fetch_add(1);
  log::warn(kModule, "transactional delivery failed",
            {{"topic", rd_kafka_topic_name(m->rkt)}, {"error", rd_kafka_err2name(m->err)}});
}

Result<std::unique_ptr<TransactionalProducer>> TransactionalProducer::create(
    const KafkaSettings& settings, const std::string& transactional_id, Millis init_timeout,
    bool warm_metadata) {
  auto conf = make_conf(settings, {{"transactional.id", transactional_id},
                                   {"enable.idempotence", "true"},
                                   {"acks", "all"},
                                   // A route enqueues its whole batch at once, so the
                                   // records batch without waiting; a 5 ms linger
                                   // only held them back (A/B at 100 msg/s: p99 ~180
                                   // -> ~120 ms, same throughput; session 12).
                                   {"linger.ms", "0"},
                                   // A transaction that begins while the broker still writes
                                   // the previous one's markers is answered
                                   // CONCURRENT_TRANSACTIONS and retried after this; at the
                                   // 100 ms default that wait was most of a route's latency.
                                   {"retry.backoff.ms", "10"},
                                   {"compression.codec", settings.compression},
                                   {"transaction.timeout.ms", "60000"}});
  if (!conf) return conf.error();
  if (auto st = add_spin_brake(conf->get(), settings); !st) return st.error();
  std::unique_ptr<TransactionalProducer> p(new TransactionalProducer());
  rd_kafka_conf_set_opaque(conf->get(), p.get());
  rd_kafka_conf_set_dr_msg_cb(conf->get(), txn_dr_cb);
  rd_kafka_conf_set_error_cb(conf->get(), error_cb);
  // Served by commit (its flush) and by poll(), which the route loop calls before each batch.
  auto stats = enable_statistics(conf->get(), settings);
  if (!stats) return stats.error();
  p->stats_ = *stats;
  char err[512];
  p->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), err, sizeof err);
  if (!p->rk_)
    return Error::permanent(ErrorDomain::kKafka, std::string("transactional producer: ") + err);
  (void)conf->release();
  if (auto* e = rd_kafka_init_transactions(p->rk_, static_cast<int>(init_timeout.count())))
    return from_error_t(e, "init transactions");
  if (warm_metadata) {
    warm_or_note(p->rk_, Millis(1000));
    p->rewarm_ = true;
    p->next_warm_ = std::chrono::steady_clock::now() + kRewarmInterval;
  }
  return p;
}

Status end_open_transaction(const KafkaSettings& settings, const std::string& transactional_id) {
  // Made to end the open transaction and dropped: it writes nothing, so no metadata.
  auto p = TransactionalProducer::create(settings, transactional_id, Millis(60000), false);
  if (!p) return p.error();
  return {};
}

TransactionalProducer::~TransactionalProducer() {
  if (!rk_) return;
  rd_kafka_destroy(rk_);
  if (stats_) forget_statistics(rk_);
}

void TransactionalProducer::poll() {
  rd_kafka_poll(rk_, 0);
  if (rewarm_ && std::chrono::steady_clock::now() >= next_warm_) {
    warm_or_note(rk_, Millis(1000));
    next_warm_ = std::chrono::steady_clock::now() + kRewarmInterval;
  }
}

Status TransactionalProducer::begin() {
  failed_.store(0);
  if (auto* e = rd_kafka_begin_transaction(rk_)) return from_error_t(e, "begin transaction");
  return {};
}

Status TransactionalProducer::send(const Record& r) {
  rd_kafka_headers_t* hdrs = nullptr;
  auto vu = build_vu(r, hdrs);
  for (int attempt = 0;; ++attempt) {
    rd_kafka_error_t* e = rd_kafka_produceva(rk_, vu.data(), vu.size());
    if (!e) return {};
    if (rd_kafka_error_code(e) == RD_KAFKA_RESP_ERR__QUEUE_FULL && attempt < 100000) {
      rd_kafka_error_destroy(e);
      rd_kafka_poll(rk_, 1);
      continue;
    }
    if (hdrs) rd_kafka_headers_destroy(hdrs);
    return from_error_t(e, "transactional produce to " + r.topic);
  }
}

Status TransactionalProducer::send_offsets(Consumer& consumer, Millis timeout) {
  const auto offs = consumer.stored_offsets();
  if (offs.empty()) return {};
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offs.size())));
  for (const auto& o : offs)
    rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), o.partition)->offset = o.offset;
  rd_kafka_consumer_group_metadata_t* md = rd_kafka_consumer_group_metadata(consumer.handle());
  rd_kafka_error_t* e =
      rd_kafka_send_offsets_to_transaction(rk_, list.get(), md, static_cast<int>(timeout.count()));
  rd_kafka_consumer_group_metadata_destroy(md);
  if (e) return from_error_t(e, "send offsets to transaction");
  return {};
}

Status TransactionalProducer::commit(Millis timeout) {
  // Every delivery report first: a record reported delivered without an offset was not
  // confirmed (design note 59) and commit_transaction would commit without it; the caller
  // aborts instead and reads the batch again. The commit's own flush then has nothing left.
  if (rd_kafka_flush(rk_, static_cast<int>(timeout.count())) == RD_KAFKA_RESP_ERR_NO_ERROR &&
      failed_.load() > 0)
    return Error::transient(ErrorDomain::kKafka,
                            "commit transaction: " + std::to_string(failed_.load()) +
                                " record(s) failed or not confirmed by the broker");
  if (auto* e = rd_kafka_commit_transaction(rk_, static_cast<int>(timeout.count())))
    return from_error_t(e, "commit transaction");
  if (failed_.load() > 0)  // cannot happen after a successful commit, kept as a guard
    return Error::transient(ErrorDomain::kKafka, "commit transaction: records failed");
  return {};
}

Status TransactionalProducer::abort(Millis timeout) {
  if (auto* e = rd_kafka_abort_transaction(rk_, static_cast<int>(timeout.count())))
    return from_error_t(e, "abort transaction");
  return {};
}

// ---------------------------------------------------------------- Admin

namespace {

struct Handle {
  rd_kafka_t* rk = nullptr;
  ~Handle() {
    if (rk) rd_kafka_destroy(rk);
  }
};

Status admin_handle(const KafkaSettings& s, Handle& h) {
  auto conf = make_conf(s, {});
  if (!conf) return conf.error();
  rd_kafka_conf_set_error_cb(conf->get(), [](rd_kafka_t*, int, const char*, void*) {});
  char err[512];
  h.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf->get(), err, sizeof err);
  if (!h.rk) return Error::permanent(ErrorDomain::kKafka, std::string("admin client: ") + err);
  (void)conf->release();
  return {};
}

// Topics that existed before ensure_topics with another partition count than the one it
// would have given them: said once, since the engine never changes a topic's count (a
// count only grows, and growing moves keys), so a changed setting has no effect on them.
void warn_other_partition_counts(const KafkaSettings& settings,
                                 const std::vector<TopicSpec>& topics,
                                 const std::set<std::string>& existed,
                                 const std::map<std::string, int>& partitions) {
  int n = 0;
  const TopicSpec* example = nullptr;
  int example_has = 0;
  for (const auto& t : topics) {
    if (!t.counts_are_ours || existed.count(t.name) == 0) continue;
    const auto it = partitions.find(t.name);
    const int want = t.partitions > 0 ? t.partitions : settings.default_partitions;
    if (it == partitions.end() || it->second == want) continue;
    if (n++ == 0) {
      example = &t;
      example_has = it->second;
    }
  }
  if (n == 0) return;
  log::warn(
      kModule,
      "topics exist with another partition count than configured; their count stays as "
      "it is (create them anew, or under another kafka.topic_prefix, to change it)",
      {{"topics", std::to_string(n)},
       {"example", example->name},
       {"partitions", std::to_string(example_has)},
       {"configured", std::to_string(example->partitions > 0 ? example->partitions
                                                             : settings.default_partitions)}});
}

// Waits until the leader of each partition answers for it (a ListOffsets request), until
// `deadline`; returns how many did not. The metadata names a just-created partition's leader
// before that broker has taken the partition on: a producer's first batch there is refused
// (NOT_LEADER) while its next may already be taken, and librdkafka 2.0.2 then reports the
// refused one delivered (design note 59).
size_t wait_until_led(rd_kafka_t* rk, std::vector<std::pair<std::string, int32_t>> parts,
                      std::chrono::steady_clock::time_point deadline) {
  while (!parts.empty()) {
    const auto left =
        std::chrono::duration_cast<Millis>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts.size())));
    for (const auto& [topic, partition] : parts)
      rd_kafka_topic_partition_list_add(list.get(), topic.c_str(), partition)->offset =
          RD_KAFKA_OFFSET_END;  // as a timestamp: the latest offset
    const auto e = rd_kafka_offsets_for_times(
        rk, list.get(), static_cast<int>(std::min<int64_t>(left.count(), 5000)));
    std::vector<std::pair<std::string, int32_t>> still;
    for (int i = 0; i < list->cnt; ++i)
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR || list->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR)
        still.emplace_back(list->elems[i].topic, list->elems[i].partition);
    parts.swap(still);
    if (!parts.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return parts.size();
}

}  // namespace

Status ensure_topics(const KafkaSettings& settings, const std::vector<TopicSpec>& topics,
                     Millis timeout) {
  if (topics.empty()) return {};
  Handle h;
  if (auto st = admin_handle(settings, h); !st) return st;
  std::vector<rd_kafka_NewTopic_t*> nts;
  char err[512];
  for (const auto& t : topics) {
    auto* nt = rd_kafka_NewTopic_new(
        t.name.c_str(), t.partitions > 0 ? t.partitions : settings.default_partitions,
        t.replication > 0 ? t.replication : settings.default_replication, err, sizeof err);
    if (!nt) {
      for (auto* x : nts) rd_kafka_NewTopic_destroy(x);
      return Error::permanent(ErrorDomain::kKafka, "topic " + t.name + ": " + err);
    }
    for (const auto& [k, v] : t.config) rd_kafka_NewTopic_set_config(nt, k.c_str(), v.c_str());
    nts.push_back(nt);
  }
  rd_kafka_queue_t* q = rd_kafka_queue_new(h.rk);
  rd_kafka_AdminOptions_t* opts = rd_kafka_AdminOptions_new(h.rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
  rd_kafka_AdminOptions_set_operation_timeout(opts, static_cast<int>(timeout.count()), err,
                                              sizeof err);
  rd_kafka_AdminOptions_set_request_timeout(opts, static_cast<int>(timeout.count()), err,
                                            sizeof err);
  rd_kafka_CreateTopics(h.rk, nts.data(), nts.size(), opts, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(timeout.count()) + 5000);
  Status result;
  std::set<std::string> existed;  // topics that were there already, with their own counts
  if (!ev) {
    result = Error::transient(ErrorDomain::kKafka, "create topics: no answer from the cluster");
  } else if (rd_kafka_event_error(ev)) {
    result = kafka_error(rd_kafka_event_error(ev),
                         std::string("create topics: ") + rd_kafka_event_error_string(ev));
  } else {
    const auto* res = rd_kafka_event_CreateTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** trs = rd_kafka_CreateTopics_result_topics(res, &n);
    for (size_t i = 0; i < n; ++i) {
      const auto e = rd_kafka_topic_result_error(trs[i]);
      if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        existed.insert(rd_kafka_topic_result_name(trs[i]));
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
        const char* es = rd_kafka_topic_result_error_string(trs[i]);
        result = kafka_error(e, std::string("create topic ") + rd_kafka_topic_result_name(trs[i]) +
                                    (es ? std::string(": ") + es : std::string()));
        break;
      }
    }
  }
  if (ev) rd_kafka_event_destroy(ev);
  rd_kafka_AdminOptions_destroy(opts);
  rd_kafka_queue_destroy(q);
  for (auto* x : nts) rd_kafka_NewTopic_destroy(x);
  if (!result) return result;
  // CreateTopics answers before every broker's metadata shows the topics; callers list,
  // produce to and subscribe to them at once, so wait until the metadata has them all.
  // A busy broker (a just-started one creating hundreds of partitions with both cores taken)
  // can take well over 30 s; the wait says so every 10 s.
  const auto started = std::chrono::steady_clock::now();
  const auto deadline = started + timeout;
  auto next_note = started + std::chrono::seconds(10);
  size_t missing = topics.size();
  std::string a_missing = topics.front().name;
  for (;;) {
    const rd_kafka_metadata_t* md = nullptr;
    if (rd_kafka_metadata(h.rk, 1, nullptr, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
      std::map<std::string, int> ready;  // topic -> partitions
      for (int i = 0; i < md->topic_cnt; ++i)
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[i].partition_cnt > 0)
          ready.emplace(md->topics[i].topic, md->topics[i].partition_cnt);
      rd_kafka_metadata_destroy(md);
      missing = 0;
      for (const auto& t : topics)
        if (ready.count(t.name) == 0 && missing++ == 0) a_missing = t.name;
      if (missing == 0) {
        warn_other_partition_counts(settings, topics, existed, ready);
        // The ones made here: written to at once, they must be led already (design note 59).
        std::vector<std::pair<std::string, int32_t>> made;
        for (const auto& t : topics)
          if (existed.count(t.name) == 0)
            for (int32_t p = 0; p < ready[t.name]; ++p) made.emplace_back(t.name, p);
        const size_t total = made.size();
        if (const size_t unled = wait_until_led(h.rk, std::move(made), deadline); unled > 0)
          return Error::transient(ErrorDomain::kKafka,
                                  "create topics: created, but " + std::to_string(unled) + " of " +
                                      std::to_string(total) +
                                      " new partitions without a leader that answers for them "
                                      "within " +
                                      std::to_string(timeout.count()) +
                                      " ms; is the broker overloaded?");
        return {};
      }
    }
    const auto now = std::chrono::steady_clock::now();
    if (now > deadline)
      return Error::transient(ErrorDomain::kKafka,
                              "create topics: created, but " + std::to_string(missing) + " of " +
                                  std::to_string(topics.size()) +
                                  " not in the cluster's metadata within " +
                                  std::to_string(timeout.count()) + " ms (e.g. " + a_missing +
                                  "); is the broker overloaded?");
    if (now > next_note) {
      log::info(kModule, "waiting for the cluster to show the created topics",
                {{"missing", std::to_string(missing)},
                 {"of", std::to_string(topics.size())},
                 {"waited_s",
                  std::to_string(
                      std::chrono::duration_cast<std::chrono::seconds>(now - started).count())}});
      next_note = now + std::chrono::seconds(10);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

Result<std::vector<std::string>> topics_with_prefix(const KafkaSettings& settings,
                                                    const std::string& prefix) {
  auto all = list_topics(settings);
  if (!all) return all.error();
  std::vector<std::string> mine;
  for (auto& t : *all)
    if (t.rfind(prefix, 0) == 0) mine.push_back(std::move(t));
  return mine;
}

Status delete_topics(const KafkaSettings& settings, const std::vector<std::string>& topics,
                     Millis timeout) {
  if (topics.empty()) return {};
  Handle h;
  if (auto st = admin_handle(settings, h); !st) return st;
  std::vector<rd_kafka_DeleteTopic_t*> dts;
  dts.reserve(topics.size());
  for (const auto& t : topics) dts.push_back(rd_kafka_DeleteTopic_new(t.c_str()));
  rd_kafka_queue_t* q = rd_kafka_queue_new(h.rk);
  rd_kafka_DeleteTopics(h.rk, dts.data(), dts.size(), nullptr, q);
  rd_kafka_event_t* ev = rd_kafka_queue_poll(q, static_cast<int>(timeout.count()));
  Status result;
  if (!ev) {
    result = Error::transient(ErrorDomain::kKafka, "delete topics: no answer from the cluster");
  } else {
    const auto* res = rd_kafka_event_DeleteTopics_result(ev);
    size_t n = 0;
    const rd_kafka_topic_result_t** trs =
        res ? rd_kafka_DeleteTopics_result_topics(res, &n) : nullptr;
    for (size_t i = 0; i < n; ++i) {
      const auto e = rd_kafka_topic_result_error(trs[i]);
      if (e != RD_KAFKA_RESP_ERR_NO_ERROR && e != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        result = kafka_error(e, std::string("delete topic ") + rd_kafka_topic_result_name(trs[i]));
        break;
      }
    }
    rd_kafka_event_destroy(ev);
  }
  rd_kafka_queue_destroy(q);
  for (auto* x : dts) rd_kafka_DeleteTopic_destroy(x);
  return result;
}

Result<std::vector<std::string>> list_topics(const KafkaSettings& settings, Millis timeout) {
  Handle h;
  if (auto st = admin_handle(settings, h); !st) return st.error();
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(h.rk, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return kafka_error(e, "metadata from " + settings.bootstrap());
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(md->topic_cnt));
  for (int i = 0; i < md->topic_cnt; ++i) out.emplace_back(md->topics[i].topic);
  rd_kafka_metadata_destroy(md);
  return out;
}

namespace {

// A partition's low and high watermarks, each query waiting up to `timeout` for its answer.
// A partition just created, or one whose leader is moving, is answered
// NOT_LEADER_OR_FOLLOWER or LEADER_NOT_AVAILABLE for a while (seen on a broker busy with
// another engine's topics, seconds after a start); such answers are asked again until
// `retry_until`, the whole operation's deadline (every partition's retries share it), not
// taken as the answer.
rd_kafka_resp_err_t query_watermarks(rd_kafka_t* rk, const std::string& topic, int32_t partition,
                                     int64_t* lo, int64_t* hi, Millis timeout,
                                     std::chrono::steady_clock::time_point retry_until) {
  for (;;) {
    const auto e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), partition, lo, hi,
                                                    static_cast<int>(timeout.count()));
    if (e == RD_KAFKA_RESP_ERR_NO_ERROR || !is_retriable_code(e) ||
        std::chrono::steady_clock::now() + Millis(100) >= retry_until)
      return e;
    std::this_thread::sleep_for(Millis(100));
  }
}

}  // namespace

Result<int64_t> topic_message_count(const KafkaSettings& settings, const std::string& topic,
                                    Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Handle h;
  if (auto st = admin_handle(settings, h); !st) return st.error();
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(h.rk, topic.c_str(), nullptr);
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(h.rk, 0, rkt, &md, static_cast<int>(timeout.count()));
  rd_kafka_topic_destroy(rkt);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, "metadata for " + topic);
  int64_t total = 0;
  Status st;
  if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int p = 0; p < md->topics[0].partition_cnt; ++p) {
      int64_t lo = 0;
      int64_t hi = 0;
      const auto we = query_watermarks(h.rk, topic, md->topics[0].partitions[p].id, &lo, &hi,
                                       timeout, deadline);
      if (we != RD_KAFKA_RESP_ERR_NO_ERROR) {
        st = kafka_error(we, "watermarks of " + topic);
        break;
      }
      total += hi - lo;
    }
  } else {
    st = kafka_error(md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC,
                     "metadata for " + topic);
  }
  rd_kafka_metadata_destroy(md);
  if (!st) return st.error();
  return total;
}

namespace {

// A consumer handle that never subscribes: for assign-based scans, offset queries and
// commits on behalf of a group.
Status plain_consumer(const KafkaSettings& s, const std::string& group, Handle& h,
                      const std::map<std::string, std::string>& extra = {}) {
  std::map<std::string, std::string> o = {{"group.id", group},
                                          {"enable.auto.commit", "false"},
                                          {"enable.auto.offset.store", "false"},
                                          {"isolation.level", "read_committed"}};
  for (const auto& [k, v] : extra) o[k] = v;
  auto conf = make_conf(s, o);
  if (!conf) return conf.error();
  rd_kafka_conf_set_error_cb(conf->get(), [](rd_kafka_t*, int, const char*, void*) {});
  char err[512];
  h.rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf->get(), err, sizeof err);
  if (!h.rk) return Error::permanent(ErrorDomain::kKafka, std::string("consumer: ") + err);
  (void)conf->release();
  rd_kafka_poll_set_consumer(h.rk);
  return {};
}

// Partitions of each topic (in the order given); a missing topic is an error unless
// `skip_missing`.
Result<std::vector<std::pair<std::string, int32_t>>> partitions_of(
    rd_kafka_t* rk, const std::vector<std::string>& topics, Millis timeout, bool skip_missing) {
  const rd_kafka_metadata_t* md = nullptr;
  const auto e = rd_kafka_metadata(rk, 1, nullptr, &md, static_cast<int>(timeout.count()));
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, "metadata");
  std::map<std::string, int> count;
  for (int i = 0; i < md->topic_cnt; ++i)
    if (md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
      count[md->topics[i].topic] = md->topics[i].partition_cnt;
  rd_kafka_metadata_destroy(md);
  std::vector<std::pair<std::string, int32_t>> out;
  for (const auto& t : topics) {
    const auto it = count.find(t);
    if (it == count.end()) {
      if (skip_missing) continue;
      return Error::permanent(ErrorDomain::kKafka, "topic '" + t + "' does not exist");
    }
    for (int p = 0; p < it->second; ++p) out.emplace_back(t, p);
  }
  return out;
}

}  // namespace

Status scan_topics(const KafkaSettings& settings, const std::vector<std::string>& topics,
                   const std::function<bool(const Message&)>& f, Millis timeout, int64_t since_ms,
                   bool uncommitted) {
  Handle h;
  if (auto st = plain_consumer(
          settings, "budstikke-scan", h,
          {{"enable.partition.eof", "true"},
           {"isolation.level", uncommitted ? "read_uncommitted" : "read_committed"}});
      !st)
    return st;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto parts = partitions_of(h.rk, topics, timeout, false);
  if (!parts) return parts.error();
  // The end of each partition now; records written later are not part of the scan.
  std::map<std::pair<std::string, int32_t>, int64_t> end;
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts->size())));
  for (const auto& [t, p] : *parts) {
    int64_t lo = 0;
    int64_t hi = 0;
    const auto we = query_watermarks(h.rk, t, p, &lo, &hi, timeout, deadline);
    if (we != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(we, "watermarks of " + t);
    if (hi <= lo) continue;
    end[{t, p}] = hi;
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), p)->offset = RD_KAFKA_OFFSET_BEGINNING;
  }
  if (end.empty()) return {};
  if (since_ms > 0) {
    // Each partition's first offset stamped at or after since_ms; none there: nothing to read.
    for (int i = 0; i < list->cnt; ++i) list->elems[i].offset = since_ms;
    if (const auto e =
            rd_kafka_offsets_for_times(h.rk, list.get(), static_cast<int>(timeout.count()));
        e != RD_KAFKA_RESP_ERR_NO_ERROR)
      return kafka_error(e, "offsets for times");
    TplPtr from(rd_kafka_topic_partition_list_new(list->cnt));
    for (int i = 0; i < list->cnt; ++i) {
      const auto& el = list->elems[i];
      const std::pair<std::string, int32_t> tp = {el.topic, el.partition};
      if (el.err != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(el.err, "offsets for times");
      if (el.offset < 0 || el.offset >= end[tp]) {
        end.erase(tp);
        continue;
      }
      rd_kafka_topic_partition_list_add(from.get(), el.topic, el.partition)->offset = el.offset;
    }
    if (end.empty()) return {};
    list = std::move(from);
  }
  if (const auto e = rd_kafka_assign(h.rk, list.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return kafka_error(e, "assign");
  Status result;
  while (!end.empty()) {
    if (std::chrono::steady_clock::now() > deadline) {
      result = Error::transient(ErrorDomain::kKafka, "scan did not reach the end of " +
                                                         end.begin()->first.first + " in time");
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consumer_poll(h.rk, 200);
    if (!m) continue;
    Message msg(m);
    const std::pair<std::string, int32_t> tp = {m->rkt ? rd_kafka_topic_name(m->rkt) : "",
                                                m->partition};
    const auto it = end.find(tp);
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      // At the end (for read_committed: the last stable offset).
      if (it != end.end()) end.erase(it);
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const Error e = kafka_error(m->err, "scan");
      if (e.retriable) continue;
      result = e;
      break;
    }
    if (it == end.end()) continue;
    if (m->offset >= it->second) {
      end.erase(it);
      continue;
    }
    const bool last = m->offset + 1 >= it->second;
    if (!f(msg)) break;
    if (last) end.erase(tp);
  }
  rd_kafka_assign(h.rk, nullptr);
  rd_kafka_consumer_close(h.rk);
  return result;
}

Result<std::vector<PartitionOffsets>> group_offsets(const KafkaSettings& settings,
                                                    const std::string& group,
                                                    const std::vector<std::string>& topics,
                                                    Millis timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  Handle h;
  if (auto st = plain_consumer(settings, group, h); !st) return st.error();
  auto parts = partitions_of(h.rk, topics, timeout, true);
  if (!parts) return parts.error();
  std::vector<PartitionOffsets> out;
  if (parts->empty()) return out;
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(parts->size())));
  for (const auto& [t, p] : *parts) {
    PartitionOffsets po;
    po.topic = t;
    po.partition = p;
    const auto we = query_watermarks(h.rk, t, p, &po.low, &po.high, timeout, deadline);
    if (we != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(we, "watermarks of " + t);
    out.push_back(po);
    rd_kafka_topic_partition_list_add(list.get(), t.c_str(), p);
  }
  if (const auto e = rd_kafka_committed(h.rk, list.get(), static_cast<int>(timeout.count()));
      e != RD_KAFKA_RESP_ERR_NO_ERROR)
    return kafka_error(e, "committed offsets of " + group);
  for (int i = 0; i < list->cnt; ++i) {
    const auto& el = list->elems[i];
    for (auto& po : out)
      if (po.partition == el.partition && po.topic == el.topic)
        po.committed = el.offset >= 0 ? el.offset : -1;
  }
  rd_kafka_consumer_close(h.rk);
  return out;
}

Status commit_group_offsets(const KafkaSettings& settings, const std::string& group,
                            const std::vector<TopicPartitionOffset>& offsets, Millis timeout) {
  if (offsets.empty()) return {};
  Handle h;
  if (auto st = plain_consumer(settings, group, h); !st) return st;
  TplPtr list(rd_kafka_topic_partition_list_new(static_cast<int>(offsets.size())));
  for (const auto& o : offsets)
    rd_kafka_topic_partition_list_add(list.get(), o.topic.c_str(), o.partition)->offset = o.offset;
  (void)timeout;
  const auto e = rd_kafka_commit(h.rk, list.get(), 0);
  rd_kafka_consumer_close(h.rk);
  if (e != RD_KAFKA_RESP_ERR_NO_ERROR) return kafka_error(e, "commit offsets of " + group);
  return {};
}

}  // namespace budstikke::bus
