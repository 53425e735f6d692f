#include "engine/ops/replay.hpp"

#include <atomic>
#include <cctype>
#include <chrono>
#include <ctime>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/time.hpp"
#include "engine/delivery/delivery.hpp"
#include "engine/event/event.hpp"
#include "engine/ops/history.hpp"
#include "engine/route/route.hpp"
#include "engine/route/route_stage.hpp"
#include "engine/runtime/claim_check.hpp"
#include "engine/runtime/ingest.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::ops {

using json = nlohmann::json;
namespace h = delivery::header;

namespace {

std::string header_of(const bus::Message& m, const char* name) {
  return m.header(name).value_or("");
}

struct Candidate {
  bus::Record record;  // to produce
  ReplayedItem item;
  std::string tracking_key;
  std::string event_id;
  std::string patient_ref;
};

// Produces the records and waits until Kafka has them all.
Status produce_all(bus::Producer& p, const std::vector<bus::Record>& records) {
  auto failed = std::make_shared<std::atomic<int>>(0);
  for (const auto& r : records) {
    auto st = p.send(r, [failed](const Result<bus::Delivery>& d) {
      if (!d) failed->fetch_add(1);
    });
    if (!st) return st;
  }
  if (auto st = p.flush(std::chrono::seconds(60)); !st) return st;
  if (failed->load() > 0)
    return Error::transient(ErrorDomain::kKafka,
                            std::to_string(failed->load()) + " record(s) not confirmed by Kafka");
  return {};
}

bus::Record tracking_record(const std::string& prefix, const Candidate& c, const std::string& by) {
  json t = {{"state", "replayed"},
            {"at", now_rfc3339()},
            {"event_id", c.event_id},
            {"job_id", c.item.job_id},
            {"system", c.item.system},
            {"from", c.item.from},
            {"by", redact_identity_numbers(by)}};
  if (!c.item.message_id.empty()) t["message_id"] = c.item.message_id;
  return {prefix + runtime::kTrackingTopic,
          c.tracking_key,
          t.dump(-1, ' ', false, json::error_handler_t::replace),
          {{"bs-state", "replayed"}, {"bs-system", c.item.system}},
          -1};
}

// The message's canonical event, rendered for one system.
Result<std::vector<Candidate>> one_to_one(const config::EngineConfig& cfg,
                                          const registry::Registry& reg,
                                          const runtime::CodecRegistry& codecs,
                                          const ReplayRequest& req, int64_t& scanned) {
  const registry::System* sys = reg.find(req.to_system);
  if (!sys) return Error::permanent(ErrorDomain::kConfig, "unknown system '" + req.to_system + "'");
  auto hist = message_history(cfg, req.message_id);
  if (!hist) return hist.error();
  std::string type;
  // The message's own "received" state (not that of a receipt answering it).
  for (const auto& s : hist->states)
    if (type.empty() && s.value("state", "") == "received" &&
        s.value("in_reply_to", "") != req.message_id)
      type = s.value("type", "");
  if (type.empty())
    return Error::permanent(ErrorDomain::kConfig, "message '" +
                                                      redact_identity_numbers(req.message_id) +
                                                      "' was never received (see budstikke track)");
  const auto et = event_type_from_string(type);
  if (!et) return Error::permanent(ErrorDomain::kCodec, "unknown event type '" + type + "'");
  std::optional<Event> found;
  const std::string topic = cfg.topic_prefix + canonical_topic(*et);
  auto st = bus::scan_topics(cfg.kafka, {topic}, [&](const bus::Message& m) {
    ++scanned;
    const std::string eid = header_of(m, "bs-event-id");
    if (hist->event_ids.count(eid) == 0 && header_of(m, "bs-message-id") != req.message_id)
      return true;
    auto e = event_from_json_string(m.value());
    if (e) found = std::move(*e);
    return !found;
  });
  if (!st) return st.error();
  if (!found)
    return Error::permanent(ErrorDomain::kKafka, "the event of message '" +
                                                     redact_identity_numbers(req.message_id) +
                                                     "' is no longer on " + topic);
  // Rendered as a route would for this system: a route of one destination.
  config::Diagnostics d;
  const std::string text = "name: replay\nfrom: [" + type +
                           "]\nrender: [kith, hl7v2/2.5, json, original]\nto: [" + sys->id +
                           "]\nreceipts: none\n";
  auto route = route::parse_route(text, "(replay)", reg, codecs, d);
  if (!route || d.has_errors())
    return Error::permanent(ErrorDomain::kConfig,
                            "cannot render for " + sys->id + ": " + d.format_all());
  runtime::ClaimCheckStore claims(cfg.claim_check_dir);
  route::RouteEnv env{&reg, &codecs, &claims};
  auto r = route->process(*found, env);
  if (!r.failures.empty()) return Error::permanent(ErrorDomain::kCodec, r.failures.front().reason);
  std::vector<Candidate> out;
  const std::string tkey = runtime::tracking_key(found->source.message_id, cfg.key_secret);
  const std::string idem = found->source.message_id.empty() ? std::string() : tkey;
  const std::string received_ms = std::to_string(now_epoch_ms());
  const std::string pref = patient_ref(*found, cfg.key_secret);
  // The headers the route stage writes (no receipt: the route has none), under route "replay".
  const route::JobMeta meta{
      "replay", found->event_id, idem, tkey, found->received_at, received_ms, pref, "", nullptr};
  for (auto& dl : r.deliveries) {
    Candidate c;
    c.event_id = found->event_id;
    c.tracking_key = tkey;
    c.patient_ref = pref;
    c.item.system = dl.system;
    c.item.from = topic;
    c.item.message_id = idem;
    dl.job_id += "#to-" + dl.system;
    c.item.job_id = dl.job_id;
    std::string to = delivery::deliver_topic(cfg.topic_prefix, dl.system);
    c.record = route::job_record(std::move(to), found->key, std::move(dl), meta);
    c.record.headers.push_back({h::kReplayOf, topic});
    c.record.headers.push_back({h::kReplayedBy, redact_identity_numbers(req.actor)});
    out.push_back(std::move(c));
  }
  return out;
}

// Failures on route.failed, routed again by their route as the routes directory and the
// registry file have them now (both from the files, whoever asks: the mended route and
// registry, one consistent pair). `mark` gets what a whole replay marks replayed; `again`
// the route.failed records of events that failed again.
Result<std::vector<Candidate>> from_route_failed(const config::EngineConfig& cfg,
                                                 const runtime::CodecRegistry& codecs,
                                                 const ReplayRequest& req, ReplayReport& report,
                                                 std::vector<bus::TopicPartitionOffset>& mark,
                                                 std::vector<bus::Record>& again) {
  config::Diagnostics d;
  const auto loaded = registry::Registry::load(cfg.systems_file, d);
  if (d.has_errors() || !loaded)
    return Error::permanent(
        ErrorDomain::kConfig,
        cfg.systems_file + " has errors (see budstikke lint):\n" + d.format_all());
  const registry::Registry& reg = *loaded;
  const route::RouteSet routes = route::load_routes(cfg.routes_dir, reg, codecs, d);
  if (d.has_errors())
    return Error::permanent(ErrorDomain::kConfig, "the routes in " + cfg.routes_dir +
                                                      " have errors (see budstikke lint):\n" +
                                                      d.format_all());
  const std::string topic = cfg.topic_prefix + delivery::kRouteFailedTopic;
  const bool whole = req.message_id.empty() && !req.since_ms && !req.until_ms && req.route.empty();
  auto offsets = bus::group_offsets(cfg.kafka, replay_group(cfg.topic_prefix), {topic});
  if (!offsets)
    return Error::transient(
        ErrorDomain::kKafka,
        "Kafka at " + cfg.kafka.bootstrap() + " is not reachable: " + offsets.error().message);
  if (offsets->empty()) return std::vector<Candidate>{};  // nothing ever failed
  std::map<int32_t, int64_t> replayed_up_to;
  for (const auto& po : *offsets) {
    replayed_up_to[po.partition] = po.committed;
    if (whole) mark.push_back({po.topic, po.partition, po.high});
  }
  // One event's failures in one route (a record per failure): routed again once.
  struct Group {
    std::string route;
    std::string event;         // its JSON text (a json member would make Group's members throw)
    ReplayedItem item;         // the first failure's: where, when, why
    bool whole_event = false;  // a failure of no one system: every destination left
    std::set<std::string> systems;    // else the systems that failed
    std::set<std::string> delivered;  // jobs made by the pass that failed
    bool answered = false;            // the sender got a negative AppRec then (E21)
  };
  std::vector<Group> groups;
  std::map<std::string, size_t> index;
  const std::string tkey_of_id =
      req.message_id.empty() ? "" : runtime::tracking_key(req.message_id, cfg.key_secret);
  auto st = bus::scan_topics(cfg.kafka, {topic}, [&](const bus::Message& m) {
    ++report.scanned;
    if (whole && m.offset() < replayed_up_to[m.partition()]) return true;
    if (req.since_ms && m.timestamp_ms() < *req.since_ms) return true;
    if (req.until_ms && m.timestamp_ms() >= *req.until_ms) return true;
    const json fj = json::parse(m.value(), nullptr, false);
    const auto text = [&fj](const char* k) {
      return fj.is_object() && fj.contains(k) && fj[k].is_string() ? fj[k].get<std::string>()
                                                                   : std::string();
    };
    const std::string route_name =
        header_of(m, h::kRoute).empty() ? text("route") : header_of(m, h::kRoute);
    if (!req.route.empty() && route_name != req.route) return true;
    const bool has_event = fj.is_object() && fj.contains("event") && fj["event"].is_object();
    if (!req.message_id.empty()) {
      const auto& id = req.message_id;
      std::string source_id;  // the message id itself (the record names its tracking key)
      if (has_event) {
        const json& src = fj["event"].contains("source") ? fj["event"]["source"] : json();
        if (src.is_object() && src.contains("message_id") && src["message_id"].is_string())
          source_id = src["message_id"].get<std::string>();
      }
      if (text("message_id") != id && text("message_id") != tkey_of_id && text("event_id") != id &&
          header_of(m, h::kEventId) != id && text("job_id") != id && source_id != id)
        return true;
    }
    ReplayedItem item;
    item.from = std::string(m.topic()) + ":" + std::to_string(m.partition()) + ":" +
                std::to_string(m.offset());
    item.system = text("system");
    item.message_id = text("message_id");
    item.job_id = text("job_id");
    item.reason = text("reason");
    item.failed_at = text("at");
    if (!has_event) {
      item.reason = fj.is_object() && fj.contains("job")
                        ? "holds a job for a system not in the registry, not an event (send "
                          "the message with --message-id ID --to SYSTEM)"
                        : "holds no canonical event (" + item.reason + ")";
      report.not_replayed.push_back(std::move(item));
      return true;
    }
    const std::string key = text("event_id") + "|" + route_name;
    auto [it, fresh] = index.try_emplace(key, groups.size());
    if (fresh) {
      Group g;
      g.route = route_name;
      g.event = fj["event"].dump(-1, ' ', false, json::error_handler_t::replace);
      g.item = item;
      groups.push_back(std::move(g));
    }
    Group& g = groups[it->second];
    if (item.system.empty())
      g.whole_event = true;
    else
      g.systems.insert(item.system);
    if (text("code") == "E21") g.answered = true;
    if (fj.contains("delivered_to") && fj["delivered_to"].is_array())
      for (const auto& sys : fj["delivered_to"])
        if (sys.is_string()) g.delivered.insert(sys.get<std::string>());
    return true;
  });
  if (!st) return st.error();

  std::vector<Candidate> out;
  runtime::ClaimCheckStore claims(cfg.claim_check_dir);
  const route::RouteEnv env{&reg, &codecs, &claims};
  const std::string now = now_rfc3339();
  for (auto& g : groups) {
    const auto not_sent = [&](const std::string& system, const std::string& why) {
      ReplayedItem i = g.item;
      i.system = system;
      i.reason = why;
      report.not_replayed.push_back(std::move(i));
    };
    const route::Route* rt = routes.find(g.route);
    if (!rt) {
      not_sent(g.item.system, "route '" + g.route + "' is no longer in " + cfg.routes_dir);
      continue;
    }
    if (!rt->enabled()) {
      not_sent(g.item.system, "route '" + g.route + "' is disabled");
      continue;
    }
    auto ev = event_from_json_string(g.event);
    if (!ev) {
      not_sent(g.item.system, "the event in it is not a canonical event: " + ev.error().message);
      continue;
    }
    route::RouteResult r = rt->process(*ev, env);
    if (!r.matched) {
      not_sent(g.item.system, "route '" + g.route +
                                  "' no longer takes this event (its from or "
                                  "filter)");
      continue;
    }
    const Event& e = r.event;
    const std::string tkey = runtime::tracking_key(e.source.message_id, cfg.key_secret);
    const std::string idem = e.source.message_id.empty() ? std::string() : tkey;
    const auto wanted = [&g](const std::string& system) {
      return g.whole_event ? g.delivered.count(system) == 0 : g.systems.count(system) > 0;
    };
    const std::string received_ms = std::to_string(now_epoch_ms());
    const std::string pref = patient_ref(e, cfg.key_secret);
    // The sender is answered once: not again when it had its negative AppRec.
    const route::JobMeta meta{
        g.route, e.event_id,      idem,
        tkey,    e.received_at,   received_ms,
        pref,    r.receipt_codec, r.receipt_context && !g.answered ? &*r.receipt_context : nullptr};
    std::set<std::string> sent;
    for (auto& dl : r.deliveries) {
      if (!wanted(dl.system)) continue;
      sent.insert(dl.system);
      Candidate c;
      c.event_id = e.event_id;
      c.tracking_key = tkey;
      c.patient_ref = pref;
      c.item = g.item;
      c.item.system = dl.system;
      c.item.message_id = idem;
      c.item.job_id = dl.job_id;
      std::string to = delivery::deliver_topic(cfg.topic_prefix, dl.system);
      c.record = route::job_record(std::move(to), e.key, std::move(dl), meta);
      c.record.headers.push_back({h::kReplayOf, g.item.from});
      c.record.headers.push_back({h::kReplayedBy, redact_identity_numbers(req.actor)});
      out.push_back(std::move(c));
    }
    std::vector<std::string> delivered(g.delivered.begin(), g.delivered.end());
    delivered.insert(delivered.end(), sent.begin(), sent.end());
    std::set<std::string> failed;
    for (const auto& f : r.failures) {
      if (!f.system.empty() && !wanted(f.system)) continue;
      failed.insert(f.system);
      ++report.failed_again;
      not_sent(f.system, "failed again: " + f.reason);
      bus::Record rec =
          route::route_failed_record(cfg.topic_prefix, g.route, e, idem, f, now, delivered);
      rec.headers.push_back({h::kReplayOf, g.item.from});
      again.push_back(std::move(rec));
    }
    for (const auto& system : g.systems)
      if (!sent.count(system) && !failed.count(system) && !failed.count(""))
        not_sent(system, "route '" + g.route + "' no longer sends this event to '" + system + "'");
  }
  return out;
}

}  // namespace

std::string replay_group(const std::string& topic_prefix) {
  return topic_prefix + "budstikke-replay";
}

std::optional<int64_t> parse_time_ms(const std::string& text) {
  if (text.empty()) return std::nullopt;
  // Durations back from now.
  if (std::isdigit(static_cast<unsigned char>(text[0])) && text.size() <= 8) {
    size_t i = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
    if (i > 0 && i + 1 == text.size()) {
      const int64_t n = std::stoll(text.substr(0, i));
      const char u = text[i];
      const int64_t unit = u == 's'   ? 1000
                           : u == 'm' ? 60000
                           : u == 'h' ? 3600000
                           : u == 'd' ? 86400000
                                      : 0;
      if (unit) return now_epoch_ms() - n * unit;
    }
  }
  std::tm tm{};
  int y = 0, mo = 0, d = 0, hh = 0, mi = 0, ss = 0;
  int consumed = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10)
    return std::nullopt;
  int64_t offset_min = 0;
  std::string rest = text.substr(10);
  if (!rest.empty()) {
    if (rest[0] != 'T' && rest[0] != ' ') return std::nullopt;
    int c2 = 0;
    if (std::sscanf(rest.c_str() + 1, "%2d:%2d:%2d%n", &hh, &mi, &ss, &c2) != 3)
      return std::nullopt;
    rest = rest.substr(1 + static_cast<size_t>(c2));
    if (!rest.empty() && rest[0] == '.') {
      size_t k = 1;
      while (k < rest.size() && std::isdigit(static_cast<unsigned char>(rest[k]))) ++k;
      rest = rest.substr(k);
    }
    if (rest == "Z" || rest.empty()) {
    } else if ((rest[0] == '+' || rest[0] == '-') && rest.size() == 6 && rest[3] == ':') {
      const int oh = std::atoi(rest.substr(1, 2).c_str());
      const int om = std::atoi(rest.substr(4, 2).c_str());
      offset_min = int64_t{rest[0] == '+' ? 1 : -1} * (oh * 60 + om);
    } else {
      return std::nullopt;
    }
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 || ss > 60) return std::nullopt;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = hh;
  tm.tm_min = mi;
  tm.tm_sec = ss;
  const time_t t = timegm(&tm);
  return static_cast<int64_t>(t) * 1000 - offset_min * 60000;
}

Result<ReplayReport> replay(const config::EngineConfig& cfg, const registry::Registry& reg,
                            const runtime::CodecRegistry& codecs, const ReplayRequest& req,
                            AuditLog& audit, bus::Producer* producer) {
  ReplayReport report;
  report.dry_run = req.dry_run;
  std::vector<Candidate> candidates;
  // DLQ partitions to mark replayed (whole-DLQ replays only).
  std::vector<bus::TopicPartitionOffset> mark;
  std::vector<bus::Record> again;  // events that failed again, back to route.failed
  if (req.route_failed) {
    if (!req.to_system.empty() || req.all || !req.systems.empty())
      return Error::permanent(ErrorDomain::kConfig,
                              "--route-failed does not combine with --to, --system or --all");
    auto c = from_route_failed(cfg, codecs, req, report, mark, again);
    if (!c) return c.error();
    candidates = std::move(*c);
  } else if (!req.route.empty()) {
    return Error::permanent(ErrorDomain::kConfig, "--route goes with --route-failed");
  } else if (!req.to_system.empty()) {
    if (req.message_id.empty())
      return Error::permanent(ErrorDomain::kConfig, "--to needs the message (--message-id)");
    auto c = one_to_one(cfg, reg, codecs, req, report.scanned);
    if (!c) return c.error();
    candidates = std::move(*c);
  } else {
    std::vector<std::string> systems = req.systems;
    if (req.all) {
      systems.clear();
      for (const auto& s : reg.systems()) systems.push_back(s.id);
    }
    if (systems.empty())
      return Error::permanent(ErrorDomain::kConfig, "say which DLQ: --system ID or --all");
    for (const auto& s : systems)
      if (!reg.find(s)) return Error::permanent(ErrorDomain::kConfig, "unknown system '" + s + "'");
    std::vector<std::string> topics;
    topics.reserve(systems.size());
    for (const auto& s : systems) topics.push_back(delivery::dlq_topic(cfg.topic_prefix, s));
    const bool whole = req.message_id.empty() && !req.since_ms && !req.until_ms;
    auto offsets = bus::group_offsets(cfg.kafka, replay_group(cfg.topic_prefix), topics);
    if (!offsets)
      return Error::transient(
          ErrorDomain::kKafka,
          "Kafka at " + cfg.kafka.bootstrap() + " is not reachable: " + offsets.error().message);
    std::vector<std::string> present;
    std::map<std::pair<std::string, int32_t>, int64_t> replayed_up_to;
    for (const auto& po : *offsets) {
      if (present.empty() || present.back() != po.topic) present.push_back(po.topic);
      replayed_up_to[{po.topic, po.partition}] = po.committed;
      if (whole) mark.push_back({po.topic, po.partition, po.high});
    }
    const std::string tkey_of_id =
        req.message_id.empty() ? "" : runtime::tracking_key(req.message_id, cfg.key_secret);
    auto st = bus::scan_topics(cfg.kafka, present, [&](const bus::Message& m) {
      ++report.scanned;
      // A whole-DLQ replay takes what was not replayed before.
      if (whole && m.offset() < replayed_up_to[{std::string(m.topic()), m.partition()}])
        return true;
      if (!req.message_id.empty()) {
        const auto& id = req.message_id;
        if (header_of(m, h::kIdempotencyKey) != id && header_of(m, h::kEventId) != id &&
            header_of(m, h::kJobId) != id && header_of(m, h::kTrackingKey) != tkey_of_id)
          return true;
      }
      if (req.since_ms && m.timestamp_ms() < *req.since_ms) return true;
      if (req.until_ms && m.timestamp_ms() >= *req.until_ms) return true;
      Candidate c;
      const std::string system = header_of(m, h::kSystem);
      c.item.system = system;
      c.item.from = std::string(m.topic()) + ":" + std::to_string(m.partition()) + ":" +
                    std::to_string(m.offset());
      c.item.message_id = header_of(m, h::kIdempotencyKey);
      c.item.job_id = header_of(m, h::kJobId);
      c.item.reason = header_of(m, h::kReason);
      c.item.failed_at = header_of(m, "bs-failed-at");
      c.tracking_key = header_of(m, h::kTrackingKey);
      c.event_id = header_of(m, h::kEventId);
      c.patient_ref = header_of(m, h::kPatientRef);
      bus::Record& rec = c.record;
      rec.topic = delivery::deliver_topic(cfg.topic_prefix, system);
      rec.key = std::string(m.key());
      rec.value = std::string(m.value());
      for (const auto& hd : m.headers()) {
        // A fresh attempt count. No receipt: the sender was answered when the job died
        // (one AppRec per message).
        if (hd.key == h::kAttempts || hd.key == h::kReason || hd.key == "bs-failed-at" ||
            hd.key == h::kReceiptCodec || hd.key == h::kReceipt || hd.key == h::kReplayOf ||
            hd.key == h::kReplayedBy)
          continue;
        rec.headers.push_back(hd);
      }
      rec.headers.push_back({h::kReplayOf, c.item.from});
      rec.headers.push_back({h::kReplayedBy, redact_identity_numbers(req.actor)});
      if (system.empty() || !reg.find(system)) {
        c.item.reason = "the system '" + system + "' is no longer in the registry";
        report.not_replayed.push_back(std::move(c.item));
        return true;
      }
      candidates.push_back(std::move(c));
      return true;
    });
    if (!st) return st.error();
  }
  // The audit record comes first: no re-send without it.
  AuditEntry a;
  a.actor = req.actor;
  a.action = req.dry_run ? "replay.dry_run" : "replay";
  a.message_id = req.message_id;
  std::string systems_s;
  for (const auto& c : candidates) {
    if (!c.patient_ref.empty()) a.patient_refs.insert(c.patient_ref);
    if (systems_s.find(c.item.system) == std::string::npos)
      systems_s += (systems_s.empty() ? "" : ",") + c.item.system;
  }
  a.system = req.to_system.empty() ? systems_s : req.to_system;
  a.count = static_cast<int64_t>(candidates.size());
  a.detail = req.route_failed         ? "from route.failed, routed again"
             : !req.to_system.empty() ? "one message to " + req.to_system
             : req.all                ? "from every DLQ"
                                      : "from the DLQ";
  if (auto st = audit.record(a); !st)
    return Error::permanent(ErrorDomain::kIo,
                            "not replayed: the audit record could not be "
                            "written: " +
                                st.error().message);
  for (const auto& c : candidates) report.items.push_back(c.item);
  if (req.dry_run || (candidates.empty() && again.empty())) {
    if (!req.dry_run && !mark.empty())
      (void)bus::commit_group_offsets(cfg.kafka, replay_group(cfg.topic_prefix), mark);
    return report;
  }
  std::unique_ptr<bus::Producer> own;
  if (!producer) {
    auto p = bus::Producer::create(cfg.kafka.for_role("replay"));
    if (!p) return p.error();
    own = std::move(*p);
    producer = own.get();
  }
  std::vector<bus::Record> records;
  for (const auto& c : candidates) {
    records.push_back(c.record);
    if (!c.tracking_key.empty()) records.push_back(tracking_record(cfg.topic_prefix, c, req.actor));
  }
  for (auto& r : again) records.push_back(std::move(r));
  if (auto st = produce_all(*producer, records); !st) return st.error();
  if (!mark.empty()) {
    if (auto st = bus::commit_group_offsets(cfg.kafka, replay_group(cfg.topic_prefix), mark); !st)
      return Error::transient(ErrorDomain::kKafka,
                              "replayed, but the DLQ position was not saved (a second replay "
                              "would send these again): " +
                                  st.error().message);
  }
  return report;
}

Result<std::vector<DlqDepth>> dlq_depths(const config::EngineConfig& cfg,
                                         const std::vector<std::string>& systems) {
  std::vector<std::string> topics;
  std::map<std::string, std::string> system_of;
  for (const auto& s : systems) {
    topics.push_back(delivery::dlq_topic(cfg.topic_prefix, s));
    system_of[topics.back()] = s;
  }
  auto offsets = bus::group_offsets(cfg.kafka, replay_group(cfg.topic_prefix), topics);
  if (!offsets) return offsets.error();
  std::map<std::string, DlqDepth> by;
  for (const auto& po : *offsets) {
    auto& d = by[po.topic];
    d.system = system_of[po.topic];
    d.depth += po.lag();
    d.total += po.high - po.low;
  }
  std::vector<DlqDepth> out;
  for (const auto& s : systems) {
    const auto it = by.find(delivery::dlq_topic(cfg.topic_prefix, s));
    if (it != by.end() && it->second.total > 0) out.push_back(it->second);
  }
  return out;
}

}  // namespace budstikke::ops
