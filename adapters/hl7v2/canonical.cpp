#include "adapters/hl7v2/canonical.hpp"

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/render.hpp"
#include "engine/core/crypto.hpp"

namespace budstikke::hl7v2 {

namespace {

// The body is written as JSON text (Event::body_json), not built as nlohmann::json: that and
// its dump were about half of the decode. Values are views into the message, unescaped only
// when they hold an escape character.
class Values {
 public:
  explicit Values(const Message& m) : m_(m) {}
  // The value at p, empty when absent; valid until the next call.
  std::string_view operator()(const Path& p) {
    const auto v = m_.get_view(p, scratch_);
    return v ? *v : std::string_view();
  }
  const Message& message() const { return m_; }

 private:
  const Message& m_;
  std::string scratch_;
};

// A value that is there and not the explicit null "".
bool present(std::string_view v) {
  return !v.empty() && v != "\"\"";
}

// A member for a present value.
void put(JsonObjectText& j, std::string_view k, std::string_view v) {
  if (present(v)) j.str(k, v);
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

// A nested object: written to its own text, added to the parent only when it has members
// (or always, with add_to_always).
struct Nested {
  std::string text;
  JsonObjectText obj{text};
  bool add_to(JsonObjectText& parent, std::string_view key) {
    if (obj.empty()) return false;
    add_to_always(parent, key);
    return true;
  }
  void add_to_always(JsonObjectText& parent, std::string_view key) {
    obj.finish();
    parent.raw(key, text);
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

// body.patient; `identity` is what patient_identity() reads from it.
void patient(Values& v, JsonObjectText& body, std::string& identity) {
  const Message& m = v.message();
  // National identity numbers first: they are the patient's key.
  std::string national, other;
  std::optional<std::string> national_identity, other_identity;
  const size_t reps = m.repetitions(at("PID", 3));
  for (size_t r = 1; r <= reps; ++r) {
    const Seg pid{"PID"};
    const int rep = static_cast<int>(r);
    const std::string value(v(pid.f(3, 1, 0, rep)));
    if (value.empty()) continue;
    const std::string type(v(pid.f(3, 5, 0, rep)));
    const bool is_national = type == "FNR" || type == "DNR" || type == "NNNOR" || type == "HNR";
    std::string& list = is_national ? national : other;
    if (!list.empty()) list += ',';
    JsonObjectText id(list);
    put(id, "authority", v(pid.f(3, 4, 1, rep)));
    id.str_if("type", type);
    id.str("value", value);
    id.finish();
    auto& first = is_national ? national_identity : other_identity;
    if (!first)
      first = patient_identity_of(
          value, type.empty() ? std::nullopt : std::optional<std::string_view>(type));
  }
  JsonObjectText p(body.member("patient"));
  identity = national_identity ? *national_identity : other_identity.value_or("");
  p.str_if("birth_date", hl7_date(v(at("PID", 7, 1))));
  if (!national.empty() || !other.empty()) {
    std::string& ids = p.member("ids");
    ids += '[';
    ids += national;
    if (!national.empty() && !other.empty()) ids += ',';
    ids += other;
    ids += ']';
  }
  Nested name;
  put(name.obj, "family", v(at("PID", 5, 1, 1)));
  put(name.obj, "given", v(at("PID", 5, 2)));
  put(name.obj, "middle", v(at("PID", 5, 3)));
  name.add_to(p, "name");
  put(p, "sex", v(at("PID", 8)));
  p.finish();
}

// A time stamp as RFC 3339 when it converts, else as sent.
void time_member(JsonObjectText& j, std::string_view key, std::string_view t) {
  if (t.empty()) return;
  const std::string rfc = hl7_time_to_rfc3339(t);
  j.str(key, rfc.empty() ? t : std::string_view(rfc));
}

void visit(Values& v, JsonObjectText& body) {
  if (v.message().count("PV1") == 0) return;
  Nested vis;
  time_member(vis.obj, "admitted", v(at("PV1", 44, 1)));
  Nested att;
  put(att.obj, "family", v(at("PV1", 7, 2)));
  put(att.obj, "given", v(at("PV1", 7, 3)));
  put(att.obj, "id", v(at("PV1", 7, 1)));
  att.add_to(vis.obj, "attending");
  put(vis.obj, "class", v(at("PV1", 2)));
  time_member(vis.obj, "discharged", v(at("PV1", 45, 1)));
  Nested loc;
  put(loc.obj, "bed", v(at("PV1", 3, 3)));
  put(loc.obj, "facility", v(at("PV1", 3, 4)));
  put(loc.obj, "point_of_care", v(at("PV1", 3, 1)));
  put(loc.obj, "room", v(at("PV1", 3, 2)));
  loc.add_to(vis.obj, "location");
  Nested prior;
  put(prior.obj, "point_of_care", v(at("PV1", 6, 1)));
  put(prior.obj, "room", v(at("PV1", 6, 2)));
  prior.add_to(vis.obj, "prior_location");
  put(vis.obj, "service", v(at("PV1", 10)));
  put(vis.obj, "visit_number", v(at("PV1", 19, 1)));
  vis.add_to(body, "visit");
}

// A coded element (CE/CWE): field `field` of the segment, as an object (maybe empty).
void coded(Values& v, const Seg& seg, int field, Nested& c) {
  put(c.obj, "code", v(seg.f(field, 1)));
  put(c.obj, "system", v(seg.f(field, 3)));
  put(c.obj, "text", v(seg.f(field, 2)));
}

// OBX segments; ED values (embedded documents) become attachments.
void observations(Values& v, JsonObjectText& body, std::vector<Blob>& attachments) {
  const Message& m = v.message();
  const size_t n = m.count("OBX");
  if (n == 0) return;
  std::string out = "[";
  for (size_t k = 1; k <= n; ++k) {
    const Seg seg{"OBX", static_cast<int>(k)};
    if (k > 1) out += ',';
    const std::string type(v(seg.f(2)));
    // The value or the attachment first: members are written in key order.
    std::string attachment, value;
    if (type == "ED") {
      auto bytes = base64_decode(v(seg.f(5, 5)));
      if (bytes) {
        const std::string sub(v(seg.f(5, 3)));
        const std::string main(v(seg.f(5, 2)));
        std::string mime = "application/octet-stream";
        if (sub == "PDF" || sub == "pdf")
          mime = "application/pdf";
        else if (!main.empty() && !sub.empty())
          mime = main + "/" + sub;
        Blob b = make_inline_blob(std::move(*bytes), mime);
        b.id = "att-" + std::to_string(attachments.size() + 1);
        b.description = std::string(v(seg.f(3, 2)));
        attachment = b.id;
        attachments.push_back(std::move(b));
      } else {
        value = "(ED value is not valid base64)";
      }
    } else {
      const size_t reps = m.repetitions(seg.f(5));
      std::string scratch;
      for (size_t r = 1; r <= reps; ++r) {
        const auto rv = m.get_view(seg.f(5, 0, 0, static_cast<int>(r)), scratch);
        if (!rv) continue;
        if (!value.empty()) value += "\n";
        value += *rv;
      }
    }
    JsonObjectText o(out);
    o.str_if("attachment", attachment);
    put(o, "flag", v(seg.f(8)));
    {
      Nested c;
      coded(v, seg, 3, c);
      c.add_to_always(o, "observation");
    }
    o.str_if("observed", v(seg.f(14, 1)));
    put(o, "reference_range", v(seg.f(7)));
    put(o, "set_id", v(seg.f(1)));
    put(o, "status", v(seg.f(11)));
    put(o, "unit", v(seg.f(6, 1)));
    o.str_if("value", value);
    o.str_if("value_type", type);
    o.finish();
  }
  out += ']';
  body.raw("observations", out);
}

void orders(Values& v, JsonObjectText& body) {
  const Message& m = v.message();
  const size_t obrs = m.count("OBR");
  const size_t n = std::max(obrs, m.count("ORC"));
  if (n == 0) return;
  std::string out = "[";
  for (size_t k = 1; k <= n; ++k) {
    const Seg orc{"ORC", static_cast<int>(k)};
    const Seg obr{"OBR", static_cast<int>(k)};
    if (k > 1) out += ',';
    const bool has_obr = obrs >= k;
    // ORC-2/3, else OBR-2/3 (members are written in key order).
    const auto order_number = [&](int field) {
      std::string number(v(orc.f(field, 1)));
      if (!present(number) && has_obr) number = v(obr.f(field, 1));
      return number;
    };
    const std::string placer = order_number(2);
    const std::string filler = order_number(3);
    JsonObjectText o(out);
    if (has_obr) put(o, "collected", v(obr.f(7, 1)));
    put(o, "control", v(orc.f(1)));
    put(o, "filler_order", filler);
    put(o, "placer_order", placer);
    if (has_obr) {
      put(o, "priority", v(obr.f(5)));
      put(o, "result_status", v(obr.f(25)));
      Nested c;
      coded(v, obr, 4, c);
      c.add_to_always(o, "service");
    }
    o.finish();
  }
  out += ']';
  body.raw("orders", out);
}

void diagnoses(Values& v, JsonObjectText& body) {
  const size_t n = v.message().count("DG1");
  std::string out;
  for (size_t k = 1; k <= n; ++k) {
    Nested d;
    coded(v, Seg{"DG1", static_cast<int>(k)}, 3, d);
    if (d.obj.empty()) continue;
    d.obj.finish();
    out += out.empty() ? '[' : ',';
    out += d.text;
  }
  if (out.empty()) return;
  out += ']';
  body.raw("diagnoses", out);
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
  Values v(m);
  // Members in key order (JsonObjectText's fast path).
  JsonObjectText body(e.body_json);
  if (e.type == EventType::kAppRec) {
    put(body, "ack_code", v(at("MSA", 1)));
    e.conversation.in_reply_to = m.get(at("MSA", 2)).value_or("");
  }
  if (cancelled) body.raw("cancelled", "true");
  diagnoses(v, body);
  if (m.count("TXA")) {
    JsonObjectText doc(body.member("document"));
    put(doc, "document_type", v(at("TXA", 2, 1)));
    put(doc, "status", v(at("TXA", 17)));
    put(doc, "unique_id", v(at("TXA", 12, 1)));
    doc.finish();
  }
  body.str_if("event_time", when);
  if (e.type == EventType::kMerge && m.count("MRG")) {
    JsonObjectText prior(body.member("merged_from"));
    put(prior, "id", v(at("MRG", 1, 1)));
    put(prior, "type", v(at("MRG", 1, 5)));
    prior.finish();
  }
  {
    JsonObjectText mt(body.member("message_type"));
    mt.str("code", type);
    mt.str("trigger", trigger);
    mt.finish();
  }
  observations(v, body, e.attachments);
  orders(v, body);
  patient(v, body, e.body_json_patient_identity);
  put(body, "processing_id", v(at("MSH", 11, 1)));
  if (m.count("RF1")) {
    JsonObjectText rf(body.member("referral"));
    put(rf, "category", v(at("RF1", 5, 1)));
    put(rf, "priority", v(at("RF1", 2, 1)));
    put(rf, "reason", v(at("RF1", 10, 2)));
    put(rf, "referral_id", v(at("RF1", 6, 1)));
    put(rf, "status", v(at("RF1", 1, 1)));
    put(rf, "type", v(at("RF1", 3, 1)));
    rf.finish();
  }
  visit(v, body);
  body.finish();
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

namespace {

// The parsed original of the event a RenderRequest's memo was filled for.
struct ParsedOriginal final : runtime::RenderMemo {
  ParsedOriginal(std::string_view o, Message m) : original(o), message(std::move(m)) {}
  std::string original;  // what was parsed: a slot used for another original is parsed again
  Message message;
};

// MSH-5 and MSH-6 of a copy of the original name the destination.
Result<std::string> readdressed(Message m, const runtime::RenderRequest& r) {
  if (!r.system_id.empty())
    if (auto st = m.set("MSH-5", r.system_id); !st) return st.error();
  const std::string facility = !r.receiver.organisation.her_id.empty()
                                   ? r.receiver.organisation.her_id
                                   : r.receiver.organisation.name;
  if (!facility.empty())
    if (auto st = m.set("MSH-6", facility); !st) return st.error();
  return m.encode();
}

}  // namespace

Result<std::string> Hl7Codec::render(const Event& e, std::string_view original,
                                     const runtime::RenderRequest& r) const {
  if (e.source.format != "hl7v2") return render_event(e, original, r);
  const std::string own = "hl7v2/" + e.source.version;
  if (r.format != own && r.format != "hl7v2")
    return Error::permanent(ErrorDomain::kCodec,
                            "cannot convert " + own + " to " + r.format + " (versions differ)");
  if (original.empty())
    return Error::permanent(ErrorDomain::kCodec, "the event carries no original HL7 message");
  // The original parsed once per event: each destination readdresses a copy.
  auto* memo = r.memo ? dynamic_cast<ParsedOriginal*>(r.memo->get()) : nullptr;
  if (!memo || memo->original != original) {
    auto parsed = Message::parse(original);
    if (auto* err = std::get_if<ParseError>(&parsed))
      return Error::permanent(ErrorDomain::kCodec, "original does not parse: " + err->to_string());
    if (!r.memo) return readdressed(std::get<Message>(std::move(parsed)), r);
    auto fresh = std::make_unique<ParsedOriginal>(original, std::get<Message>(std::move(parsed)));
    memo = fresh.get();
    *r.memo = std::move(fresh);
  }
  return readdressed(memo->message, r);
}

}  // namespace budstikke::hl7v2
