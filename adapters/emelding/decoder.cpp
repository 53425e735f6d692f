#include <algorithm>
#include <map>
#include <variant>

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>

#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/standards.hpp"
#include "adapters/emelding/xml.hpp"
#include "engine/core/crypto.hpp"

namespace budstikke::emelding {

namespace x = XERCES_CPP_NAMESPACE;
using nlohmann::json;

namespace {

struct ParseError {
  int line = 0;
  int column = 0;
  bool fatal = false;
  std::string message;
};

class ErrorCollector final : public x::ErrorHandler {
 public:
  void warning(const x::SAXParseException&) override {}
  void error(const x::SAXParseException& e) override { add(e, false); }
  void fatalError(const x::SAXParseException& e) override { add(e, true); }
  void resetErrors() override { errors.clear(); }
  std::vector<ParseError> errors;

 private:
  void add(const x::SAXParseException& e, bool fatal) {
    if (errors.size() >= 20) return;
    errors.push_back({static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber()),
                      fatal, xml::utf8(e.getMessage())});
  }
};

// Refuses every external entity and DTD: messages are self-contained.
class NoExternal final : public x::XMLEntityResolver {
 public:
  x::InputSource* resolveEntity(x::XMLResourceIdentifier*) override {
    static const char kEmpty[] = "";
    return new x::MemBufInputSource(reinterpret_cast<const XMLByte*>(kEmpty), 0, "empty", false);
  }
};

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (s.empty()) continue;
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// <X V="code" S="oid" DN="text"/> -> {"code","system","oid","text"}
json coded(const x::DOMElement* e) {
  json j = json::object();
  if (!e) return j;
  const std::string v = xml::attr(e, "V");
  const std::string s = xml::attr(e, "S");
  const std::string dn = xml::attr(e, "DN");
  const std::string ot = xml::attr(e, "OT");
  if (!v.empty()) j["code"] = v;
  if (!s.empty()) {
    j["system"] = code_system_name(s);
    j["oid"] = s;
  }
  if (!dn.empty()) j["text"] = dn;
  if (!ot.empty()) j["original_text"] = ot;
  return j;
}

// Generic, lossless-enough XML -> JSON for the payload: attributes as "@name", repeated
// children as arrays, text as "#text" (or the value itself for text-only elements).
// Base64Container content is left out: attachments carry it.
json to_json_tree(const x::DOMElement* e) {
  json obj = json::object();
  if (const x::DOMNamedNodeMap* attrs = e->getAttributes()) {
    for (XMLSize_t i = 0; i < attrs->getLength(); ++i) {
      const x::DOMNode* a = attrs->item(i);
      const std::string name = xml::utf8(a->getNodeName());
      if (name.rfind("xmlns", 0) == 0 || name.rfind("xsi:", 0) == 0) continue;
      obj["@" + xml::local_name(a)] = xml::utf8(a->getNodeValue());
    }
  }
  bool has_elements = false;
  std::string text;
  std::vector<std::pair<std::string, json>> kids;
  std::map<std::string, int> counts;
  for (x::DOMNode* c = e->getFirstChild(); c; c = c->getNextSibling()) {
    if (c->getNodeType() == x::DOMNode::ELEMENT_NODE) {
      has_elements = true;
      const auto* ce = static_cast<x::DOMElement*>(c);
      std::string name = xml::local_name(ce);
      ++counts[name];
      kids.emplace_back(std::move(name),
                        xml::local_name(ce) == "Base64Container" ? json("(attachment)")
                                                                  : to_json_tree(ce));
    } else if (c->getNodeType() == x::DOMNode::TEXT_NODE ||
               c->getNodeType() == x::DOMNode::CDATA_SECTION_NODE) {
      text += xml::utf8(c->getNodeValue());
    }
  }
  for (auto& [n, v] : kids) {
    if (counts[n] > 1)
      obj[n].push_back(std::move(v));
    else
      obj[n] = std::move(v);
  }
  const auto b = text.find_first_not_of(" \t\r\n");
  if (b != std::string::npos) {
    const auto en = text.find_last_not_of(" \t\r\n");
    text = text.substr(b, en - b + 1);
    if (obj.empty() && !has_elements) return text;
    obj["#text"] = text;
  }
  if (obj.empty()) return "";
  return obj;
}

// ---- parties

void add_ident(Organisation& o, const std::string& id, const std::string& type) {
  if (id.empty()) return;
  if (type == "HER" && o.her_id.empty())
    o.her_id = id;
  else if ((type == "ENH" || type == "RSH") && o.org_number.empty() && id.size() == 9)
    o.org_number = id;
  else
    o.ids.push_back({id, type});
}

// MsgHead: <Organisation><OrganisationName/><Ident><Id/><TypeId V/></Ident>...
void msghead_org(const x::DOMElement* e, Organisation& o) {
  o.name = xml::text_at(e, "OrganisationName");
  for (const auto* ident : xml::children(e, "Ident"))
    add_ident(o, xml::text_at(ident, "Id"), xml::v_at(ident, "TypeId"));
}

void msghead_person(const x::DOMElement* e, Person& p) {
  p.name = join({xml::text_at(e, "GivenName"), xml::text_at(e, "MiddleName"),
                 xml::text_at(e, "FamilyName")},
                " ");
  for (const auto* ident : xml::children(e, "Ident")) {
    const std::string id = xml::text_at(ident, "Id");
    const std::string type = xml::v_at(ident, "TypeId");
    if (type == "HER" && p.her_id.empty()) p.her_id = id;
    if (type == "HPR" && p.hpr_number.empty()) p.hpr_number = id;
  }
  p.role = xml::attr(xml::child(e, "RoleToPatient"), "DN");
}

Party msghead_party(const x::DOMElement* e) {
  Party p;
  const auto* org = xml::child(e, "Organisation");
  if (!org) return p;
  msghead_org(org, p.organisation);
  if (const auto* dept = xml::child(org, "Organisation")) {
    msghead_org(dept, p.department);
    if (const auto* hp = xml::child(dept, "HealthcareProfessional")) msghead_person(hp, p.person);
  }
  if (const auto* hp = xml::child(org, "HealthcareProfessional")) msghead_person(hp, p.person);
  return p;
}

// Message family and AppRec: <HCP><Inst><Name/><Id/><TypeId V/><Dept/><HCPerson/>...
void hcp_unit(const x::DOMElement* e, Organisation& o) {
  o.name = xml::text_at(e, "Name");
  add_ident(o, xml::text_at(e, "Id"), xml::v_at(e, "TypeId"));
  for (const auto* a : xml::children(e, "AdditionalId"))
    add_ident(o, xml::text_at(a, "Id"), xml::v_at(a, "Type"));
}

void hcp_person(const x::DOMElement* e, Person& p) {
  p.name = xml::text_at(e, "Name");
  const std::string id = xml::text_at(e, "Id");
  const std::string type = xml::v_at(e, "TypeId");
  if (type == "HER") p.her_id = id;
  if (type == "HPR") p.hpr_number = id;
  for (const auto* a : xml::children(e, "AdditionalId")) {
    const std::string t = xml::v_at(a, "Type");
    if (t == "HER" && p.her_id.empty()) p.her_id = xml::text_at(a, "Id");
    if (t == "HPR" && p.hpr_number.empty()) p.hpr_number = xml::text_at(a, "Id");
  }
  p.role = xml::attr(xml::child(e, "Type"), "DN");
}

Party hcp_party(const x::DOMElement* holder) {
  Party p;
  const auto* hcp = xml::child(holder, "HCP");
  if (!hcp) return p;
  if (const auto* inst = xml::child(hcp, "Inst")) {
    hcp_unit(inst, p.organisation);
    if (const auto* dept = xml::child(inst, "Dept")) hcp_unit(dept, p.department);
    if (const auto* per = xml::child(inst, "HCPerson")) hcp_person(per, p.person);
  }
  if (const auto* prof = xml::child(hcp, "HCProf")) hcp_person(prof, p.person);
  return p;
}

// ---- patient

json msghead_patient(const x::DOMElement* e) {
  json p = json::object();
  if (!e) return p;
  json name = json::object();
  if (auto v = xml::text_at(e, "FamilyName"); !v.empty()) name["family"] = v;
  if (auto v = xml::text_at(e, "MiddleName"); !v.empty()) name["middle"] = v;
  if (auto v = xml::text_at(e, "GivenName"); !v.empty()) name["given"] = v;
  if (!name.empty()) p["name"] = name;
  if (auto v = xml::text_at(e, "DateOfBirth"); !v.empty()) p["birth_date"] = v;
  if (auto v = xml::v_at(e, "Sex"); !v.empty()) p["sex"] = v;
  json ids = json::array();
  for (const auto* ident : xml::children(e, "Ident")) {
    const std::string id = xml::text_at(ident, "Id");
    if (!id.empty()) ids.push_back({{"value", id}, {"type", xml::v_at(ident, "TypeId")}});
  }
  if (!ids.empty()) p["ids"] = ids;
  return p;
}

json message_patient(const x::DOMElement* e) {
  json p = json::object();
  if (!e) return p;
  if (auto v = xml::text_at(e, "Name"); !v.empty()) {
    json name = json::object();
    const auto comma = v.find(',');
    if (comma != std::string::npos) {
      name["family"] = v.substr(0, comma);
      auto given = v.substr(comma + 1);
      given.erase(0, given.find_first_not_of(' '));
      name["given"] = given;
    } else {
      name["text"] = v;
    }
    p["name"] = name;
  }
  if (auto v = xml::v_at(e, "DateOfBirth"); !v.empty()) p["birth_date"] = v;
  if (auto v = xml::v_at(e, "Sex"); !v.empty()) p["sex"] = v;
  json ids = json::array();
  if (auto id = xml::text_at(e, "OffId"); !id.empty()) {
    std::string type = xml::v_at(e, "TypeOffId");
    if (type.empty()) type = "FNR";
    ids.push_back({{"value", id}, {"type", type}});
  }
  for (const char* local : {"IdByServProvider", "IdByRequester"})
    if (auto id = xml::text_at(e, local); !id.empty())
      ids.push_back({{"value", id}, {"type", std::string("local:") + local}});
  if (!ids.empty()) p["ids"] = ids;
  return p;
}

// ---- clinical content common to the standards

void collect(const x::DOMNode* n, std::string_view name, std::vector<x::DOMElement*>& out,
             size_t limit = 500) {
  for (x::DOMNode* c = n->getFirstChild(); c && out.size() < limit; c = c->getNextSibling()) {
    if (c->getNodeType() != x::DOMNode::ELEMENT_NODE) continue;
    auto* e = static_cast<x::DOMElement*>(c);
    if (xml::local_name(e) == name)
      out.push_back(e);
    else
      collect(e, name, out, limit);
  }
}

json diagnoses(const x::DOMElement* root) {
  json out = json::array();
  std::vector<x::DOMElement*> found;
  collect(root, "Diagnosis", found);
  for (const auto* d : found) {
    const x::DOMElement* cpt = xml::child(d, "Concept");
    json c = coded(cpt ? cpt : d);
    if (c.contains("code")) out.push_back(std::move(c));
  }
  return out;
}

json lab_results(const x::DOMElement* root) {
  json out = json::array();
  std::vector<x::DOMElement*> items;
  collect(root, "ResultItem", items);
  for (const auto* it : items) {
    json r = json::object();
    if (const auto* inv = xml::path(it, "Investigation/Id")) r["analysis"] = coded(inv);
    if (const auto* num = xml::path(it, "NumResult/NumResultValue")) {
      r["value"] = xml::attr(num, "V");
      if (auto u = xml::attr(num, "U"); !u.empty()) r["unit"] = u;
    } else if (auto t = xml::text_at(it, "TextResult/Result"); !t.empty()) {
      r["value"] = t;
    }
    if (auto ref = xml::text_at(it, "RefInterval/Descr"); !ref.empty()) r["reference_range"] = ref;
    if (const auto* flag = xml::child(it, "DevResultInd")) r["flag"] = coded(flag);
    if (const auto* st = xml::child(it, "StatusInvestigation")) r["status"] = coded(st);
    if (const auto* st = xml::child(it, "ServType")) r["change"] = coded(st);
    if (auto c = xml::text_at(it, "Comment"); !c.empty()) r["comment"] = c;
    if (!r.empty()) out.push_back(std::move(r));
  }
  return out;
}

json requested_analyses(const x::DOMElement* root) {
  json out = json::array();
  std::vector<x::DOMElement*> items;
  collect(root, "AnalysedSubject", items);
  for (const auto* s : items) {
    std::vector<x::DOMElement*> ids;
    collect(s, "Investigation", ids);
    for (const auto* inv : ids)
      if (const auto* id = xml::child(inv, "Id")) out.push_back(coded(id));
  }
  return out;
}

json reasons(const x::DOMElement* root) {
  json out = json::array();
  std::vector<x::DOMElement*> items;
  collect(root, "ReasonAsText", items);
  for (const auto* r : items) {
    json j = json::object();
    if (auto h = xml::text_at(r, "Heading"); !h.empty()) j["heading"] = h;
    if (const auto* hd = xml::child(r, "Heading"); hd && !xml::attr(hd, "DN").empty())
      j["heading"] = xml::attr(hd, "DN");
    if (auto t = xml::text_at(r, "TextResultValue"); !t.empty()) j["text"] = t;
    if (!j.empty()) out.push_back(std::move(j));
  }
  return out;
}

json dialog_notes(const x::DOMElement* payload) {
  json out = json::array();
  for (const char* kind : {"Notat", "Foresporsel"}) {
    for (const auto* n : xml::children(payload, kind)) {
      json j = {{"kind", kind}};
      if (const auto* tema = xml::child(n, "TemaKodet")) j["topic"] = coded(tema);
      if (auto t = xml::text_at(n, "Tema"); !t.empty()) j["topic_text"] = t;
      if (auto t = xml::text_at(n, "TekstNotatInnhold"); !t.empty()) j["text"] = t;
      if (auto t = xml::text_at(n, "Sporsmal"); !t.empty()) j["question"] = t;
      if (const auto* ty = xml::child(n, "TypeForesp")) j["request_type"] = coded(ty);
      out.push_back(std::move(j));
    }
  }
  return out;
}

// RefDoc elements with embedded base64 documents.
void attachments_from(const x::DOMElement* root, std::vector<Blob>& out,
                      std::vector<std::string>& warnings) {
  std::vector<x::DOMElement*> refdocs;
  collect(root, "RefDoc", refdocs);
  for (const auto* rd : refdocs) {
    const auto* b64 = xml::descendant(rd, "Base64Container");
    if (!b64) continue;
    auto data = base64_decode(xml::text(b64));
    if (!data) {
      warnings.push_back("RefDoc attachment is not valid base64; left out");
      continue;
    }
    Blob b = make_inline_blob(std::move(*data), xml::text_at(rd, "MimeType"));
    b.description = xml::text_at(rd, "Description");
    if (b.mime.empty()) b.mime = "application/octet-stream";
    b.id = "att-" + std::to_string(out.size() + 1);
    out.push_back(std::move(b));
  }
}

std::string trim_copy(std::string s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return {};
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Time stamps in KITH messages have no zone; they are Norwegian local time. We keep them
// as written in the body and give occurred_at only when it has a zone or is a plain
// date-time (then marked as local by appending nothing: the schema needs a zone, so we
// leave occurred_at empty rather than guess).
std::string as_rfc3339(const std::string& s) {
  if (s.size() >= 19 && s[10] == 'T' &&
      (s.back() == 'Z' || s.find('+', 19) != std::string::npos ||
       (s.size() > 19 && s.find('-', 19) != std::string::npos)))
    return s;
  return {};
}

}  // namespace

struct Decoder::Impl {
  std::shared_ptr<const SchemaSet> schemas;
  std::unique_ptr<x::XercesDOMParser> validating;
  std::unique_ptr<x::XercesDOMParser> plain;
  ErrorCollector errors;
  NoExternal no_external;
  x::SecurityManager security;

  x::XercesDOMParser* parser(bool validate) {
    auto& slot = validate ? validating : plain;
    if (!slot) {
      slot = std::make_unique<x::XercesDOMParser>(
          nullptr, x::XMLPlatformUtils::fgMemoryManager,
          validate ? schemas->pool() : nullptr);
      auto& p = *slot;
      p.setErrorHandler(&errors);
      p.setDoNamespaces(true);
      p.setCreateEntityReferenceNodes(false);
      p.setLoadExternalDTD(false);
      p.setDisableDefaultEntityResolution(true);
      p.setSecurityManager(&security);
      p.setCreateCommentNodes(false);
      if (validate) {
        p.setDoSchema(true);
        p.setValidationScheme(x::XercesDOMParser::Val_Always);
        p.useCachedGrammarInParse(true);
        p.setLoadSchema(false);  // only the pool's grammars; never xsi:schemaLocation
        p.setHandleMultipleImports(true);
        p.setValidationConstraintFatal(false);
        p.setXMLEntityResolver(schemas->resolver());
      } else {
        p.setDoSchema(false);
        p.setValidationScheme(x::XercesDOMParser::Val_Never);
        p.setXMLEntityResolver(&no_external);
      }
    }
    return slot.get();
  }
};

Decoder::Decoder(std::shared_ptr<const SchemaSet> schemas) : impl_(std::make_unique<Impl>()) {
  xml::ensure_initialized();
  impl_->schemas = std::move(schemas);
  impl_->security.setEntityExpansionLimit(100);
}

Decoder::~Decoder() = default;

namespace {

// The element whose end tag (or empty-element tag) ends just before line:col. Xerces reports
// content-model errors there, at the parent's end; naming it points the reader at the defect.
std::string element_ending_at(std::string_view bytes, int line, int col) {
  if (line <= 0) return {};
  size_t off = 0;
  for (int l = 1; l < line && off < bytes.size(); ++l) {
    const size_t nl = bytes.find('\n', off);
    if (nl == std::string_view::npos) return {};
    off = nl + 1;
  }
  off = std::min(bytes.size(), off + static_cast<size_t>(col > 0 ? col - 1 : 0));
  const std::string_view before = bytes.substr(0, off);
  const size_t lt = before.rfind('<');
  if (lt == std::string_view::npos) return {};
  size_t b = lt + 1;
  if (b < before.size() && before[b] == '/') ++b;
  size_t e = b;
  while (e < before.size() && before[e] != '>' && before[e] != ' ' && before[e] != '/' &&
         before[e] != '\t' && before[e] != '\n' && before[e] != '\r')
    ++e;
  std::string name(before.substr(b, e - b));
  if (const auto colon = name.find(':'); colon != std::string::npos) name = name.substr(colon + 1);
  return name;
}

std::string where(std::string_view name, int line, int col) {
  std::string s(name.empty() ? "message" : name);
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(col);
  return s;
}

// Reads what a MsgHead/Message/AppRec says about itself, as far as it can.
void read_info(const x::DOMElement* root, MessageInfo& info) {
  const std::string root_name = xml::local_name(root);
  if (root_name == "MsgHead") {
    info.family = "msghead";
    const auto* mi = xml::child(root, "MsgInfo");
    info.msg_type = xml::v_at(mi, "Type");
    info.msg_type_dn = xml::attr(xml::child(mi, "Type"), "DN");
    info.msg_id = xml::text_at(mi, "MsgId");
    info.gen_date = xml::text_at(mi, "GenDate");
    if (const auto* s = xml::child(mi, "Sender")) info.sender = msghead_party(s);
    if (const auto* r = xml::child(mi, "Receiver")) info.receiver = msghead_party(r);
  } else if (root_name == "AppRec") {
    info.family = "apprec";
    info.msg_type = "APPREC";
    info.msg_id = xml::text_at(root, "Id");
    info.gen_date = xml::text_at(root, "GenDate");
    if (const auto* s = xml::child(root, "Sender")) info.sender = hcp_party(s);
    if (const auto* r = xml::child(root, "Receiver")) info.receiver = hcp_party(r);
  } else if (root_name == "Message") {
    info.family = "message";
    info.msg_type = xml::v_at(root, "Type");
    info.msg_type_dn = xml::attr(xml::child(root, "Type"), "DN");
    info.msg_id = xml::text_at(root, "MsgId");
    info.gen_date = xml::v_at(root, "GenDate");
    if (info.gen_date.empty()) info.gen_date = xml::text_at(root, "GenDate");
    const x::DOMElement* body = nullptr;
    for (const char* b : {"ServReq", "ServReport", "ServRprt"})
      if (!body) body = xml::child(root, b);
    if (body) {
      const bool report = xml::local_name(body) != "ServReq";
      const auto* provider = xml::child(body, "ServProvider");
      const auto* requester = xml::child(body, "Requester");
      // A report goes from the service provider back to the requester; a request the other way.
      if (provider) (report ? info.sender : info.receiver) = hcp_party(provider);
      if (requester) (report ? info.receiver : info.sender) = hcp_party(requester);
    }
  }
}

}  // namespace

std::variant<Decoded, Rejection> Decoder::decode(std::string_view bytes, const DecodeOptions& opts,
                                                 std::string_view name) {
  Rejection rej;
  const bool validate = opts.validate && impl_->schemas != nullptr;
  x::XercesDOMParser* p = impl_->parser(validate);
  impl_->errors.resetErrors();
  const std::string sys_id = name.empty() ? std::string("message") : std::string(name);
  if (bytes.empty()) {
    rej.code = kNotXml;
    rej.reason = where(name, 0, 0) + ": empty message";
    return rej;
  }
  x::MemBufInputSource src(reinterpret_cast<const XMLByte*>(bytes.data()), bytes.size(),
                           sys_id.c_str(), false);
  try {
    p->parse(src);
  } catch (const x::XMLException& e) {
    impl_->errors.errors.push_back({0, 0, true, xml::utf8(e.getMessage())});
  } catch (const x::DOMException& e) {
    impl_->errors.errors.push_back({0, 0, true, xml::utf8(e.getMessage())});
  } catch (...) {
    impl_->errors.errors.push_back({0, 0, true, "the XML parser failed"});
  }
  const auto& errs = impl_->errors.errors;
  const auto fatal = std::find_if(errs.begin(), errs.end(), [](const auto& e) { return e.fatal; });
  x::DOMDocument* doc = p->getDocument();
  x::DOMElement* root = doc ? doc->getDocumentElement() : nullptr;
  if (fatal != errs.end() || !root) {
    rej.code = kNotXml;
    if (fatal != errs.end()) {
      rej.line = fatal->line;
      rej.column = fatal->column;
      rej.reason = where(name, fatal->line, fatal->column) + ": not well-formed XML: " + fatal->message;
    } else {
      rej.reason = where(name, 0, 0) + ": no root element";
    }
    if (root) read_info(root, rej.info);
    p->resetDocumentPool();
    return rej;
  }

  // Unwrap NAV's EI_fellesformat: the message is the MsgHead or AppRec inside.
  x::DOMElement* msg = root;
  if (xml::local_name(root) == "EI_fellesformat") {
    msg = xml::child(root, "MsgHead");
    if (!msg) msg = xml::child(root, "AppRec");
    if (!msg) {
      rej.code = kUnsupported;
      rej.reason = where(name, 0, 0) + ": EI_fellesformat without a MsgHead or AppRec";
      p->resetDocumentPool();
      return rej;
    }
  }
  MessageInfo& info = rej.info;
  read_info(msg, info);
  info.namespace_uri = xml::namespace_uri(msg);
  const std::string msg_root = xml::local_name(msg);
  const StandardInfo* std_info = standard_by_namespace(info.namespace_uri);
  const x::DOMElement* payload = nullptr;
  if (msg_root == "MsgHead" && std_info) {
    // The business standard is the first document's payload.
    payload = xml::path(msg, "Document/RefDoc/Content");
    const x::DOMElement* first = nullptr;
    if (payload)
      for (auto* c : xml::element_children(payload)) {
        first = c;
        break;
      }
    payload = first;
    const StandardInfo* ps = payload ? standard_by_namespace(xml::namespace_uri(payload)) : nullptr;
    if (ps) std_info = ps;
  }
  const bool supported = std_info && (msg_root == "MsgHead" || msg_root == "AppRec" ||
                                      msg_root == "Message");
  if (!supported) {
    rej.code = kUnsupported;
    rej.reason = where(name, 0, 0) + ": unsupported message format: root element <" + msg_root +
                 "> in namespace '" + info.namespace_uri + "'";
    p->resetDocumentPool();
    return rej;
  }
  info.standard = std_info->standard;
  info.version = std_info->version;
  info.apprec_version = std_info->apprec_version;
  if (info.standard == "msghead") info.standard = "msghead";

  if (!errs.empty()) {
    const auto& e = errs.front();
    rej.code = kNotValid;
    rej.line = e.line;
    rej.column = e.column;
    rej.reason = where(name, e.line, e.column) + ": does not validate against " + info.standard +
                 " " + info.version + ": " + e.message;
    if (const std::string el = element_ending_at(bytes, e.line, e.column); !el.empty())
      rej.reason += " (in element '" + el + "' ending at line " + std::to_string(e.line) + ")";
    if (errs.size() > 1)
      rej.reason += " (and " + std::to_string(errs.size() - 1) + " more error" +
                    (errs.size() > 2 ? "s" : "") + ")";
    p->resetDocumentPool();
    return rej;
  }
  if (trim_copy(info.msg_id).empty()) {
    rej.code = kBadMsgId;
    rej.reason = where(name, 0, 0) + ": the message has no message id (MsgId)";
    p->resetDocumentPool();
    return rej;
  }

  // ---- canonicalize
  Decoded out;
  out.validated = validate;
  Event e;
  e.event_id = uuid_v4();
  e.received_at = now_rfc3339();
  e.source.format = "kith";
  e.source.version = info.standard + "/" + info.version;
  e.source.message_type = info.msg_type.empty() ? info.standard : info.msg_type;
  e.source.message_id = info.msg_id;
  e.source.channel = opts.channel;
  e.source.validated = validate;
  e.sender = info.sender;
  e.receiver = info.receiver;
  e.type = std_info->type;
  json body = json::object();
  body["standard"] = info.standard;
  body["version"] = info.version;
  if (!info.msg_type.empty()) {
    body["message_type"] = {{"code", info.msg_type}};
    if (!info.msg_type_dn.empty()) body["message_type"]["text"] = info.msg_type_dn;
  }
  if (!info.gen_date.empty()) body["generated"] = info.gen_date;

  if (msg_root == "MsgHead") {
    const auto* mi = xml::child(msg, "MsgInfo");
    e.type = type_for_msg_type(info.msg_type, std_info->type);
    e.conversation.conversation_ref = xml::text_at(mi, "ConversationRef/RefToConversation");
    e.conversation.parent_ref = xml::text_at(mi, "ConversationRef/RefToParent");
    if (const auto* pat = xml::child(mi, "Patient")) body["patient"] = msghead_patient(pat);
    const auto* refdoc = xml::path(msg, "Document/RefDoc");
    if (auto d = xml::v_at(refdoc, "IssueDate"); !d.empty()) body["issued"] = d;
    if (payload) {
      body["content"] = {{xml::local_name(payload), to_json_tree(payload)}};
      if (e.type == EventType::kDialog) body["notes"] = dialog_notes(payload);
      if (e.type == EventType::kReferral) {
        body["reasons"] = reasons(payload);
        if (const auto* rs = xml::descendant(payload, "ReqServ")) body["requested_service"] = xml::text(rs);
      }
      if (auto d = diagnoses(payload); !d.empty()) body["diagnoses"] = d;
    }
    // Documents after the first are attachments.
    auto docs = xml::children(msg, "Document");
    for (size_t i = 1; i < docs.size(); ++i) attachments_from(docs[i], e.attachments, out.warnings);
    if (docs.size() > 0) attachments_from(docs[0], e.attachments, out.warnings);
  } else if (msg_root == "AppRec") {
    e.type = EventType::kAppRec;
    const auto* orig = xml::child(msg, "OriginalMsgId");
    e.conversation.in_reply_to = xml::text_at(orig, "Id");
    body["status"] = coded(xml::child(msg, "Status"));
    json errors = json::array();
    for (const auto* er : xml::children(msg, "Error")) errors.push_back(coded(er));
    if (!errors.empty()) body["errors"] = errors;
    body["original"] = {{"message_type", coded(xml::child(orig, "MsgType"))},
                        {"issued", xml::text_at(orig, "IssueDate")},
                        {"id", e.conversation.in_reply_to}};
  } else {  // Message
    const x::DOMElement* sb = nullptr;
    for (const char* b : {"ServReq", "ServReport", "ServRprt"})
      if (!sb) sb = xml::child(msg, b);
    if (sb) {
      if (const auto* pat = xml::child(sb, "Patient")) body["patient"] = message_patient(pat);
      if (auto d = xml::v_at(sb, "IssueDate"); !d.empty()) body["issued"] = d;
      if (const auto* st = xml::child(sb, "ServType")) body["service_type"] = coded(st);
      if (const auto* st = xml::child(sb, "Status")) body["status"] = coded(st);
      if (const auto* md = xml::child(sb, "MsgDescr")) {
        json c = coded(md);
        if (c.empty()) c["text"] = xml::text(md);
        body["description"] = c;
      }
      if (auto id = xml::text_at(sb, "Id"); !id.empty()) body["request_id"] = id;
      if (auto id = xml::text_at(sb, "ServProvId"); !id.empty()) body["report_id"] = id;
      if (e.type == EventType::kLabResult) body["results"] = lab_results(sb);
      if (e.type == EventType::kLabRequisition) body["analyses"] = requested_analyses(sb);
      if (e.type == EventType::kReferral) {
        body["reasons"] = reasons(sb);
        if (const auto* rs = xml::descendant(sb, "ReqServ")) body["requested_service"] = xml::text(rs);
      }
      if (auto d = diagnoses(sb); !d.empty()) body["diagnoses"] = d;
      body["content"] = {{xml::local_name(sb), to_json_tree(sb)}};
      attachments_from(sb, e.attachments, out.warnings);
    }
  }
  if (!body.contains("patient")) body["patient"] = json::object();
  e.body = std::move(body);
  e.occurred_at = as_rfc3339(info.gen_date);
  e.original = make_inline_blob(std::string(bytes), "application/xml");
  assign_key(e, opts.key_secret);
  out.info = info;
  out.events.push_back(std::move(e));
  p->resetDocumentPool();
  return out;
}

std::vector<std::string> Decoder::validate(std::string_view bytes) {
  std::vector<std::string> out;
  if (!impl_->schemas) return {"no schemas loaded"};
  x::XercesDOMParser* p = impl_->parser(true);
  impl_->errors.resetErrors();
  x::MemBufInputSource src(reinterpret_cast<const XMLByte*>(bytes.data()), bytes.size(),
                           "document", false);
  try {
    p->parse(src);
  } catch (...) {
    out.emplace_back("the XML parser failed");
  }
  for (const auto& e : impl_->errors.errors)
    out.push_back(std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message);
  p->resetDocumentPool();
  return out;
}

}  // namespace budstikke::emelding
