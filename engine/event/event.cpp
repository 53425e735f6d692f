#include "engine/event/event.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <tuple>

#include "engine/core/crypto.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/time.hpp"
#include "engine/event/utf8.hpp"

namespace budstikke {
namespace {

using nlohmann::json;

constexpr std::array<std::pair<EventType, std::string_view>, 14> kTypeNames = {{
    {EventType::kReferral, "referral"},
    {EventType::kDischargeSummary, "discharge_summary"},
    {EventType::kLabRequisition, "lab_requisition"},
    {EventType::kLabResult, "lab_result"},
    {EventType::kDialog, "dialog"},
    {EventType::kAdmission, "admission"},
    {EventType::kDischarge, "discharge"},
    {EventType::kTransfer, "transfer"},
    {EventType::kPatientUpdate, "patient_update"},
    {EventType::kMerge, "merge"},
    {EventType::kDocument, "document"},
    {EventType::kAppRec, "apprec"},
    {EventType::kPlo, "plo"},
    {EventType::kOther, "other"},
}};

void put(json& j, const char* k, const std::string& v) {
  if (!v.empty()) j[k] = v;
}

json org_json(const Organisation& o) {
  json j = json::object();
  put(j, "name", o.name);
  put(j, "her_id", o.her_id);
  put(j, "org_number", o.org_number);
  if (!o.ids.empty()) {
    json a = json::array();
    for (const auto& id : o.ids) {
      json x = {{"value", id.value}};
      put(x, "type", id.type);
      a.push_back(std::move(x));
    }
    j["ids"] = std::move(a);
  }
  return j;
}

json party_json(const Party& p) {
  json j = json::object();
  if (!p.organisation.empty()) j["organisation"] = org_json(p.organisation);
  if (!p.department.empty()) j["department"] = org_json(p.department);
  if (!p.person.empty()) {
    json x = json::object();
    put(x, "name", p.person.name);
    put(x, "her_id", p.person.her_id);
    put(x, "hpr_number", p.person.hpr_number);
    put(x, "role", p.person.role);
    j["person"] = std::move(x);
  }
  put(j, "system", p.system);
  return j;
}

json blob_json(const Blob& b, bool with_meta) {
  json j = json::object();
  if (with_meta) {
    put(j, "id", b.id);
    put(j, "mime", b.mime);
    put(j, "description", b.description);
  } else {
    put(j, "content_type", b.mime);
  }
  j["size"] = b.size;
  j["sha256"] = b.sha256;
  if (b.data) j["data_base64"] = base64_encode(*b.data);
  if (!b.claim_check.empty()) j["claim_check"] = b.claim_check;
  return j;
}

// A tiny reader that records the first problem with its JSON path.
struct Reader {
  std::string error;

  bool fail(const std::string& path, const std::string& why) {
    if (error.empty()) error = path + ": " + why;
    return false;
  }
  bool str(const json& j, const char* k, std::string& out, const std::string& path,
           bool required = false) {
    const auto it = j.find(k);
    if (it == j.end()) return required ? fail(path + "/" + k, "is required") : true;
    if (!it->is_string()) return fail(path + "/" + k, "must be a string");
    out = it->get<std::string>();
    return true;
  }
  bool object(const json& j, const std::string& path) {
    return j.is_object() ? true : fail(path, "must be an object");
  }
  bool org(const json& j, Organisation& o, const std::string& path) {
    if (!object(j, path)) return false;
    if (!str(j, "name", o.name, path) || !str(j, "her_id", o.her_id, path) ||
        !str(j, "org_number", o.org_number, path))
      return false;
    if (const auto it = j.find("ids"); it != j.end()) {
      if (!it->is_array()) return fail(path + "/ids", "must be an array");
      for (size_t i = 0; i < it->size(); ++i) {
        const std::string p = path + "/ids/" + std::to_string(i);
        Identifier id;
        if (!object((*it)[i], p) || !str((*it)[i], "value", id.value, p, true) ||
            !str((*it)[i], "type", id.type, p))
          return false;
        o.ids.push_back(std::move(id));
      }
    }
    return true;
  }
  bool party(const json& j, Party& p, const std::string& path) {
    if (!object(j, path)) return false;
    if (const auto it = j.find("organisation"); it != j.end())
      if (!org(*it, p.organisation, path + "/organisation")) return false;
    if (const auto it = j.find("department"); it != j.end())
      if (!org(*it, p.department, path + "/department")) return false;
    if (const auto it = j.find("person"); it != j.end()) {
      const std::string pp = path + "/person";
      if (!object(*it, pp) || !str(*it, "name", p.person.name, pp) ||
          !str(*it, "her_id", p.person.her_id, pp) ||
          !str(*it, "hpr_number", p.person.hpr_number, pp) || !str(*it, "role", p.person.role, pp))
        return false;
    }
    return str(j, "system", p.system, path);
  }
  bool blob(const json& j, Blob& b, const std::string& path, bool with_meta) {
    if (!object(j, path)) return false;
    if (with_meta) {
      if (!str(j, "id", b.id, path) || !str(j, "mime", b.mime, path, true) ||
          !str(j, "description", b.description, path))
        return false;
    } else if (!str(j, "content_type", b.mime, path)) {
      return false;
    }
    const auto size = j.find("size");
    if (size == j.end() || !size->is_number_unsigned())
      return fail(path + "/size", "must be a non-negative integer");
    b.size = size->get<uint64_t>();
    if (!str(j, "sha256", b.sha256, path, true)) return false;
    std::string data;
    if (j.contains("data_base64")) {
      if (!str(j, "data_base64", data, path)) return false;
      auto raw = base64_decode(data);
      if (!raw) return fail(path + "/data_base64", "is not valid base64");
      b.data = std::move(*raw);
    }
    if (!str(j, "claim_check", b.claim_check, path)) return false;
    if (!b.data && b.claim_check.empty()) return fail(path, "needs data_base64 or claim_check");
    return true;
  }
};

}  // namespace

std::string_view to_string(EventType t) {
  for (const auto& [k, v] : kTypeNames)
    if (k == t) return v;
  return "other";
}

std::optional<EventType> event_type_from_string(std::string_view s) {
  for (const auto& [k, v] : kTypeNames)
    if (v == s) return k;
  return std::nullopt;
}

namespace {

// Everything but the body.
json envelope(const Event& e) {
  json j = json::object();
  j["schema_version"] = kCanonicalSchemaVersion;
  j["event_id"] = e.event_id;
  j["type"] = std::string(to_string(e.type));
  put(j, "occurred_at", e.occurred_at);
  j["received_at"] = e.received_at;
  json s = {{"format", e.source.format}, {"message_id", e.source.message_id}};
  put(s, "version", e.source.version);
  put(s, "message_type", e.source.message_type);
  put(s, "channel", e.source.channel);
  if (e.source.validated) s["validated"] = *e.source.validated;
  j["source"] = std::move(s);
  if (!e.sender.empty()) j["sender"] = party_json(e.sender);
  if (!e.receiver.empty()) j["receiver"] = party_json(e.receiver);
  j["key"] = e.key;
  if (!e.conversation.empty()) {
    json c = json::object();
    put(c, "conversation_ref", e.conversation.conversation_ref);
    put(c, "parent_ref", e.conversation.parent_ref);
    put(c, "in_reply_to", e.conversation.in_reply_to);
    j["conversation"] = std::move(c);
  }
  if (!e.attachments.empty()) {
    json a = json::array();
    for (const auto& b : e.attachments) a.push_back(blob_json(b, true));
    j["attachments"] = std::move(a);
  }
  if (e.original) j["original"] = blob_json(*e.original, false);
  return j;
}

std::string dump(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

// Well-formed UTF-8 (utf8.hpp).
bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    const size_t len = utf8_sequence_length(p + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// The writers below give each object's members in key order (JsonObjectText's fast path).
void write_org(std::string& out, const Organisation& o) {
  JsonObjectText j(out);
  j.str_if("her_id", o.her_id);
  if (!o.ids.empty())
    append_json_array(j.member("ids"), o.ids, [](std::string& a, const auto& id) {
      JsonObjectText x(a);
      x.str_if("type", id.type);
      x.str("value", id.value);
      x.finish();
    });
  j.str_if("name", o.name);
  j.str_if("org_number", o.org_number);
  j.finish();
}

void write_party(std::string& out, const Party& p) {
  JsonObjectText j(out);
  if (!p.department.empty()) write_org(j.member("department"), p.department);
  if (!p.organisation.empty()) write_org(j.member("organisation"), p.organisation);
  if (!p.person.empty()) {
    JsonObjectText x(j.member("person"));
    x.str_if("her_id", p.person.her_id);
    x.str_if("hpr_number", p.person.hpr_number);
    x.str_if("name", p.person.name);
    x.str_if("role", p.person.role);
    x.finish();
  }
  j.str_if("system", p.system);
  j.finish();
}

void write_blob(std::string& out, const Blob& b, bool with_meta) {
  JsonObjectText j(out);
  j.str_if("claim_check", b.claim_check);
  if (!with_meta) j.str_if("content_type", b.mime);
  if (b.data) {
    std::string& v = j.member("data_base64");
    v += '"';
    append_base64(v, *b.data);  // base64 needs no escaping
    v += '"';
  }
  if (with_meta) {
    j.str_if("description", b.description);
    j.str_if("id", b.id);
    j.str_if("mime", b.mime);
  }
  j.str("sha256", b.sha256);
  j.member("size") += std::to_string(b.size);
  j.finish();
}

void write_body(std::string& out, const Event& e) {
  if (!e.body_json.empty()) {
    out += e.body_json;
    return;
  }
  if (e.body_content_json.empty() || !(e.body.is_object() || e.body.is_null())) {
    out += dump(e.body);
    return;
  }
  // The body's members with the pre-serialised content in its place.
  JsonObjectText j(out);
  bool content = false;
  if (e.body.is_object())
    for (const auto& [k, v] : e.body.items()) {  // in key order
      if (!content && k >= "content") {
        j.member("content") += e.body_content_json;
        content = true;
      }
      if (k != "content") j.member(k) += dump(v);
    }
  if (!content) j.member("content") += e.body_content_json;
  j.finish();
}

}  // namespace

void append_json_string(std::string& out, std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  bool ascii = true;
  for (const char ch : s) ascii = ascii && static_cast<unsigned char>(ch) < 0x80;
  if (!ascii && !valid_utf8(s)) {
    out += dump(json(std::string(s)));  // nlohmann's replacement of the invalid bytes
    return;
  }
  out += '"';
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += kHex[c >> 4];
        out += kHex[c & 0xF];
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

std::string& JsonObjectText::member(std::string_view key) {
  close();
  if (!members_.empty()) out_ += ',';
  append_json_string(out_, key);
  out_ += ':';
  members_.push_back({key, out_.size(), 0});
  return out_;
}

void JsonObjectText::finish() {
  close();
  const auto by_key = [](const Member& a, const Member& b) { return a.key < b.key; };
  if (!std::is_sorted(members_.begin(), members_.end(), by_key)) {
    // Written out of order: the members again, sorted (stable, as nlohmann keeps one of
    // equal keys; no caller writes a key twice).
    const std::string written = out_.substr(start_);
    auto sorted = members_;
    std::stable_sort(sorted.begin(), sorted.end(), by_key);
    out_.resize(start_ + 1);
    for (size_t i = 0; i < sorted.size(); ++i) {
      if (i) out_ += ',';
      append_json_string(out_, sorted[i].key);
      out_ += ':';
      out_.append(written, sorted[i].offset - start_, sorted[i].length);
    }
  }
  out_ += '}';
}

json to_json(const Event& e) {
  json j = envelope(e);
  j["body"] = e.full_body();
  return j;
}

json Event::full_body() const {
  // Written by our own serialisers; a parse failure would be a bug there, so it shows.
  if (!body_json.empty()) return json::parse(body_json);
  if (body_content_json.empty() || !(body.is_object() || body.is_null())) return body;
  json b = body;
  // Written by our own serialiser; a parse failure would be a bug there, so it shows.
  b["content"] = json::parse(body_content_json);
  return b;
}

bool Event::operator==(const Event& o) const {
  const auto fields = [](const Event& e) {
    return std::tie(e.event_id, e.type, e.occurred_at, e.received_at, e.source, e.sender,
                    e.receiver, e.key, e.conversation, e.attachments, e.original);
  };
  if (fields(*this) != fields(o)) return false;
  const auto plain = [](const Event& e) {
    return e.body_json.empty() && e.body_content_json.empty();
  };
  if (plain(*this) && plain(o)) return body == o.body;
  return full_body() == o.full_body();
}

const json& Event::body_of(json& scratch) const {
  if (body_json.empty() && body_content_json.empty()) return body;
  scratch = full_body();
  return scratch;
}

std::string to_json_string(const Event& e) {
  // Byte for byte what to_json(e).dump() gives, written directly: nlohmann builds only the
  // body (when it is not pre-serialised), never the envelope.
  std::string out;
  out.reserve(1024 + (e.original && e.original->data ? e.original->data->size() * 4 / 3 : 0) +
              e.body_content_json.size() + e.body_json.size());
  JsonObjectText j(out);
  if (!e.attachments.empty())
    append_json_array(j.member("attachments"), e.attachments,
                      [](std::string& a, const Blob& b) { write_blob(a, b, true); });
  write_body(j.member("body"), e);
  if (!e.conversation.empty()) {
    JsonObjectText c(j.member("conversation"));
    c.str_if("conversation_ref", e.conversation.conversation_ref);
    c.str_if("in_reply_to", e.conversation.in_reply_to);
    c.str_if("parent_ref", e.conversation.parent_ref);
    c.finish();
  }
  j.str("event_id", e.event_id);
  j.str("key", e.key);
  j.str_if("occurred_at", e.occurred_at);
  if (e.original) write_blob(j.member("original"), *e.original, false);
  j.str("received_at", e.received_at);
  if (!e.receiver.empty()) write_party(j.member("receiver"), e.receiver);
  j.member("schema_version") += std::to_string(kCanonicalSchemaVersion);
  if (!e.sender.empty()) write_party(j.member("sender"), e.sender);
  {
    JsonObjectText s(j.member("source"));
    s.str_if("channel", e.source.channel);
    s.str("format", e.source.format);
    s.str("message_id", e.source.message_id);
    s.str_if("message_type", e.source.message_type);
    if (e.source.validated) s.member("validated") += *e.source.validated ? "true" : "false";
    s.str_if("version", e.source.version);
    s.finish();
  }
  j.str("type", to_string(e.type));
  j.finish();
  return out;
}

Result<Event> event_from_json(const json& j) {
  Reader r;
  Event e;
  auto bad = [&] { return Error::permanent(ErrorDomain::kCodec, "canonical event: " + r.error); };
  if (!r.object(j, "")) return bad();
  const auto ver = j.find("schema_version");
  if (ver == j.end() || !ver->is_number_integer() || ver->get<int>() != kCanonicalSchemaVersion)
    return Error::permanent(ErrorDomain::kCodec, "canonical event: /schema_version: must be " +
                                                     std::to_string(kCanonicalSchemaVersion));
  std::string type;
  if (!r.str(j, "event_id", e.event_id, "", true) || !r.str(j, "type", type, "", true) ||
      !r.str(j, "occurred_at", e.occurred_at, "") ||
      !r.str(j, "received_at", e.received_at, "", true) || !r.str(j, "key", e.key, "", true))
    return bad();
  const auto t = event_type_from_string(type);
  if (!t)
    return Error::permanent(ErrorDomain::kCodec,
                            "canonical event: /type: unknown type '" + type + "'");
  e.type = *t;
  const auto src = j.find("source");
  if (src == j.end()) {
    r.fail("/source", "is required");
    return bad();
  }
  if (!r.object(*src, "/source") || !r.str(*src, "format", e.source.format, "/source", true) ||
      !r.str(*src, "message_id", e.source.message_id, "/source", true) ||
      !r.str(*src, "version", e.source.version, "/source") ||
      !r.str(*src, "message_type", e.source.message_type, "/source") ||
      !r.str(*src, "channel", e.source.channel, "/source"))
    return bad();
  if (const auto v = src->find("validated"); v != src->end()) {
    if (!v->is_boolean()) {
      r.fail("/source/validated", "must be a boolean");
      return bad();
    }
    e.source.validated = v->get<bool>();
  }
  if (const auto it = j.find("sender"); it != j.end() && !r.party(*it, e.sender, "/sender"))
    return bad();
  if (const auto it = j.find("receiver"); it != j.end() && !r.party(*it, e.receiver, "/receiver"))
    return bad();
  if (const auto it = j.find("conversation"); it != j.end()) {
    if (!r.object(*it, "/conversation") ||
        !r.str(*it, "conversation_ref", e.conversation.conversation_ref, "/conversation") ||
        !r.str(*it, "parent_ref", e.conversation.parent_ref, "/conversation") ||
        !r.str(*it, "in_reply_to", e.conversation.in_reply_to, "/conversation"))
      return bad();
  }
  const auto body = j.find("body");
  if (body == j.end() || !body->is_object()) {
    r.fail("/body", "is required and must be an object");
    return bad();
  }
  e.body = *body;
  if (const auto it = j.find("attachments"); it != j.end()) {
    if (!it->is_array()) {
      r.fail("/attachments", "must be an array");
      return bad();
    }
    for (size_t i = 0; i < it->size(); ++i) {
      Blob b;
      if (!r.blob((*it)[i], b, "/attachments/" + std::to_string(i), true)) return bad();
      e.attachments.push_back(std::move(b));
    }
  }
  if (const auto it = j.find("original"); it != j.end()) {
    Blob b;
    if (!r.blob(*it, b, "/original", false)) return bad();
    e.original = std::move(b);
  }
  return e;
}

Result<Event> event_from_json_string(std::string_view text) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded())
    return Error::permanent(ErrorDomain::kCodec, "canonical event: not valid JSON");
  return event_from_json(j);
}

std::optional<std::string> patient_identity_of(std::string_view value,
                                               std::optional<std::string_view> type) {
  std::string out;
  if (type) {
    out = *type;
    std::transform(out.begin(), out.end(), out.begin(),
                   [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  } else {
    out = "ID";
  }
  out += ':';
  const size_t prefix = out.size();
  for (const char c : value)
    if (c != ' ') out.push_back(c);
  if (out.size() == prefix) return std::nullopt;
  return out;
}

std::optional<std::string> patient_identity(const Event& e) {
  if (!e.body_json.empty()) {
    if (e.body_json_patient_identity.empty()) return std::nullopt;
    return e.body_json_patient_identity;
  }
  const auto p = e.body.find("patient");
  if (p == e.body.end() || !p->is_object()) return std::nullopt;
  const auto ids = p->find("ids");
  if (ids == p->end() || !ids->is_array()) return std::nullopt;
  for (const auto& id : *ids) {
    if (!id.is_object()) continue;
    const auto v = id.find("value");
    if (v == id.end() || !v->is_string()) continue;
    std::optional<std::string_view> type;
    if (const auto t = id.find("type"); t != id.end() && t->is_string())
      type = t->get_ref<const std::string&>();
    if (auto identity = patient_identity_of(v->get_ref<const std::string&>(), type))
      return identity;
  }
  return std::nullopt;
}

std::string patient_ref_of_number(std::string_view identity_number, std::string_view secret) {
  std::string digits;
  for (char c : identity_number)
    if (c != ' ' && c != '-' && c != '.') digits += c;
  if (digits.empty()) return "";
  return "pr:" + hmac_sha256_hex(secret, "person|" + digits);
}

std::string patient_ref(const Event& e, std::string_view secret) {
  const auto id = patient_identity(e);
  if (!id) return "";
  const auto colon = id->find(':');
  return patient_ref_of_number(colon == std::string::npos ? *id : id->substr(colon + 1), secret);
}

std::string kafka_key(const Event& e, std::string_view secret) {
  if (auto id = patient_identity(e)) return "p:" + hmac_sha256_hex(secret, "patient|" + *id);
  if (!e.conversation.conversation_ref.empty())
    return "c:" + hmac_sha256_hex(secret, "conversation|" + e.conversation.conversation_ref);
  return "e:" + hmac_sha256_hex(secret, "event|" + e.event_id);
}

std::vector<std::pair<std::string, std::string>> kafka_headers(const Event& e) {
  std::vector<std::pair<std::string, std::string>> h;
  h.emplace_back("bs-schema", std::to_string(kCanonicalSchemaVersion));
  h.emplace_back("bs-event-id", e.event_id);
  h.emplace_back(kTypeHeader, std::string(to_string(e.type)));
  h.emplace_back(kSourceFormatHeader, e.source.format);
  h.emplace_back("bs-message-id", e.source.message_id);
  if (!e.sender.organisation.her_id.empty())
    h.emplace_back("bs-sender-her", e.sender.organisation.her_id);
  if (!e.receiver.organisation.her_id.empty())
    h.emplace_back("bs-receiver-her", e.receiver.organisation.her_id);
  // Defence in depth: header values come from senders' own ids; never let an 11-digit
  // identity number through even if a sender put one in its message id.
  for (auto& kv : h) kv.second = redact_identity_numbers(kv.second);
  return h;
}

std::string canonical_topic(EventType t) {
  return "canonical." + std::string(to_string(t));
}

Blob make_inline_blob(std::string bytes, std::string mime) {
  Blob b;
  b.mime = std::move(mime);
  b.size = bytes.size();
  b.sha256 = sha256_hex(bytes);
  b.data = std::move(bytes);
  return b;
}

json party_to_json(const Party& p) {
  return party_json(p);
}

Result<Party> party_from_json(const json& j) {
  Reader r;
  Party p;
  if (!r.party(j, p, "party")) return Error::permanent(ErrorDomain::kCodec, "party: " + r.error);
  return p;
}

}  // namespace budstikke
