#include "engine/route/route_stage.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/thread_name.hpp"
#include "engine/core/time.hpp"
#include "engine/delivery/delivery.hpp"
#include "engine/event/json_read.hpp"
#include "engine/event/json_text.hpp"
#include "engine/runtime/engine.hpp"
#include "engine/runtime/ingest.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::route {

using json = nlohmann::json;
namespace h = delivery::header;

namespace {

constexpr std::string_view kModule = "route";

using Process = std::function<void(const bus::Message&, std::vector<bus::Record>&)>;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Consume-transform-produce until `stop`, each batch in a transaction (or, with
// commit_after_ack, written by an idempotent producer and its offsets committed once Kafka
// has every record). Any failure abandons the batch and recreates the consumer and
// producer: the batch is read again from the committed offsets.

// Metrics for a committed batch: events read, transactions, jobs per destination system,
// route failures.
void count_committed(const std::string& prefix, const std::string& route,
                     const std::vector<bus::Record>& records, size_t events,
                     std::chrono::steady_clock::duration took = {}) {
  auto& g = metrics::global();
  g.counter("budstikke_route_events_total", "Canonical events a route read.", {{"route", route}})
      .inc(events);
  if (!records.empty()) {
    g.counter("budstikke_route_transactions_total",
              "Transactions a route committed (one per batch that produced records; a batch "
              "the route let nothing through commits its offsets without one). With "
              "delivery.route_commit after_ack: batches written and committed.",
              {{"route", route}})
        .inc();
    g.histogram("budstikke_route_transaction_seconds",
                "A route's transaction from its begin to its commit's answer: the jobs' "
                "records, the consumed offsets and the commit, each a round trip to the "
                "broker or more (after_ack: the records' acknowledgements and the offset "
                "commit).",
                {{"route", route}})
        .observe_ms(std::chrono::duration<double, std::milli>(took).count());
  }
  const std::string deliver = prefix + "deliver.";
  const std::string failed = prefix + delivery::kRouteFailedTopic;
  // Counted per batch: one series update per destination, not one per record.
  std::map<std::string_view, uint64_t> jobs;
  uint64_t failures = 0;
  for (const auto& r : records) {
    if (r.topic.rfind(deliver, 0) == 0)
      ++jobs[std::string_view(r.topic).substr(deliver.size())];
    else if (r.topic == failed)
      ++failures;
  }
  for (const auto& [system, n] : jobs)
    g.counter("budstikke_routed_total", "Delivery jobs a route produced, per destination.",
              {{"route", route}, {"system", std::string(system)}})
        .inc(n);
  if (failures > 0)
    g.counter("budstikke_route_failures_total", "Events a route could not route (on route.failed).",
              {{"route", route}})
        .inc(failures);
}

// Writes a batch's records through an idempotent producer and waits until Kafka has
// acknowledged every one of them (route_commit: after_ack). An error: the first record
// Kafka refused, or the wait ran out.
Status write_acknowledged(bus::Producer& producer, const std::vector<bus::Record>& records,
                          std::chrono::milliseconds timeout) {
  struct Acks {
    std::mutex mu;
    std::condition_variable cv;
    size_t left = 0;
    std::optional<Error> error;
  };
  auto acks = std::make_shared<Acks>();
  acks->left = records.size();
  const auto settle = [acks](const Result<bus::Delivery>& d) {
    const std::lock_guard lock(acks->mu);
    if (!d && !acks->error) acks->error = d.error();
    if (--acks->left == 0) acks->cv.notify_all();
  };
  for (const auto& r : records)
    if (auto st = producer.send(r, settle); !st) settle(st.error());
  std::unique_lock lock(acks->mu);
  if (!acks->cv.wait_for(lock, timeout, [&] { return acks->left == 0; }))
    return Error::transient(ErrorDomain::kKafka, std::to_string(acks->left) + " of the batch's " +
                                                     std::to_string(records.size()) +
                                                     " records not acknowledged by Kafka within " +
                                                     std::to_string(timeout.count()) + " ms");
  if (acks->error) return *acks->error;
  return {};
}

void route_loop(const RouteStageSettings& s, const std::string& name,
                const std::vector<std::string>& topics, const std::atomic<bool>& stop,
                RouteCounters& counters, const Process& process, bool transactional,
                const std::function<void(bool committed)>& after_batch = {}) {
  const std::string group = s.topic_prefix + "budstikke-route-" + name;
  const std::string txn_id = group + "-" + s.instance;
  // How long an after_ack batch waits for Kafka's acknowledgements: librdkafka gives up on
  // a record after message_timeout_ms and reports it; the margin covers that report.
  constexpr int kAckTimeoutMs = 60000;
  while (!stop.load()) {
    const bus::KafkaSettings kafka = s.kafka.for_role("route." + name);
    std::unique_ptr<bus::TransactionalProducer> txn;
    std::unique_ptr<bus::Producer> plain;
    if (transactional) {
      auto p = bus::TransactionalProducer::create(kafka, txn_id);
      if (!p) {
        log::error(kModule, "transactional producer failed",
                   {{"route", name}, {"error", p.error().message}});
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      txn = std::move(*p);
    } else {
      // A transaction this route left open when it ran with route_commit: transaction and
      // crashed would hold up every read_committed reader of its partitions (the delivery
      // stage) until transaction.timeout.ms: it is ended first.
      if (auto st = bus::end_open_transaction(kafka, txn_id); !st)
        log::warn(kModule,
                  "could not end what an earlier transaction of this route left open; "
                  "readers of its partitions may wait up to a minute",
                  {{"route", name}, {"error", st.error().message}});
      // The batch is enqueued whole and waited for: nothing to linger for.
      bus::ProducerOptions po;
      po.linger_ms = 0;
      po.message_timeout_ms = kAckTimeoutMs;
      auto p = bus::Producer::create(kafka, po);
      if (!p) {
        log::error(kModule, "producer failed", {{"route", name}, {"error", p.error().message}});
        std::this_thread::sleep_for(std::chrono::seconds(1));
        continue;
      }
      plain = std::move(*p);
    }
    bus::ConsumerOptions co;
    co.transactional = transactional;
    if (s.static_membership) co.group_instance_id = s.instance;
    auto consumer = bus::Consumer::create(kafka, group, topics, co);
    if (!consumer) {
      log::error(kModule, "consumer failed",
                 {{"route", name}, {"error", consumer.error().message}});
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    bool broken = false;
    // Offsets of batches the route let nothing through, stored and not committed yet.
    bool idle_offsets = false;
    auto last_commit = std::chrono::steady_clock::now();
    const auto commit_idle = [&](bool due_only) {
      if (!idle_offsets) return true;
      const auto now = std::chrono::steady_clock::now();
      if (due_only && now - last_commit < s.idle_commit_interval) return true;
      if (auto st = (*consumer)->commit(true); !st) {
        log::warn(kModule, "offset commit failed; the batches will be read again",
                  {{"route", name}, {"error", st.error().message}});
        return false;
      }
      idle_offsets = false;
      last_commit = now;
      return true;
    };
    while (!stop.load() && !broken) {
      // Its error reports and statistics, which would otherwise wait for a commit (a route
      // that lets nothing through never commits a transaction).
      if (txn) txn->poll();
      std::vector<bus::Message> batch;
      // The batch closes batch_ms after its first event was written to Kafka, as a
      // producer's linger does, not batch_ms after this loop began to wait: events that came
      // while the previous transaction committed have waited already. Past the deadline, what
      // is queued is still taken (poll(0) returns it at once), up to batch_max.
      auto deadline = std::chrono::steady_clock::time_point::max();
      while (static_cast<int>(batch.size()) < s.batch_max) {
        auto wait = std::chrono::milliseconds(100);
        if (!batch.empty())
          wait = std::max(std::chrono::duration_cast<std::chrono::milliseconds>(
                              deadline - std::chrono::steady_clock::now()),
                          std::chrono::milliseconds(0));
        auto m = (*consumer)->poll(wait);
        if (!m) {
          log::error(kModule, "poll failed", {{"route", name}, {"error", m.error().message}});
          if (bus::is_fenced(m.error())) {
            // Another consumer joined this route's group as this instance: a second engine
            // runs with this kafka.instance. The one that came last keeps the work.
            runtime::request_engine_stop(runtime::instance_taken(s.instance, "route " + name));
            while (!stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
          broken = true;
          break;
        }
        if (!*m) {
          if (!batch.empty() || stop.load()) break;
          if (!commit_idle(true)) {
            broken = true;
            break;
          }
          continue;
        }
        if (batch.empty())
          deadline = std::chrono::steady_clock::now() +
                     batch_window_left(std::chrono::milliseconds(s.batch_ms), (**m).timestamp_ms(),
                                       now_epoch_ms());
        batch.push_back(std::move(**m));
      }
      if (broken || batch.empty()) continue;
      std::vector<bus::Record> records;
      for (const auto& m : batch) process(m, records);
      // after_ack: a batch with records has its offsets stored once Kafka has the records (a
      // consumer closed or revoked in between commits only what is stored).
      if (txn || records.empty())
        for (const auto& m : batch) (void)(*consumer)->store(m);
      counters.consumed.fetch_add(batch.size());
      if (records.empty()) {
        // The route let nothing through: no records, so no transaction (which would cost the
        // broker a round of markers for nothing); the offsets are committed directly, at
        // most every idle_commit_interval. Read again after a crash, these events are let
        // through by nothing again.
        idle_offsets = true;
        if (!commit_idle(true)) {
          broken = true;
          continue;
        }
        if (after_batch) after_batch(true);
        count_committed(s.topic_prefix, name, records, batch.size());
        continue;
      }
      const auto began = std::chrono::steady_clock::now();
      if (plain) {
        // The records first, then the offsets: a crash in between routes the batch again,
        // and its jobs, written twice under the same ids, are sent once (the delivery
        // stage's memory of what it delivered and skip_delivered_lookback_s).
        Status st = write_acknowledged(*plain, records, std::chrono::milliseconds(kAckTimeoutMs));
        if (st) {
          for (const auto& m : batch) (void)(*consumer)->store(m);
          st = (*consumer)->commit(true);
          if (!st) (*consumer)->clear_stored();
        }
        if (!st) {
          log::warn(kModule, "batch not committed; it will be read again",
                    {{"route", name}, {"error", st.error().message}});
          counters.aborted_batches.fetch_add(1);
          if (after_batch) after_batch(false);
          broken = true;
          continue;
        }
        if (after_batch) after_batch(true);
        idle_offsets = false;
        last_commit = std::chrono::steady_clock::now();
        count_committed(s.topic_prefix, name, records, batch.size(),
                        std::chrono::steady_clock::now() - began);
        continue;
      }
      Status st = txn->begin();
      for (size_t i = 0; st && i < records.size(); ++i) st = txn->send(records[i]);
      if (st) st = txn->send_offsets(**consumer);
      if (st) st = txn->commit();
      if (!st) {
        log::warn(kModule, "batch aborted; it will be read again",
                  {{"route", name}, {"error", st.error().message}});
        if (bus::is_fenced(st.error())) {
          // A producer with this transactional id started elsewhere (a second engine with
          // this kafka.instance), or the broker ended a transaction that outlived
          // transaction.timeout.ms. A new producer fences it in turn; a pause keeps two
          // engines with one name from trading fences as fast as they can.
          log::error(kModule, "transactional producer fenced",
                     {{"route", name},
                      {"transactional_id", txn_id},
                      {"hint", "is another engine running as kafka.instance '" + s.instance +
                                   "'? Each engine needs its own."}});
          std::this_thread::sleep_for(std::chrono::seconds(1));
        }
        counters.aborted_batches.fetch_add(1);
        (void)txn->abort();
        if (after_batch) after_batch(false);
        broken = true;
        continue;
      }
      const auto took = std::chrono::steady_clock::now() - began;
      if (after_batch) after_batch(true);
      // The transaction carried every stored offset, those of idle batches before it too.
      (*consumer)->clear_stored();
      idle_offsets = false;
      last_commit = std::chrono::steady_clock::now();
      count_committed(s.topic_prefix, name, records, batch.size(), took);
    }
    if (!broken) (void)commit_idle(false);
    (void)(*consumer)->close();
  }
}

}  // namespace

std::chrono::milliseconds batch_window_left(std::chrono::milliseconds window, int64_t written_ms,
                                            int64_t now_ms) {
  // No timestamp, or one ahead of this host's clock: the whole window.
  if (written_ms <= 0 || written_ms > now_ms) return window;
  return std::max(window - std::chrono::milliseconds(now_ms - written_ms),
                  std::chrono::milliseconds(0));
}

std::string route_tracking(const RouteResult& r, std::string_view state, std::string_view now,
                           std::string_view route, std::string_view event_id,
                           std::string_view message_id, std::string_view engine) {
  std::string out;
  out.reserve(256 + 96 * r.deliveries.size());
  JsonObjectText t(out);
  t.str("at", now);
  append_json_array(t.member("destinations"), r.deliveries,
                    [](std::string& o, const RoutedDelivery& d) {
                      JsonObjectText x(o);
                      x.str("format", d.format);
                      x.str("job_id", d.job_id);
                      x.str("system", d.system);
                      x.finish();
                    });
  t.str_if("engine", engine);
  t.str("event_id", event_id);
  if (!r.failures.empty())
    append_json_array(t.member("failures"), r.failures, [](std::string& o, const RouteFailure& f) {
      JsonObjectText x(o);
      x.str("reason", redact_identity_numbers(f.reason));
      x.str("system", f.system);
      x.finish();
    });
  t.str("message_id", message_id);
  t.str("route", route);
  if (!r.skipped.empty())
    append_json_array(t.member("skipped_disabled"), r.skipped,
                      [](std::string& o, const std::string& id) { append_json_string(o, id); });
  t.str("state", state);
  t.finish();
  return out;
}

bus::Record job_record(std::string topic, std::string key, RoutedDelivery&& d, const JobMeta& m) {
  bus::Record rec;
  rec.topic = std::move(topic);
  rec.key = std::move(key);
  // Built in place, the job's own strings moved (a braced list would copy each twice).
  auto& hs = rec.headers;
  hs.reserve(13);
  hs.push_back({h::kJobId, std::move(d.job_id)});
  hs.push_back({h::kEventId, std::string(m.event_id)});
  hs.push_back({h::kRoute, std::string(m.route)});
  hs.push_back({h::kSystem, std::move(d.system)});
  hs.push_back({h::kFormat, std::move(d.format)});
  hs.push_back({h::kContentType, std::move(d.content_type)});
  hs.push_back({h::kIdempotencyKey, std::string(m.idempotency_key)});
  hs.push_back({h::kTrackingKey, std::string(m.tracking_key)});
  hs.push_back({h::kReceivedAt, std::string(m.received_at)});
  hs.push_back({h::kReceivedMs, std::string(m.received_ms)});
  hs.push_back({h::kPatientRef, std::string(m.patient_ref)});
  if (m.receipt_context && d.answers_sender) {
    hs.push_back({h::kReceiptCodec, std::string(m.receipt_codec)});
    hs.push_back({h::kReceipt, dump(*m.receipt_context)});
  }
  rec.value = std::move(d.payload);
  return rec;
}

bus::Record route_failed_record(const std::string& prefix, std::string_view route, const Event& e,
                                std::string_view message_id, const RouteFailure& f,
                                std::string_view now,
                                const std::vector<std::string>& delivered_to) {
  json fj = {{"route", route},     {"event_id", e.event_id}, {"message_id", message_id},
             {"system", f.system}, {"reason", f.reason},     {"code", f.code},
             {"at", now},          {"event", to_json(e)}};
  if (!delivered_to.empty()) fj["delivered_to"] = delivered_to;
  return {prefix + delivery::kRouteFailedTopic,
          e.key,
          dump(fj),
          {{h::kRoute, std::string(route)},
           {h::kEventId, e.event_id},
           {h::kReason, redact_identity_numbers(f.reason)}},
          -1};
}

RouteStage::RouteStage(RouteStageSettings s, RouteSet routes,
                       std::shared_ptr<const registry::Registry> reg,
                       const runtime::CodecRegistry& codecs, const runtime::ClaimCheckStore* claims)
    : s_(std::move(s)),
      routes_(std::move(routes)),
      reg_(std::move(reg)),
      codecs_(codecs),
      claims_(claims) {}

RouteStage::~RouteStage() {
  stop();
}

Status RouteStage::start() {
  for (const auto& r : routes_.routes) {
    if (!r->enabled()) continue;
    const Route* rp = r.get();
    threads_.emplace_back([this, rp] {
      set_thread_name("r:" + rp->name());
      run_route(rp);
    });
  }
  threads_.emplace_back([this] {
    set_thread_name("bs-receipts");
    run_receipts();
  });
  log::info(kModule, "route stage running", {{"routes", std::to_string(routes_.routes.size())}});
  return {};
}

void RouteStage::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void RouteStage::run_route(const Route* route) {
  std::vector<std::string> topics;
  for (const auto& t : route->topics()) topics.push_back(s_.topic_prefix + t);
  RouteEnv env{reg_.get(), &codecs_, claims_};
  const std::string prefix = s_.topic_prefix;
  const std::string name = route->name();
  route_loop(
      s_, name, topics, stop_, counters_,
      [&](const bus::Message& m, std::vector<bus::Record>& out) {
        // An event the route's filter rejects by its type and format is not parsed (the
        // headers are read only for a route whose filter looks at them).
        if (route->decides_on_headers() &&
            route->passes_over(m.header_view(kTypeHeader), m.header_view(kSourceFormatHeader), env))
          return;
        const std::string now = now_rfc3339();
        // One parse: the JSON gives both the event and the view the expressions read.
        json parsed = read_json(m.value());
        auto ev = parsed.is_discarded()
                      ? Result<Event>(Error::permanent(ErrorDomain::kCodec, "not JSON"))
                      : event_from_json(parsed);
        if (!ev) {
          counters_.failures.fetch_add(1);
          out.push_back({prefix + delivery::kRouteFailedTopic,
                         std::string(m.key()),
                         dump({{"route", name},
                               {"reason", "not a canonical event: " + ev.error().message},
                               {"topic", std::string(m.topic())},
                               {"offset", m.offset()},
                               {"at", now}}),
                         {{"bs-route", name}, {"bs-reason", "not a canonical event"}},
                         -1});
          return;
        }
        const json view = event_view_from_json(std::move(parsed));
        RouteResult r = route->process(std::move(*ev), env, &view);
        if (!r.matched) return;
        counters_.matched.fetch_add(1);
        const Event& e = r.event;
        const std::string tkey = runtime::tracking_key(e.source.message_id, s_.key_secret);
        const std::string idem = e.source.message_id.empty() ? std::string() : tkey;
        // The same for each of the event's jobs (an HMAC and a number: once, not per job).
        const std::string received_ms = std::to_string(m.timestamp_ms());
        const std::string pref =
            r.deliveries.empty() ? std::string() : patient_ref(e, s_.key_secret);
        // The tracking record names each job: written before the jobs take their ids below.
        const char* state = r.deliveries.empty() ? "unrouted" : "routed";
        std::string tracking = route_tracking(r, state, now, name, e.event_id, idem, s_.instance);
        // The systems this pass made jobs for, named in each failure (read before the
        // jobs' strings move).
        std::vector<std::string> delivered_to;
        if (!r.failures.empty())
          for (const auto& d : r.deliveries) delivered_to.push_back(d.system);
        const JobMeta meta{
            name, e.event_id,      idem,
            tkey, e.received_at,   received_ms,
            pref, r.receipt_codec, r.receipt_context ? &*r.receipt_context : nullptr};
        for (auto& d : r.deliveries) {
          std::string topic = s_.jobs_per_route ? delivery::route_jobs_topic(prefix, name)
                                                : delivery::deliver_topic(prefix, d.system);
          out.push_back(job_record(std::move(topic), e.key, std::move(d), meta));
          counters_.jobs.fetch_add(1);
        }
        for (const auto& f : r.failures) {
          counters_.failures.fetch_add(1);
          out.push_back(route_failed_record(prefix, name, e, idem, f, now, delivered_to));
          // The receiver is unknown: the sender gets a negative AppRec (E21) when it takes them.
          if (f.code == "E21" && r.receipt_context) {
            if (const auto* c = codecs_.find(r.receipt_codec)) {
              runtime::ReceiptOutcome o{false, "E21", "Mottaker finnes ikke", f.reason};
              std::string format;
              if (auto receipt = c->build_receipt(*r.receipt_context, o, format)) {
                out.push_back(runtime::receipt_record(
                    prefix, "a:" + sha256_hex(e.event_id + "|E21"), std::move(*receipt), format,
                    e.sender, idem, "rejected", e.event_id));
              }
            }
          }
        }
        out.push_back({prefix + runtime::kTrackingTopic,
                       tkey,
                       std::move(tracking),
                       {{"bs-state", state}, {"bs-route", name}},
                       -1});
      },
      !s_.commit_after_ack);
}

void RouteStage::run_receipts() {
  const std::string prefix = s_.topic_prefix;
  // One AppRec per message and addressee, ever: what was sent is on apprec.sent (written in
  // the same transaction as the delivery job), read back here at start. A second receipt for
  // the same message (a resent message, a replay) stays on apprec.outbound, and tracking
  // says why.
  const std::string sent_topic = prefix + runtime::kAppRecSentTopic;
  std::set<std::string> answered;
  std::set<std::string> pending;  // this batch's, until its transaction commits
  if (auto topics = bus::list_topics(s_.kafka);
      topics && std::find(topics->begin(), topics->end(), sent_topic) != topics->end()) {
    auto st = bus::scan_topics(s_.kafka, {sent_topic}, [&](const bus::Message& m) {
      answered.insert(std::string(m.key()));
      return true;
    });
    if (!st)
      log::warn(kModule, "could not read the receipts already sent; duplicates are possible",
                {{"error", st.error().message}});
  }
  route_loop(
      s_, "receipts", {prefix + runtime::kAppRecOutboundTopic}, stop_, counters_,
      [&](const bus::Message& m, std::vector<bus::Record>& out) {
        const std::string hers = m.header(h::kReceiverHer).value_or("");
        const registry::System* s = nullptr;
        for (const auto& her : runtime::receipt_her_ids(hers))
          if ((s = reg_->owner_of_her(her))) break;
        const std::string event_id = m.header(h::kEventId).value_or("");
        const std::string original = m.header("bs-original-message-id").value_or("");
        const std::string tkey = runtime::tracking_key(original, s_.key_secret);
        if (!s || s->receipts != "apprec" || !s->enabled) {
          // Stays on apprec.outbound, visible; tracking says why it went nowhere.
          out.push_back({prefix + runtime::kTrackingTopic,
                         tkey,
                         dump({{"engine", s_.instance},
                               {"state", "receipt_not_sent"},
                               {"at", now_rfc3339()},
                               {"message_id", original},
                               {"reason", !s ? "no system answers for HER-id(s) " + hers
                                             : "system '" + s->id + "' does not take AppRecs"}}),
                         {{"bs-state", "receipt_not_sent"}},
                         -1});
          return;
        }
        const std::string sent_key =
            original.empty() ? std::string()
                             : "s:" + hmac_sha256_hex(s_.key_secret, original + "|" + s->id);
        if (!sent_key.empty() && (answered.count(sent_key) || pending.count(sent_key))) {
          out.push_back({prefix + runtime::kTrackingTopic,
                         tkey,
                         dump({{"engine", s_.instance},
                               {"state", "receipt_not_sent"},
                               {"at", now_rfc3339()},
                               {"message_id", original},
                               {"system", s->id},
                               {"reason", "already answered: one AppRec per message"}}),
                         {{"bs-state", "receipt_not_sent"}},
                         -1});
          return;
        }
        if (!sent_key.empty()) {
          pending.insert(sent_key);
          out.push_back({sent_topic,
                         sent_key,
                         dump({{"at", now_rfc3339()},
                               {"system", s->id},
                               {"status", m.header("bs-status").value_or("")}}),
                         {},
                         -1});
        }
        bus::Record rec;
        rec.topic = delivery::deliver_topic(prefix, s->id);
        rec.key = std::string(m.key());
        rec.value = std::string(m.value());
        // Same receipt key (message, addressee), same job id: a receipt queued twice reaches
        // the system under one idempotency key, which it can drop.
        const std::string job = runtime::uuid_from_seed(std::string(m.key()) + "|receipt|" + s->id);
        rec.headers = {{h::kJobId, job},
                       {h::kEventId, event_id},
                       {h::kRoute, "receipts"},
                       {h::kSystem, s->id},
                       {h::kFormat, m.header("bs-format").value_or("kith/apprec/1.0")},
                       {h::kContentType, "application/xml"},
                       {h::kIdempotencyKey, job},
                       {h::kTrackingKey, tkey},
                       {h::kReceivedMs, std::to_string(m.timestamp_ms())}};
        out.push_back(std::move(rec));
        out.push_back({prefix + runtime::kTrackingTopic,
                       tkey,
                       dump({{"engine", s_.instance},
                             {"state", "receipt_routed"},
                             {"at", now_rfc3339()},
                             {"message_id", original},
                             {"system", s->id},
                             {"status", m.header("bs-status").value_or("")}}),
                       {{"bs-state", "receipt_routed"}},
                       -1});
        counters_.jobs.fetch_add(1);
      },
      /*transactional=*/true,
      [&](bool committed) {
        if (committed) answered.insert(pending.begin(), pending.end());
        pending.clear();
      });
}

}  // namespace budstikke::route
