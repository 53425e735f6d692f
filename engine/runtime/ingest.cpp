#include "engine/runtime/ingest.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>

#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/redact.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::runtime {
namespace {

constexpr std::string_view kModule = "ingest";
using nlohmann::json;

json party_summary(const Party& p) {
  json j = json::object();
  if (!p.organisation.name.empty()) j["name"] = p.organisation.name;
  if (!p.organisation.her_id.empty()) j["her_id"] = p.organisation.her_id;
  if (!p.organisation.org_number.empty()) j["org_number"] = p.organisation.org_number;
  return j;
}

// Collects delivery reports for the records of one message and reports once.
struct Pending {
  std::mutex mu;
  int outstanding = 0;
  std::string first_error;
  IngestResult result;
  std::function<void(IngestResult)> done;
  IngestCounters* counters = nullptr;
  // For the metrics: channel, event type or rejection code, and when the message came in.
  std::string channel, type, code;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

  void count() const {
    auto& g = metrics::global();
    if (result.outcome == Outcome::kRetry) {
      g.counter("budstikke_ingest_failed_total",
                "Messages not taken because Kafka did not confirm them (the sender retries).",
                {{"channel", channel}})
          .inc();
      return;
    }
    if (result.outcome == Outcome::kAccepted) {
      g.counter("budstikke_received_total", "Messages accepted and on Kafka as canonical events.",
                {{"channel", channel}, {"type", type}})
          .inc();
    } else {
      g.counter("budstikke_rejected_total",
                "Messages rejected at ingest (on ingest.rejected), by AppRec/ACK error code.",
                {{"channel", channel}, {"code", code}})
          .inc();
    }
    g.histogram("budstikke_ingest_latency_seconds",
                "Message received to its records confirmed by Kafka.", {{"channel", channel}})
        .observe_ms(
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                .count());
  }

  void report(const Result<bus::Delivery>& d) {
    std::function<void(IngestResult)> cb;
    {
      const std::lock_guard lock(mu);
      if (!d.ok() && first_error.empty()) first_error = d.error().message;
      if (--outstanding > 0) return;
      if (!first_error.empty()) {
        result.outcome = Outcome::kRetry;
        result.error = first_error;
        counters->failed.fetch_add(1);
      } else if (result.outcome == Outcome::kAccepted) {
        counters->accepted.fetch_add(1);
      } else {
        counters->rejected.fetch_add(1);
      }
      count();
      cb = std::move(done);
    }
    if (cb) cb(std::move(result));
  }
};

}  // namespace

// The "received" tracking record of an event, written as text with the members in the
// order nlohmann::json's dump gives them (sorted), as it was when built as a json object:
// it is written for every message, next to the event.
std::string received_record(const Event& e, const std::string& channel, const std::string& now,
                            const std::string& secret, std::string_view engine) {
  std::string out;
  out.reserve(320);
  bool first = true;
  auto key = [&](std::string_view k) {
    out += first ? '{' : ',';
    first = false;
    append_json_string(out, k);
    out += ':';
  };
  auto str = [&](std::string_view k, std::string_view v) {
    key(k);
    append_json_string(out, v);
  };
  str("at", now);
  str("channel", channel);
  // track finds a message by its conversation, and a receipt under the message it answers.
  if (!e.conversation.conversation_ref.empty())
    str("conversation_ref", e.conversation.conversation_ref);
  if (!engine.empty()) str("engine", engine);
  str("event_id", e.event_id);
  str("format", e.source.format);
  const bool reply = !e.conversation.in_reply_to.empty();
  if (reply) str("in_reply_to", e.conversation.in_reply_to);
  str("message_id", e.source.message_id);
  if (const auto pr = patient_ref(e, secret); !pr.empty()) str("patient_ref", pr);
  json scratch;
  const json& body = reply ? e.body_of(scratch) : e.body;
  if (reply)
    if (const auto st = body.find("status"); st != body.end() && st->is_object()) {
      if (const auto er = body.find("errors"); er != body.end() && er->is_array()) {
        json codes = json::array();
        for (const auto& x : *er) codes.push_back(x.value("code", ""));
        if (!codes.empty()) {
          key("receipt_errors");
          out += codes.dump(-1, ' ', false, json::error_handler_t::replace);
        }
      }
      str("receipt_status", st->value("code", ""));
    }
  str("state", "received");
  str("type", to_string(e.type));
  key("validated");
  out += e.source.validated.value_or(false) ? "true" : "false";
  out += '}';
  return out;
}

std::string uuid_from_seed(std::string_view seed) {
  // The first 32 hex digits of the SHA-256, grouped 8-4-4-4-12, with the version digit set to
  // 4 and the variant digit to 8, 9, a or b. Written in place: the route stage makes two per
  // delivery job.
  const std::string h = sha256_hex(seed);  // lower-case hex
  std::string u(36, '-');
  std::copy_n(h.begin(), 8, u.begin());
  std::copy_n(h.begin() + 8, 4, u.begin() + 9);
  u[14] = '4';
  std::copy_n(h.begin() + 13, 3, u.begin() + 15);
  static constexpr char kVariant[] = "89ab";
  const char v = h[16];
  u[19] = kVariant[(v <= '9' ? v - '0' : v - 'a' + 10) & 3];
  std::copy_n(h.begin() + 17, 3, u.begin() + 20);
  std::copy_n(h.begin() + 20, 12, u.begin() + 24);
  return u;
}

std::string tracking_key(const std::string& message_id, const std::string& secret) {
  if (message_id.empty() || contains_identity_number(message_id) || message_id.size() > 200)
    return "h:" + hmac_sha256_hex(secret, "message|" + message_id);
  return message_id;
}

bus::Record receipt_record(const std::string& prefix, std::string key, std::string receipt,
                           const std::string& format, const Party& to,
                           const std::string& original_message_id, const std::string& status,
                           const std::string& event_id) {
  std::string hers;
  for (const std::string* h : {&to.department.her_id, &to.organisation.her_id, &to.person.her_id})
    if (!h->empty()) hers += (hers.empty() ? "" : ",") + *h;
  bus::Record r{prefix + kAppRecOutboundTopic,
                std::move(key),
                std::move(receipt),
                {{"bs-format", format},
                 {"bs-original-message-id", original_message_id},
                 {"bs-receiver-her", hers},
                 {"bs-status", status}},
                -1};
  if (!event_id.empty()) r.headers.push_back({"bs-event-id", event_id});
  return r;
}

std::vector<std::string> receipt_her_ids(const std::string& header_value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= header_value.size()) {
    const size_t comma = header_value.find(',', start);
    const std::string part =
        header_value.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (!part.empty()) out.push_back(part);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Ingest::Ingest(bus::Producer& producer, const CodecRegistry& codecs, IngestSettings settings)
    : producer_(producer),
      codecs_(codecs),
      settings_(std::move(settings)),
      claims_(settings_.claim_check_dir) {}

DecodeResult decode_with(const CodecRegistry& codecs, std::string_view bytes,
                         const DecodeContext& ctx, const Codec** used) {
  const Codec* codec = codecs.detect(bytes);
  if (used) *used = codec;
  if (codec) return codec->decode(bytes, ctx);
  CodecRejection r;
  r.code = "T10";
  r.code_text = "Støtter ikke meldingsformatet";
  std::string head(bytes.substr(0, 16));
  for (auto& c : head)
    if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '.';
  std::string supported;
  for (const auto& n : codecs.names()) supported += (supported.empty() ? "" : ", ") + n;
  r.reason = (ctx.name.empty() ? std::string("message") : ctx.name) +
             ": not a format Budstikke reads (" + std::to_string(bytes.size()) +
             " bytes starting with '" + head + "'); supported: " + supported;
  return r;
}

void Ingest::submit(Inbound in, std::function<void(IngestResult)> done) {
  counters_.received.fetch_add(1);
  DecodeContext ctx{in.channel, in.name, in.validate, settings_.key_secret, in.receipt_inline};
  const Codec* codec = nullptr;
  DecodeResult decoded = decode_with(codecs_, in.bytes, ctx, &codec);
  publish(in, codec, std::move(decoded), std::move(done));
}

void Ingest::reject(Inbound in, CodecRejection rejection, std::function<void(IngestResult)> done) {
  counters_.received.fetch_add(1);
  publish(in, nullptr, DecodeResult(std::move(rejection)), std::move(done));
}

void Ingest::publish(Inbound& in, const Codec* codec, DecodeResult decoded,
                     std::function<void(IngestResult)> done) {
  const std::string& prefix = settings_.topic_prefix;
  auto pending = std::make_shared<Pending>();
  pending->done = std::move(done);
  pending->counters = &counters_;
  pending->channel = in.channel;
  std::vector<bus::Record> records;
  const std::string now = now_rfc3339();

  if (auto* out = std::get_if<CodecOutput>(&decoded)) {
    pending->result.outcome = Outcome::kAccepted;
    pending->result.codec = codec ? std::string(codec->name()) : "";
    pending->result.receipt = std::move(out->receipt);
    for (size_t i = 0; i < out->events.size(); ++i) {
      Event& e = out->events[i];
      if (!in.source_key.empty()) {
        e.event_id = uuid_from_seed(in.source_key + "#" + std::to_string(i));
        if (e.key.rfind("e:", 0) == 0) assign_key(e, settings_.key_secret);
      }
      if (!settings_.claim_check_dir.empty()) {
        if (auto st = claims_.offload(e, settings_.claim_check_threshold); !st) {
          IngestResult r;
          r.outcome = Outcome::kRetry;
          r.error = st.error().message;
          counters_.failed.fetch_add(1);
          if (pending->done) pending->done(std::move(r));
          return;
        }
      }
      pending->result.event_ids.push_back(e.event_id);
      pending->result.message_id = e.source.message_id;
      bus::Record rec;
      rec.topic = prefix + canonical_topic(e.type);
      rec.key = e.key;
      rec.value = to_json_string(e);
      for (auto& [k, v] : kafka_headers(e)) rec.headers.push_back({k, v});
      records.push_back(std::move(rec));
      records.push_back(
          {prefix + kTrackingTopic,
           tracking_key(e.source.message_id, settings_.key_secret),
           received_record(e, in.channel, now, settings_.key_secret, settings_.instance),
           {{"bs-state", "received"}},
           -1});
      pending->type = std::string(to_string(e.type));
    }
  } else {
    auto& rej = std::get<CodecRejection>(decoded);
    pending->result.outcome = Outcome::kRejected;
    pending->result.codec = codec ? std::string(codec->name()) : "";
    pending->result.message_id = rej.message_id;
    pending->code = rej.code;
    json j = {{"received_at", now},
              {"channel", in.channel},
              {"name", in.name},
              {"codec", pending->result.codec},
              {"code", rej.code},
              {"code_text", rej.code_text},
              {"reason", rej.reason},
              {"line", rej.line},
              {"column", rej.column},
              {"message_id", rej.message_id},
              {"sender", party_summary(rej.sender)},
              {"raw_size", in.bytes.size()},
              {"raw_sha256", sha256_hex(in.bytes)}};
    if (!settings_.claim_check_dir.empty() && in.bytes.size() > settings_.claim_check_threshold) {
      auto ref = claims_.put(in.bytes);
      if (!ref) {
        IngestResult r;
        r.outcome = Outcome::kRetry;
        r.error = ref.error().message;
        counters_.failed.fetch_add(1);
        if (pending->done) pending->done(std::move(r));
        return;
      }
      j["raw_claim_check"] = *ref;
    } else {
      j["raw_base64"] = base64_encode(in.bytes);
    }
    records.push_back(
        {prefix + kRejectedTopic,
         "r:" + hmac_sha256_hex(settings_.key_secret, in.channel + "|" + in.name + "|" +
                                                          j["raw_sha256"].get<std::string>()),
         j.dump(-1, ' ', false, json::error_handler_t::replace),
         {{"bs-reason-code", rej.code},
          {"bs-channel", redact_identity_numbers(in.channel)},
          {"bs-message-id", redact_identity_numbers(rej.message_id)}},
         -1});
    if (!rej.receipt.empty() && !in.receipt_inline) {
      pending->result.receipt_produced = true;
      const std::string her = rej.sender.organisation.her_id;
      records.push_back(receipt_record(
          prefix, "a:" + hmac_sha256_hex(settings_.key_secret, rej.message_id + "|" + her),
          rej.receipt, rej.receipt_format, rej.sender, redact_identity_numbers(rej.message_id),
          "rejected"));
    }
    json t = {{"message_id", rej.message_id},   {"state", "rejected"}, {"at", now},
              {"channel", in.channel},          {"code", rej.code},    {"reason", rej.reason},
              {"receipt", !rej.receipt.empty()}};
    records.push_back(
        {prefix + kTrackingTopic,
         tracking_key(rej.message_id.empty() ? in.name : rej.message_id, settings_.key_secret),
         t.dump(-1, ' ', false, json::error_handler_t::replace),
         {{"bs-state", "rejected"}},
         -1});
    log::info(
        kModule, "message rejected",
        {{"channel", in.channel}, {"name", in.name}, {"code", rej.code}, {"reason", rej.reason}});
    pending->result.rejection = std::move(rej);
  }

  pending->outstanding = static_cast<int>(records.size());
  for (auto& rec : records) {
    auto st =
        producer_.send(rec, [pending](const Result<bus::Delivery>& d) { pending->report(d); });
    if (!st) pending->report(st.error());  // counts as a failed record
  }
}

IngestResult Ingest::submit_sync(Inbound in) {
  std::promise<IngestResult> p;
  auto f = p.get_future();
  submit(std::move(in), [&p](IngestResult r) { p.set_value(std::move(r)); });
  return f.get();
}

}  // namespace budstikke::runtime
