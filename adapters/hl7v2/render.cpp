// Canonical events of any origin rendered as HL7 v2 messages (for systems that only take
// HL7): lab results as ORU^R01, lab requisitions as OML^O21, referrals as REF^I12, patient
// movements as ADT, and every other kind as a document (MDM^T02) carrying the original
// message as an encapsulated attachment. HL7 events are never rebuilt here:
// Hl7Codec::render readdresses their original.

#include "adapters/hl7v2/render.hpp"

#include <ctime>

#include "engine/core/crypto.hpp"
#include "engine/core/time.hpp"

namespace budstikke::hl7v2 {
namespace {

using json = nlohmann::json;

// Escapes text for an ER7 field with the default delimiters |^~\&.
std::string esc(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    switch (c) {
      case '|':
        out += "\\F\\";
        break;
      case '^':
        out += "\\S\\";
        break;
      case '~':
        out += "\\R\\";
        break;
      case '\\':
        out += "\\E\\";
        break;
      case '&':
        out += "\\T\\";
        break;
      case '\r':
        if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
        out += "\\.br\\";
        break;
      case '\n':
        out += "\\.br\\";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string str(const json& j, const char* key) {
  if (!j.is_object()) return {};
  const auto it = j.find(key);
  if (it == j.end()) return {};
  if (it->is_string()) return it->get<std::string>();
  if (it->is_number()) return it->dump();
  return {};
}

// A member of an object, or null when `j` is no object or has no such member. A canonical
// event read from Kafka may carry any JSON in its body: nlohmann's value() throws on a
// non-object, which must never reach the route stage.
const json& member(const json& j, const char* key) {
  static const json kNull;
  if (!j.is_object()) return kNull;
  const auto it = j.find(key);
  return it == j.end() ? kNull : *it;
}

// A member that is a list, or an empty list for anything else.
const json& items(const json& j, const char* key) {
  static const json kEmpty = json::array();
  const json& v = member(j, key);
  return v.is_array() ? v : kEmpty;
}

// RFC 3339 or KITH dateTime -> HL7 DTM (YYYYMMDDHHMMSS); a date alone -> YYYYMMDD.
std::string hl7_ts(const std::string& t) {
  std::string d;
  for (char c : t) {
    if (c == '+' || c == 'Z' || (c == '-' && d.size() >= 8)) break;
    if (c >= '0' && c <= '9') d.push_back(c);
    if (c == '.') break;
  }
  return d.substr(0, 14);
}

std::string now_ts() {
  return hl7_ts(now_rfc3339());
}

std::string coded(const json& c) {
  // code^text^system
  if (c.is_string()) return esc(c.get<std::string>());
  return esc(str(c, "code")) + "^" + esc(str(c, "text")) + "^" + esc(str(c, "system"));
}

std::string pid(const Event& e) {
  const json& p = member(e.body, "patient");
  std::string ids;
  for (const auto& id : items(p, "ids")) {
    if (!ids.empty()) ids += "~";
    const std::string type = str(id, "type");
    std::string authority = str(id, "authority");
    if (authority.empty() && (type == "FNR" || type == "DNR" || type == "HNR")) authority = "NOR";
    ids += esc(str(id, "value")) + "^^^" + esc(authority) + "^" + esc(type);
  }
  const json& n = member(p, "name");
  std::string sex = str(p, "sex");
  if (sex == "1") sex = "M";  // KITH code list 3101
  if (sex == "2") sex = "F";
  if (sex == "0" || sex == "9") sex = "U";
  return "PID|1||" + ids + "||" + esc(str(n, "family")) + "^" + esc(str(n, "given")) + "||" +
         hl7_ts(str(p, "birth_date")) + "|" + esc(sex) + "\r";
}

std::string msh(const Event& e, const runtime::RenderRequest& r, const std::string& type,
                const std::string& version) {
  const std::string sending_app = e.sender.system.empty() ? "BUDSTIKKE" : e.sender.system;
  const std::string sending_fac = !e.sender.department.her_id.empty()
                                      ? e.sender.department.her_id
                                      : e.sender.organisation.her_id;
  const std::string receiving_fac = !r.receiver.organisation.her_id.empty()
                                        ? r.receiver.organisation.her_id
                                        : r.receiver.organisation.name;
  // MSH-10 is the source message id: the idempotency key receivers use.
  return "MSH|^~\\&|" + esc(sending_app) + "|" + esc(sending_fac) + "|" + esc(r.system_id) + "|" +
         esc(receiving_fac) + "|" + now_ts() + "||" + type + "|" + esc(e.source.message_id) +
         "|P|" + version + "|||AL|NE||UNICODE UTF-8\r";
}

// KITH DevResultInd (code list 8244) and HL7 flags -> an HL7 abnormal flag.
std::string flag_of(const json& f) {
  if (f.is_string()) return f.get<std::string>();
  const std::string c = str(f, "code");
  if (c == "1") return "H";
  if (c == "2") return "L";
  return c.empty() ? "" : "A";
}

// KITH StatusInvestigation (8245) and HL7 statuses -> OBX-11.
std::string status_of(const json& s) {
  if (s.is_string()) return s.get<std::string>();
  const std::string c = str(s, "code");
  if (c == "3" || c == "F") return "F";
  if (c == "4" || c == "C") return "C";
  if (c == "5" || c == "X") return "X";
  return c.empty() ? "F" : "P";
}

std::string oru(const Event& e) {
  std::string out = "OBR|1|||" + coded(member(e.body, "description")) + "|||" +
                    hl7_ts(str(e.body, "issued")) + "\r";
  int n = 0;
  // KITH results or HL7 observations: the same fields under slightly different names.
  auto add = [&](const json& r) {
    const json& what = r.contains("analysis") ? r.at("analysis") : member(r, "observation");
    const std::string value = str(r, "value");
    const std::string type =
        r.contains("value_type") ? str(r, "value_type")
        : value.find_first_not_of("0123456789.,-") == std::string::npos && !value.empty() ? "NM"
                                                                                          : "ST";
    out += "OBX|" + std::to_string(++n) + "|" + esc(type) + "|" + coded(what) + "||" + esc(value) +
           "|" + esc(str(r, "unit")) + "|" + esc(str(r, "reference_range")) + "|" +
           esc(flag_of(member(r, "flag"))) + "|||" + status_of(member(r, "status")) + "\r";
  };
  for (const auto& r : items(e.body, "results")) add(r);
  for (const auto& r : items(e.body, "observations")) add(r);
  return out;
}

std::string pv1(const Event& e) {
  const json& v = member(e.body, "visit");
  return "PV1|1|" + esc(str(v, "class").empty() ? "I" : str(v, "class")) + "\r";
}

// XCN: id^family^given of a person ("Mari Lindqvist" -> Lindqvist^Mari).
std::string xcn(const Person& p) {
  if (p.empty()) return "";
  const std::string id = !p.her_id.empty() ? p.her_id : p.hpr_number;
  std::string family = p.name;
  std::string given;
  if (const auto comma = p.name.find(','); comma != std::string::npos) {
    family = p.name.substr(0, comma);
    given = p.name.substr(comma + 1);
    if (!given.empty() && given[0] == ' ') given.erase(0, 1);
  } else if (const auto sp = p.name.rfind(' '); sp != std::string::npos) {
    given = p.name.substr(0, sp);
    family = p.name.substr(sp + 1);
  }
  return esc(id) + "^" + esc(family) + "^" + esc(given);
}

std::string org_name(const Party& p) {
  return !p.department.name.empty() ? p.organisation.name + " / " + p.department.name
                                    : p.organisation.name;
}

std::string her_of(const Party& p) {
  return !p.department.her_id.empty() ? p.department.her_id : p.organisation.her_id;
}

// OML^O21: the order (ORC) and one OBR per requested analysis.
std::string oml(const Event& e) {
  const json& b = e.body;
  std::string placer = str(b, "request_id");
  if (placer.empty()) placer = e.source.message_id;
  const std::string when = hl7_ts(str(b, "issued"));
  const std::string requester = xcn(e.sender.person);
  std::string out = pid(e) + "PV1|1|O\r";
  out += "ORC|NW|" + esc(placer) + "|||||||" + when + "|||" + requester + "|||||||||" +
         esc(org_name(e.sender)) + "^^^^^^^^^" + esc(her_of(e.sender)) + "\r";
  int n = 0;
  for (const auto& a : items(b, "analyses")) {
    out += "OBR|" + std::to_string(++n) + "|" + esc(placer) + "||" + coded(a) + "|||" + when +
           "||||||||" + esc(str(a, "specimen")) + "|" + requester + "\r";
  }
  return out;
}

// REF^I12: the referral (RF1), referring and receiving providers (PRD), the patient,
// diagnoses (DG1) and the reasons as notes (NTE).
std::string ref(const Event& e, const runtime::RenderRequest& r) {
  const json& b = e.body;
  std::string out = "RF1|P^Pending|" + esc(str(member(b, "priority"), "code")) + "|" +
                    esc(str(b, "requested_service")) + "||" + "|" + esc(e.source.message_id) +
                    "|||" + hl7_ts(str(b, "generated")) + "\r";
  const std::string referring = xcn(e.sender.person);
  out += "PRD|RP|" + (referring.empty() ? "" : referring.substr(referring.find('^') + 1)) + "||" +
         esc(org_name(e.sender)) + "^^^^^^^^^" + esc(her_of(e.sender)) + "|||" +
         esc(her_of(e.sender)) + "^HER\r";
  out += "PRD|RT|||" + esc(r.receiver.organisation.name) + "|||" +
         esc(r.receiver.organisation.her_id) + "^HER\r";
  out += pid(e);
  int n = 0;
  for (const auto& d : items(b, "diagnoses"))
    out += "DG1|" + std::to_string(++n) + "||" + coded(d) + "\r";
  n = 0;
  for (const auto& reason : items(b, "reasons")) {
    const std::string heading = str(reason, "heading");
    out += "NTE|" + std::to_string(++n) + "||" + esc(heading.empty() ? "" : heading + ": ") +
           esc(str(reason, "text")) + "\r";
  }
  return out;
}

std::string mdm(const Event& e, std::string_view original) {
  const std::string mime = e.original ? e.original->mime : "application/xml";
  return "EVN|T02|" + now_ts() + "\r" + pid(e) + "PV1|1|N\r" + "TXA|1|" +
         esc(std::string(to_string(e.type))) + "|" + esc(mime) + "|" + hl7_ts(e.occurred_at) +
         "||||||||" + esc(e.source.message_id) + "||||||AU\r" + "OBX|1|ED|" +
         esc(std::string(to_string(e.type))) + "^" + esc(e.source.message_type) +
         "^BUDSTIKKE||^application^" + esc(mime.substr(mime.find('/') + 1)) + "^Base64^" +
         base64_encode(original) + "||||||F\r";
}

}  // namespace

Result<std::string> render_event(const Event& e, std::string_view original,
                                 const runtime::RenderRequest& r) {
  if (!e.body_json.empty()) {  // decoded in this process (a route test): read it as JSON
    Event parsed = e;
    parsed.body = e.full_body();
    parsed.body_json.clear();
    parsed.body_content_json.clear();
    return render_event(parsed, original, r);
  }
  const std::string version =
      r.format.rfind("hl7v2/", 0) == 0 ? r.format.substr(6) : std::string("2.5");
  if (version.empty() || version == "*")
    return Error::permanent(ErrorDomain::kCodec, "name an HL7 version to render, e.g. hl7v2/2.5");
  switch (e.type) {
    case EventType::kLabResult:
      return msh(e, r, "ORU^R01^ORU_R01", version) + pid(e) + oru(e);
    case EventType::kAdmission:
      return msh(e, r, "ADT^A01^ADT_A01", version) + "EVN|A01|" + now_ts() + "\r" + pid(e) + pv1(e);
    case EventType::kDischarge:
      return msh(e, r, "ADT^A03^ADT_A03", version) + "EVN|A03|" + now_ts() + "\r" + pid(e) + pv1(e);
    case EventType::kTransfer:
      return msh(e, r, "ADT^A02^ADT_A02", version) + "EVN|A02|" + now_ts() + "\r" + pid(e) + pv1(e);
    case EventType::kPatientUpdate:
      return msh(e, r, "ADT^A08^ADT_A01", version) + "EVN|A08|" + now_ts() + "\r" + pid(e) + pv1(e);
    case EventType::kLabRequisition:
      return msh(e, r, "OML^O21^OML_O21", version) + oml(e);
    case EventType::kReferral:
      return msh(e, r, "REF^I12^REF_I12", version) + ref(e, r);
    default:
      if (original.empty())
        return Error::permanent(ErrorDomain::kCodec,
                                "no original message to carry in an MDM^T02 document");
      return msh(e, r, "MDM^T02^MDM_T02", version) + mdm(e, original);
  }
}

}  // namespace budstikke::hl7v2
