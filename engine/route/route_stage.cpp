#include "engine/route/route_stage.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/time.hpp"
#include "engine/delivery/delivery.hpp"
#include "engine/runtime/ingest.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::route {

using json = nlohmann::json;
namespace h = delivery::header;

// A canonical record parsed once per cycle: routes reading the same topic share it.
struct ParsedEvent {
  Result<Event> event;
  json view;  // what the route expressions read
};

struct ParsedCache {
  std::map<std::string, std::shared_ptr<const ParsedEvent>> by_position;
  std::shared_ptr<const ParsedEvent> get(const bus::Message& m) {
    std::string key = std::string(m.topic()) + '|' + std::to_string(m.partition()) + '|' +
                      std::to_string(m.offset());
    if (const auto it = by_position.find(key); it != by_position.end()) return it->second;
    json parsed = json::parse(m.value(), nullptr, false);
    Result<Event> ev = parsed.is_discarded()
                           ? Result<Event>(Error::permanent(ErrorDomain::kCodec, "not JSON"))
                           : event_from_json(parsed);
    json view = ev ? event_view_from_json(std::move(parsed)) : json();
    auto p = std::make_shared<const ParsedEvent>(ParsedEvent{std::move(ev), std::move(view)});
    by_position.emplace(std::move(key), p);
    return p;
  }
  void clear() { by_position.clear(); }
};

// A route as the stage runs it: its consumer group (budstikke-route-<name>) and topics, and
// what it makes of each message.
struct Lane {
  std::string name;
  std::vector<std::string> topics;
  std::function<void(const bus::Message&, std::vector<bus::Record>&)> process;
  std::function<void()> prepare;                    // once, on the loop's thread, before reading
  std::function<void(bool committed)> after_batch;  // after each cycle's transaction
  std::unique_ptr<bus::Consumer> consumer;
  std::vector<bus::Message> batch;
};

namespace {

constexpr std::string_view kModule = "route";

using Process = std::function<void(const bus::Message&, std::vector<bus::Record>&)>;

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Consume-transform-produce in transactions until `stop`. Any failure aborts the batch and
// recreates the consumer and producer: the batch is read again from the committed offsets.

// Metrics for a committed batch: events read, jobs per destination system, route failures.
void count_committed(const std::string& prefix, const std::string& route,
                     std::span<const bus::Record> records, size_t events) {
  auto& g = metrics::global();
  g.counter("budstikke_route_events_total", "Canonical events a route read.", {{"route", route}})
      .inc(events);
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

// Lets one thread wait for several consumers: each writes a byte to the pipe when its queue
// goes from empty to not empty.
class Wakeup {
 public:
  Wakeup() {
    if (::pipe2(fds_, O_NONBLOCK | O_CLOEXEC) != 0) fds_[0] = fds_[1] = -1;
  }
  ~Wakeup() {
    for (int fd : fds_)
      if (fd >= 0) ::close(fd);
  }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  int write_fd() const { return fds_[1]; }
  // Waits until a consumer has something or the timeout passes; empties the pipe.
  void wait(std::chrono::milliseconds timeout) {
    if (fds_[0] < 0) {
      std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(5)));
      return;
    }
    pollfd p{fds_[0], POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<int64_t>(timeout.count(), 0))) > 0) {
      char buf[256];
      while (::read(fds_[0], buf, sizeof buf) > 0) {
      }
    }
  }

 private:
  int fds_[2] = {-1, -1};
};

// Consume-transform-produce for a set of lanes (routes), each with its own consumer group,
// sharing one transactional producer: a cycle gathers what every lane has (up to batch_max,
// for at most batch_ms after the first message), processes it, and commits the records and
// every lane's offsets in one transaction. Any Kafka failure aborts the cycle and recreates
// the consumers and the producer: the batch is read again from the committed offsets.
void transactional_loop(const RouteStageSettings& s, const std::string& txn_id,
                        std::vector<Lane>& lanes, const std::atomic<bool>& stop,
                        RouteCounters& counters, const std::function<void()>& end_cycle) {
  for (auto& lane : lanes)
    if (lane.prepare) lane.prepare();
  while (!stop.load()) {
    auto producer = bus::TransactionalProducer::create(s.kafka, txn_id);
    if (!producer) {
      log::error(kModule, "transactional producer failed",
                 {{"transactional_id", txn_id}, {"error", producer.error().message}});
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    Wakeup wake;
    bool broken = false;
    for (auto& lane : lanes) {
      bus::ConsumerOptions co;
      co.fetch_wait_max_ms = 20;
      co.transactional = true;
      auto consumer = bus::Consumer::create(
          s.kafka, s.topic_prefix + "budstikke-route-" + lane.name, lane.topics, co);
      if (!consumer) {
        log::error(kModule, "consumer failed",
                   {{"route", lane.name}, {"error", consumer.error().message}});
        broken = true;
        break;
      }
      lane.consumer = std::move(*consumer);
      lane.consumer->wake_on(wake.write_fd());
    }
    if (broken) {
      for (auto& lane : lanes) lane.consumer.reset();
      std::this_thread::sleep_for(std::chrono::seconds(1));
      continue;
    }
    while (!stop.load() && !broken) {
      // Gather.
      size_t total = 0;
      std::optional<std::chrono::steady_clock::time_point> deadline;
      for (;;) {
        bool got = false;
        for (auto& lane : lanes) {
          while (total < static_cast<size_t>(s.batch_max)) {
            auto m = lane.consumer->poll(std::chrono::milliseconds(0));
            if (!m) {
              log::error(kModule, "poll failed",
                         {{"route", lane.name}, {"error", m.error().message}});
              broken = true;
              break;
            }
            if (!*m) break;
            lane.batch.push_back(std::move(**m));
            ++total;
            got = true;
          }
          if (broken) break;
        }
        if (broken || stop.load()) break;
        const auto now = std::chrono::steady_clock::now();
        if (total == 0) {
          wake.wait(std::chrono::milliseconds(100));
          continue;
        }
        if (!deadline) deadline = now + std::chrono::milliseconds(s.batch_ms);
        if (total >= static_cast<size_t>(s.batch_max) || now >= *deadline) break;
        if (!got)
          wake.wait(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - now) +
                    std::chrono::milliseconds(1));
      }
      if (broken || total == 0) {
        for (auto& lane : lanes) lane.batch.clear();
        continue;
      }
      // Process.
      std::vector<bus::Record> records;
      std::vector<std::pair<size_t, size_t>> spans;  // each lane's records
      for (auto& lane : lanes) {
        const size_t begin = records.size();
        for (const auto& m : lane.batch) {
          lane.process(m, records);
          (void)lane.consumer->store(m);
        }
        spans.emplace_back(begin, records.size());
      }
      if (end_cycle) end_cycle();
      counters.consumed.fetch_add(total);
      if (records.empty()) {
        // The routes let nothing through: no records, so no transaction (which would cost
        // the broker a round of markers for nothing); each route commits its offsets.
        for (auto& lane : lanes) {
          if (broken || lane.batch.empty()) continue;
          if (auto st = lane.consumer->commit(true); !st) {
            log::warn(kModule, "offset commit failed; the batch will be read again",
                      {{"route", lane.name}, {"error", st.error().message}});
            broken = true;
            continue;
          }
          if (lane.after_batch) lane.after_batch(true);
          count_committed(s.topic_prefix, lane.name, {}, lane.batch.size());
        }
        for (auto& lane : lanes) lane.batch.clear();
        continue;
      }
      // One transaction: every record, every lane's offsets.
      Status st = (*producer)->begin();
      for (size_t i = 0; st && i < records.size(); ++i) st = (*producer)->send(records[i]);
      for (auto& lane : lanes)
        if (st && !lane.batch.empty()) st = (*producer)->send_offsets(*lane.consumer);
      if (st) st = (*producer)->commit();
      if (!st) {
        log::warn(kModule, "batch aborted; it will be read again",
                  {{"transactional_id", txn_id}, {"error", st.error().message}});
        counters.aborted_batches.fetch_add(1);
        (void)(*producer)->abort();
        for (auto& lane : lanes)
          if (lane.after_batch) lane.after_batch(false);
        broken = true;
      } else {
        for (size_t i = 0; i < lanes.size(); ++i) {
          Lane& lane = lanes[i];
          if (lane.after_batch) lane.after_batch(true);
          lane.consumer->clear_stored();
          if (lane.batch.empty()) continue;
          count_committed(s.topic_prefix, lane.name,
                          std::span<const bus::Record>(records).subspan(
                              spans[i].first, spans[i].second - spans[i].first),
                          lane.batch.size());
        }
      }
      for (auto& lane : lanes) lane.batch.clear();
    }
    for (auto& lane : lanes) {
      (void)lane.consumer->close();
      lane.consumer.reset();
    }
  }
}

}  // namespace

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

struct RouteStage::Loop {
  std::string txn_id;
  ParsedCache cache;
  std::vector<Lane> lanes;
};

Status RouteStage::start() {
  // The routes share out among `threads` loops (one by default: one transaction per cycle
  // for all of them); receipts have a loop of their own, so reading back the receipts
  // already sent never holds the routes up, under the transactional id they always had.
  const int n = std::max(1, s_.threads);
  for (int i = 0; i < n; ++i) {
    auto loop = std::make_unique<Loop>();
    loop->txn_id = s_.topic_prefix + "budstikke-routes-" + s_.instance + "-" + std::to_string(i);
    loops_.push_back(std::move(loop));
  }
  size_t next = 0;
  for (const auto& r : routes_.routes) {
    if (!r->enabled()) continue;
    Loop& loop = *loops_[next++ % loops_.size()];
    loop.lanes.push_back(route_lane(r.get(), &loop.cache));
  }
  auto receipts = std::make_unique<Loop>();
  receipts->txn_id = s_.topic_prefix + "budstikke-route-receipts-" + s_.instance;
  receipts->lanes.push_back(receipts_lane());
  loops_.push_back(std::move(receipts));
  for (auto& lp : loops_) {
    Loop* loop = lp.get();
    if (loop->lanes.empty()) continue;
    threads_.emplace_back([this, loop] {
      transactional_loop(s_, loop->txn_id, loop->lanes, stop_, counters_,
                         [loop] { loop->cache.clear(); });
    });
  }
  log::info(kModule, "route stage running",
            {{"routes", std::to_string(next)}, {"loops", std::to_string(threads_.size())}});
  return {};
}

void RouteStage::stop() {
  stop_ = true;
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

Lane RouteStage::route_lane(const Route* route, ParsedCache* cache) {
  Lane lane;
  lane.name = route->name();
  for (const auto& t : route->topics()) lane.topics.push_back(s_.topic_prefix + t);
  const RouteEnv env{reg_.get(), &codecs_, claims_};
  const std::string prefix = s_.topic_prefix;
  const std::string name = route->name();
  lane.process = [this, route, env, prefix, name, cache](const bus::Message& m,
                                                         std::vector<bus::Record>& out) {
    const std::string now = now_rfc3339();
    // One parse per cycle, shared by the routes that read the same record.
    const std::shared_ptr<const ParsedEvent> parsed = cache->get(m);
    const Result<Event>& ev = parsed->event;
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
    RouteResult r = route->process(*ev, env, &parsed->view);
    if (!r.matched) return;
    counters_.matched.fetch_add(1);
    const Event& e = r.event;
    const std::string tkey = runtime::tracking_key(e.source.message_id, s_.key_secret);
    const std::string idem = e.source.message_id.empty() ? std::string() : tkey;
    int64_t received_ms = m.timestamp_ms();
    json destinations = json::array();
    for (auto& d : r.deliveries) {
      bus::Record rec;
      rec.topic = delivery::deliver_topic(prefix, d.system);
      rec.key = e.key;
      rec.headers = {{h::kJobId, d.job_id},
                     {h::kEventId, e.event_id},
                     {h::kRoute, name},
                     {h::kSystem, d.system},
                     {h::kFormat, d.format},
                     {h::kContentType, d.content_type},
                     {h::kIdempotencyKey, idem},
                     {h::kTrackingKey, tkey},
                     {h::kReceivedAt, e.received_at},
                     {h::kReceivedMs, std::to_string(received_ms)},
                     {h::kPatientRef, patient_ref(e, s_.key_secret)}};
      if (r.receipt_context && d.answers_sender) {
        rec.headers.push_back({h::kReceiptCodec, r.receipt_codec});
        rec.headers.push_back({h::kReceipt, dump(*r.receipt_context)});
      }
      rec.value = std::move(d.payload);
      out.push_back(std::move(rec));
      destinations.push_back({{"system", d.system}, {"format", d.format}, {"job_id", d.job_id}});
      counters_.jobs.fetch_add(1);
    }
    for (const auto& f : r.failures) {
      counters_.failures.fetch_add(1);
      json fj = {{"route", name},      {"event_id", e.event_id}, {"message_id", idem},
                 {"system", f.system}, {"reason", f.reason},     {"code", f.code},
                 {"at", now},          {"event", to_json(e)}};
      out.push_back({prefix + delivery::kRouteFailedTopic,
                     e.key,
                     dump(fj),
                     {{"bs-route", name},
                      {"bs-event-id", e.event_id},
                      {"bs-reason", redact_identity_numbers(f.reason)}},
                     -1});
      // The receiver is unknown: the sender gets a negative AppRec (E21) when it takes them.
      if (f.code == "E21" && r.receipt_context) {
        if (const auto* c = codecs_.find(r.receipt_codec)) {
          runtime::ReceiptOutcome o{false, "E21", "Mottaker finnes ikke", f.reason};
          std::string format;
          if (auto receipt = c->build_receipt(*r.receipt_context, o, format)) {
            out.push_back(runtime::receipt_record(prefix, "a:" + sha256_hex(e.event_id + "|E21"),
                                                  std::move(*receipt), format, e.sender, idem,
                                                  "rejected", e.event_id));
          }
        }
      }
    }
    json t = {{"state", r.deliveries.empty() ? "unrouted" : "routed"},
              {"at", now},
              {"route", name},
              {"event_id", e.event_id},
              {"message_id", idem},
              {"destinations", destinations}};
    if (!r.failures.empty()) {
      json fs = json::array();
      for (const auto& f : r.failures)
        fs.push_back({{"system", f.system}, {"reason", redact_identity_numbers(f.reason)}});
      t["failures"] = fs;
    }
    if (!r.skipped.empty()) t["skipped_disabled"] = r.skipped;
    out.push_back({prefix + runtime::kTrackingTopic,
                   tkey,
                   dump(t),
                   {{"bs-state", t.value("state", "")}, {"bs-route", name}},
                   -1});
  };
  return lane;
}

Lane RouteStage::receipts_lane() {
  const std::string prefix = s_.topic_prefix;
  // One AppRec per message and addressee, ever: what was sent is on apprec.sent (written in
  // the same transaction as the delivery job), read back here at start. A second receipt for
  // the same message (a resent message, a replay) stays on apprec.outbound, and tracking
  // says why.
  const std::string sent_topic = prefix + runtime::kAppRecSentTopic;
  struct Sent {
    std::set<std::string> answered;
    std::set<std::string> pending;  // this batch's, until its transaction commits
  };
  auto sent = std::make_shared<Sent>();
  Lane lane;
  lane.name = "receipts";
  lane.topics = {prefix + runtime::kAppRecOutboundTopic};
  lane.prepare = [this, sent, sent_topic] {
    if (auto topics = bus::list_topics(s_.kafka);
        topics && std::find(topics->begin(), topics->end(), sent_topic) != topics->end()) {
      auto st = bus::scan_topics(s_.kafka, {sent_topic}, [&](const bus::Message& m) {
        sent->answered.insert(std::string(m.key()));
        return true;
      });
      if (!st)
        log::warn(kModule, "could not read the receipts already sent; duplicates are possible",
                  {{"error", st.error().message}});
    }
  };
  auto& answered = sent->answered;
  auto& pending = sent->pending;
  lane.process = [this, sent, sent_topic, prefix, &answered, &pending](
                     const bus::Message& m, std::vector<bus::Record>& out) {
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
                     dump({{"state", "receipt_not_sent"},
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
                     dump({{"state", "receipt_not_sent"},
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
                   dump({{"state", "receipt_routed"},
                         {"at", now_rfc3339()},
                         {"message_id", original},
                         {"system", s->id},
                         {"status", m.header("bs-status").value_or("")}}),
                   {{"bs-state", "receipt_routed"}},
                   -1});
    counters_.jobs.fetch_add(1);
  };
  lane.after_batch = [sent](bool committed) {
    if (committed) sent->answered.insert(sent->pending.begin(), sent->pending.end());
    sent->pending.clear();
  };
  return lane;
}

}  // namespace budstikke::route
