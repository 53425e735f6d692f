#include "adapters/hl7v2/canonical.hpp"

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/render.hpp"
#include "engine/core/crypto.hpp"

namespace budstikke::hl7v2 {

using nlohmann::json;

namespace {

void put(json& j, const char* k, std::optional<std::string>&& v) {
  if (v && !v->empty() && *v != "\"\"") j[k] = std::move(*v);
}

// Paths built, not parsed: the mapping reads some sixty values of every message.
Path at(std::string_view segment, int field, int component = 0, int subcomponent = 0) {
  return Path{std::string(segment), 1, field, 1, component, subcomponent};
}

// The k-th occurrence of a segment, e.g. OBX(3).
struct Seg {
  std::string_view id;
  int k = 1;
  Path f(int field, int component = 0, int subcomponent = 0, int repetition = 1) const {
    return Path{std::string(id), k, field, repetition, component, subcomponent};
  }
};

// MSH-<app> (application) and MSH-<facility>.
Party party(const Message& m, int app, int facility) {
  Party p;
  p.organisation.name = m.get(at("MSH", facility, 1)).value_or("");
  const std::string type = m.get(at("MSH", facility, 3)).value_or("");
  const std::string id = m.get(at("MSH", facility, 2)).value_or("");
  if (!id.empty()) {
    if (type == "HER")
      p.organisation.her_id = id;
    else if (type == "ENH" || type == "NOI")
      p.organisation.org_number = id;
    else
      p.organisation.ids.push_back({id, type});
  }
  p.system = m.get(at("MSH", app, 1)).value_or("");
  return p;
}

json patient(const Message& m) {
  json p = json::object();
  json ids = json::array();
  const size_t reps = m.repetitions(at("PID", 3));
  // National identity numbers first: they are the patient's key.
  std::vector<json> national, other;
  for (size_t r = 1; r <= reps; ++r) {
    const Seg pid{"PID"};
    const int rep = static_cast<int>(r);
    std::string value = m.get(pid.f(3, 1, 0, rep)).value_or("");
    if (value.empty()) continue;
    json id = {{"value", std::move(value)}};
    const std::string type = m.get(pid.f(3, 5, 0, rep)).value_or("");
    if (!type.empty()) id["type"] = type;
    put(id, "authority", m.get(pid.f(3, 4, 1, rep)));
    (type == "FNR" || type == "DNR" || type == "NNNOR" || type == "HNR" ? national : other)
        .push_back(id);
  }
  for (auto& x : national) ids.push_back(std::move(x));
  for (auto& x : other) ids.push_back(std::move(x));
  if (!ids.empty()) p["ids"] = ids;
  json name = json::object();
  put(name, "family", m.get(at("PID", 5, 1, 1)));
  put(name, "given", m.get(at("PID", 5, 2)));
  put(name, "middle", m.get(at("PID", 5, 3)));
  if (!name.empty()) p["name"] = name;
  if (auto d = hl7_date(m.get(at("PID", 7, 1)).value_or("")); !d.empty()) p["birth_date"] = d;
  put(p, "sex", m.get(at("PID", 8)));
  return p;
}

json visit(const Message& m) {
  json v = json::object();
  if (m.count("PV1") == 0) return v;
  put(v, "class", m.get(at("PV1", 2)));
  json loc = json::object();
  put(loc, "point_of_care", m.get(at("PV1", 3, 1)));
  put(loc, "room", m.get(at("PV1", 3, 2)));
  put(loc, "bed", m.get(at("PV1", 3, 3)));
  put(loc, "facility", m.get(at("PV1", 3, 4)));
  if (!loc.empty()) v["location"] = loc;
  json prior = json::object();
  put(prior, "point_of_care", m.get(at("PV1", 6, 1)));
  put(prior, "room", m.get(at("PV1", 6, 2)));
  if (!prior.empty()) v["prior_location"] = prior;
  json att = json::object();
  put(att, "id", m.get(at("PV1", 7, 1)));
  put(att, "family", m.get(at("PV1", 7, 2)));
  put(att, "given", m.get(at("PV1", 7, 3)));
  if (!att.empty()) v["attending"] = att;
  put(v, "service", m.get(at("PV1", 10)));
  put(v, "visit_number", m.get(at("PV1", 19, 1)));
  if (auto t = m.get(at("PV1", 44, 1)); t && !t->empty())
    v["admitted"] = hl7_time_to_rfc3339(*t).empty() ? *t : hl7_time_to_rfc3339(*t);
  if (auto t = m.get(at("PV1", 45, 1)); t && !t->empty())
    v["discharged"] = hl7_time_to_rfc3339(*t).empty() ? *t : hl7_time_to_rfc3339(*t);
  return v;
}

// A coded element (CE/CWE): field `field` of the segment.
json coded(const Message& m, const Seg& seg, int field) {
  json c = json::object();
  put(c, "code", m.get(seg.f(field, 1)));
  put(c, "text", m.get(seg.f(field, 2)));
  put(c, "system", m.get(seg.f(field, 3)));
  return c;
}

// OBX segments; ED values (embedded documents) become attachments.
json observations(const Message& m, std::vector<Blob>& attachments) {
  json out = json::array();
  const size_t n = m.count("OBX");
  for (size_t k = 1; k <= n; ++k) {
    const Seg seg{"OBX", static_cast<int>(k)};
    json o = json::object();
    put(o, "set_id", m.get(seg.f(1)));
    const std::string type = m.get(seg.f(2)).value_or("");
    if (!type.empty()) o["value_type"] = type;
    o["observation"] = coded(m, seg, 3);
    if (type == "ED") {
      const std::string data = m.get(seg.f(5, 5)).value_or("");
      auto bytes = base64_decode(data);
      if (bytes) {
        const std::string sub = m.get(seg.f(5, 3)).value_or("");
        const std::string main = m.get(seg.f(5, 2)).value_or("");
        std::string mime = "application/octet-stream";
        if (sub == "PDF" || sub == "pdf")
          mime = "application/pdf";
        else if (!main.empty() && !sub.empty())
          mime = main + "/" + sub;
        Blob b = make_inline_blob(std::move(*bytes), mime);
        b.id = "att-" + std::to_string(attachments.size() + 1);
        b.description = m.get(seg.f(3, 2)).value_or("");
        o["attachment"] = b.id;
        attachments.push_back(std::move(b));
      } else {
        o["value"] = "(ED value is not valid base64)";
      }
    } else {
      const size_t reps = m.repetitions(seg.f(5));
      std::string value;
      for (size_t r = 1; r <= reps; ++r) {
        auto v = m.get(seg.f(5, 0, 0, static_cast<int>(r)));
        if (!v) continue;
        if (!value.empty()) value += "\n";
        value += *v;
      }
      if (!value.empty()) o["value"] = value;
    }
    put(o, "unit", m.get(seg.f(6, 1)));
    put(o, "reference_range", m.get(seg.f(7)));
    put(o, "flag", m.get(seg.f(8)));
    put(o, "status", m.get(seg.f(11)));
    if (auto t = m.get(seg.f(14, 1)); t && !t->empty()) o["observed"] = *t;
    out.push_back(std::move(o));
  }
  return out;
}

json orders(const Message& m) {
  json out = json::array();
  const size_t n = std::max(m.count("OBR"), m.count("ORC"));
  for (size_t k = 1; k <= n; ++k) {
    const Seg orc{"ORC", static_cast<int>(k)};
    const Seg obr{"OBR", static_cast<int>(k)};
    json o = json::object();
    put(o, "control", m.get(orc.f(1)));
    put(o, "placer_order", m.get(orc.f(2, 1)));
    put(o, "filler_order", m.get(orc.f(3, 1)));
    if (m.count("OBR") >= k) {
      o["service"] = coded(m, obr, 4);
      if (!o.contains("placer_order")) put(o, "placer_order", m.get(obr.f(2, 1)));
      if (!o.contains("filler_order")) put(o, "filler_order", m.get(obr.f(3, 1)));
      put(o, "priority", m.get(obr.f(5)));
      put(o, "collected", m.get(obr.f(7, 1)));
      put(o, "result_status", m.get(obr.f(25)));
    }
    out.push_back(std::move(o));
  }
  return out;
}

json diagnoses(const Message& m) {
  json out = json::array();
  const size_t n = m.count("DG1");
  for (size_t k = 1; k <= n; ++k) {
    json d = coded(m, Seg{"DG1", static_cast<int>(k)}, 3);
    if (!d.empty()) out.push_back(std::move(d));
  }
  return out;
}

EventType type_for(const std::string& type, const std::string& trigger, bool& cancelled) {
  cancelled = false;
  if (type == "ADT") {
    if (trigger == "A01" || trigger == "A04" || trigger == "A05") return EventType::kAdmission;
    if (trigger == "A02") return EventType::kTransfer;
    if (trigger == "A03") return EventType::kDischarge;
    if (trigger == "A08" || trigger == "A31" || trigger == "A28") return EventType::kPatientUpdate;
    if (trigger == "A11") {
      cancelled = true;
      return EventType::kAdmission;
    }
    if (trigger == "A12") {
      cancelled = true;
      return EventType::kTransfer;
    }
    if (trigger == "A13") {
      cancelled = true;
      return EventType::kDischarge;
    }
    if (trigger == "A18" || trigger == "A30" || trigger == "A34" || trigger == "A36" ||
        trigger == "A39" || trigger == "A40" || trigger == "A41" || trigger == "A42")
      return EventType::kMerge;
    return EventType::kPatientUpdate;
  }
  if (type == "ORM" || type == "OML" || type == "OMG" || type == "OMD")
    return EventType::kLabRequisition;
  if (type == "ORU" || type == "OUL") return EventType::kLabResult;
  if (type == "REF" || type == "RRI") return EventType::kReferral;
  if (type == "MDM") return EventType::kDocument;
  if (type == "ACK") return EventType::kAppRec;
  return EventType::kOther;
}

}  // namespace

std::string hl7_date(std::string_view ts) {
  if (ts.size() < 8) return {};
  for (size_t i = 0; i < 8; ++i)
    if (ts[i] < '0' || ts[i] > '9') return {};
  return std::string(ts.substr(0, 4)) + "-" + std::string(ts.substr(4, 2)) + "-" +
         std::string(ts.substr(6, 2));
}

std::string hl7_time_to_rfc3339(std::string_view ts) {
  const size_t zone = ts.find_first_of("+-", 8);
  if (zone == std::string_view::npos || zone < 12 || ts.size() != zone + 5) return {};
  const std::string_view t = ts.substr(0, zone);
  for (const char c : t)
    if ((c < '0' || c > '9') && c != '.') return {};
  std::string out = hl7_date(t) + "T" + std::string(t.substr(8, 2)) + ":" +
                    std::string(t.substr(10, 2)) + ":" +
                    (t.size() >= 14 ? std::string(t.substr(12, 2)) : std::string("00"));
  if (t.size() > 15 && t[14] == '.') out += std::string(t.substr(14));
  out += std::string(ts.substr(zone, 3)) + ":" + std::string(ts.substr(zone + 3, 2));
  return out;
}

Event to_event(const Message& m, std::string_view original, const runtime::DecodeContext& ctx) {
  Event e;
  e.event_id = uuid_v4();
  e.received_at = now_rfc3339();
  const std::string type = m.get(at("MSH", 9, 1)).value_or("");
  const std::string trigger = m.get(at("MSH", 9, 2)).value_or("");
  bool cancelled = false;
  e.type = type_for(type, trigger, cancelled);
  e.source.format = "hl7v2";
  e.source.version = m.get(at("MSH", 12, 1)).value_or("");
  e.source.message_type = trigger.empty() ? type : type + "^" + trigger;
  e.source.message_id = m.get(at("MSH", 10)).value_or("");
  e.source.channel = ctx.channel;
  e.sender = party(m, 3, 4);
  e.receiver = party(m, 5, 6);
  std::string when = m.get(at("EVN", 2, 1)).value_or("");
  if (when.empty()) when = m.get(at("MSH", 7, 1)).value_or("");
  e.occurred_at = hl7_time_to_rfc3339(when);
  json body = json::object();
  body["message_type"] = {{"code", type}, {"trigger", trigger}};
  if (!when.empty()) body["event_time"] = when;
  if (cancelled) body["cancelled"] = true;
  put(body, "processing_id", m.get(at("MSH", 11, 1)));
  if (m.count("PID"))
    body["patient"] = patient(m);
  else
    body["patient"] = json::object();
  if (auto v = visit(m); !v.empty()) body["visit"] = v;
  if (e.type == EventType::kMerge && m.count("MRG")) {
    json prior = json::object();
    put(prior, "id", m.get(at("MRG", 1, 1)));
    put(prior, "type", m.get(at("MRG", 1, 5)));
    body["merged_from"] = prior;
  }
  if (m.count("OBR") || m.count("ORC")) body["orders"] = orders(m);
  if (m.count("OBX")) body["observations"] = observations(m, e.attachments);
  if (auto d = diagnoses(m); !d.empty()) body["diagnoses"] = d;
  if (m.count("RF1")) {
    json rf = json::object();
    put(rf, "status", m.get(at("RF1", 1, 1)));
    put(rf, "priority", m.get(at("RF1", 2, 1)));
    put(rf, "type", m.get(at("RF1", 3, 1)));
    put(rf, "category", m.get(at("RF1", 5, 1)));
    put(rf, "referral_id", m.get(at("RF1", 6, 1)));
    put(rf, "reason", m.get(at("RF1", 10, 2)));
    body["referral"] = rf;
  }
  if (m.count("TXA")) {
    json doc = json::object();
    put(doc, "document_type", m.get(at("TXA", 2, 1)));
    put(doc, "unique_id", m.get(at("TXA", 12, 1)));
    put(doc, "status", m.get(at("TXA", 17)));
    body["document"] = doc;
  }
  if (e.type == EventType::kAppRec) {
    put(body, "ack_code", m.get(at("MSA", 1)));
    e.conversation.in_reply_to = m.get(at("MSA", 2)).value_or("");
  }
  e.body = std::move(body);
  e.original = make_inline_blob(std::string(original), "application/hl7-v2");
  assign_key(e, ctx.key_secret);
  return e;
}

runtime::DecodeResult Hl7Codec::decode(std::string_view bytes,
                                       const runtime::DecodeContext& ctx) const {
  auto parsed = parse_stream(bytes);
  runtime::CodecRejection rej;
  rej.receipt_format = "hl7v2/ack";
  const std::string where = ctx.name.empty() ? std::string("message") : ctx.name;
  if (auto* err = std::get_if<ParseError>(&parsed)) {
    rej.code = "AR";
    rej.code_text = "Application reject";
    rej.reason = where + ": not a valid HL7 v2 message: " + err->to_string();
    rej.receipt = make_nak_for_unparsable(bytes, rej.reason);
    return rej;
  }
  auto& st = std::get<Stream>(parsed);
  runtime::CodecOutput out;
  for (size_t i = 0; i < st.messages.size(); ++i) {
    const Message& m = st.messages[i];
    const std::string id = m.get(at("MSH", 10)).value_or("");
    if (id.empty()) {
      rej.code = "AR";
      rej.code_text = "Application reject";
      rej.reason =
          where + ": message " + std::to_string(i + 1) + ": MSH-10 (message control id) is empty";
      rej.receipt = make_ack(m, {AckCode::kReject, rej.reason, "101", "MSH^1^10"}).value_or("");
      return rej;
    }
    if (m.get(at("MSH", 9, 1)).value_or("").empty()) {
      rej.code = "AR";
      rej.code_text = "Application reject";
      rej.message_id = id;
      rej.reason = where + ": message " + id + ": MSH-9 (message type) is empty";
      rej.receipt = make_ack(m, {AckCode::kReject, rej.reason, "200", "MSH^1^9"}).value_or("");
      return rej;
    }
    // A single message keeps the received bytes as its original; in a batch each message
    // carries its own text.
    const std::string text = st.messages.size() == 1 ? std::string(bytes) : m.encode();
    out.events.push_back(to_event(m, text, ctx));
  }
  // The ACK the source will send once Kafka has the events, built from this parse.
  if (ctx.receipt_inline && st.messages.size() == 1)
    out.receipt = make_ack(st.messages[0], {AckCode::kAccept, "", "", ""}).value_or("");
  return out;
}

Result<std::string> Hl7Codec::render(const Event& e, std::string_view original,
                                     const runtime::RenderRequest& r) const {
  if (e.source.format != "hl7v2") return render_event(e, original, r);
  const std::string own = "hl7v2/" + e.source.version;
  if (r.format != own && r.format != "hl7v2")
    return Error::permanent(ErrorDomain::kCodec,
                            "cannot convert " + own + " to " + r.format + " (versions differ)");
  if (original.empty())
    return Error::permanent(ErrorDomain::kCodec, "the event carries no original HL7 message");
  auto parsed = Message::parse(original);
  if (auto* err = std::get_if<ParseError>(&parsed))
    return Error::permanent(ErrorDomain::kCodec, "original does not parse: " + err->to_string());
  Message& m = std::get<Message>(parsed);
  if (!r.system_id.empty())
    if (auto st = m.set("MSH-5", r.system_id); !st) return st.error();
  const std::string facility = !r.receiver.organisation.her_id.empty()
                                   ? r.receiver.organisation.her_id
                                   : r.receiver.organisation.name;
  if (!facility.empty())
    if (auto st = m.set("MSH-6", facility); !st) return st.error();
  return m.encode();
}

}  // namespace budstikke::hl7v2
