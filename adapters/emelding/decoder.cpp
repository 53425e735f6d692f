#include <algorithm>
#include <deque>
#include <map>
#include <unordered_map>
#include <variant>

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/SAX2XMLReaderImpl.hpp>
#include <xercesc/sax/ErrorHandler.hpp>
#include <xercesc/sax/SAXParseException.hpp>
#include <xercesc/sax2/Attributes.hpp>
#include <xercesc/sax2/DefaultHandler.hpp>
#include <xercesc/sax2/SAX2XMLReader.hpp>
#include <xercesc/util/SecurityManager.hpp>
#include <xercesc/util/XMLEntityResolver.hpp>
#include <xercesc/util/XMLUni.hpp>

#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/fast_xml.hpp"
#include "adapters/emelding/fast_xsd.hpp"
#include "adapters/emelding/standards.hpp"
#include "adapters/emelding/tree.hpp"
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
json coded(const tree::Node* e) {
  json j = json::object();
  if (!e) return j;
  const std::string v = tree::attr(e, "V");
  const std::string s = tree::attr(e, "S");
  const std::string dn = tree::attr(e, "DN");
  const std::string ot = tree::attr(e, "OT");
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
//
// Written straight to JSON text, exactly as nlohmann::json would dump the same tree (keys
// in byte order, append_json_string's escapes), without building it: no node allocations.
// Key order falls out of the names: "#text" ('#') sorts before every "@attribute" ('@'),
// and those before every element name (a letter, '_' or a non-ASCII byte).
std::string_view trimmed(std::string_view t) {
  const auto b = t.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return t.substr(b, t.find_last_not_of(" \t\r\n") - b + 1);
}

void write_json_tree(std::string& out, const tree::Node* e) {
  const std::string_view text = trimmed(e->text);
  if (e->attrs.empty() && e->kids.empty()) {
    append_json_string(out, text);
    return;
  }
  out += '{';
  bool first = true;
  const auto key = [&](char lead, std::string_view name) {
    if (!first) out += ',';
    first = false;
    if (lead) {
      out += '"';
      out += lead;
      out.append(name.data(), name.size());  // XML names need no escaping
      out += '"';
    } else {
      append_json_string(out, name);
    }
    out += ':';
  };
  if (!text.empty()) {
    key('#', "text");
    append_json_string(out, text);
  }
  // Attributes by name; of two with the same local name (different namespaces) the last.
  if (!e->attrs.empty()) {
    std::vector<size_t> order(e->attrs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return e->attrs[a].first < e->attrs[b].first; });
    for (size_t i = 0; i < order.size(); ++i) {
      const auto& [name, value] = e->attrs[order[i]];
      if (i + 1 < order.size() && e->attrs[order[i + 1]].first == name) continue;
      key('@', name);
      append_json_string(out, value);
    }
  }
  // Children grouped by name (document order kept within a name); a repeated name is an
  // array.
  if (!e->kids.empty()) {
    std::vector<const tree::Node*> kids(e->kids.begin(), e->kids.end());
    std::stable_sort(kids.begin(), kids.end(),
                     [](const tree::Node* a, const tree::Node* b) { return a->name < b->name; });
    const auto value = [&](const tree::Node* k) {
      if (k->name == "Base64Container")
        out += "\"(attachment)\"";
      else
        write_json_tree(out, k);
    };
    for (size_t i = 0; i < kids.size();) {
      size_t j = i + 1;
      while (j < kids.size() && kids[j]->name == kids[i]->name) ++j;
      key(0, kids[i]->name);
      if (j - i == 1) {
        value(kids[i]);
      } else {
        out += '[';
        for (size_t m = i; m < j; ++m) {
          if (m > i) out += ',';
          value(kids[m]);
        }
        out += ']';
      }
      i = j;
    }
  }
  out += '}';
}

// {"<payload element>": <its tree>} as JSON text: the event's body.content.
std::string content_json(const tree::Node* payload) {
  std::string out;
  out.reserve(4096);
  out += '{';
  append_json_string(out, payload->name);
  out += ':';
  write_json_tree(out, payload);
  out += '}';
  return out;
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
void msghead_org(const tree::Node* e, Organisation& o) {
  o.name = tree::text_at(e, "OrganisationName");
  for (const auto* ident : tree::children(e, "Ident"))
    add_ident(o, tree::text_at(ident, "Id"), tree::v_at(ident, "TypeId"));
}

void msghead_person(const tree::Node* e, Person& p) {
  p.name = join({tree::text_at(e, "GivenName"), tree::text_at(e, "MiddleName"),
                 tree::text_at(e, "FamilyName")},
                " ");
  for (const auto* ident : tree::children(e, "Ident")) {
    const std::string id = tree::text_at(ident, "Id");
    const std::string type = tree::v_at(ident, "TypeId");
    if (type == "HER" && p.her_id.empty()) p.her_id = id;
    if (type == "HPR" && p.hpr_number.empty()) p.hpr_number = id;
  }
  p.role = tree::attr(tree::child(e, "RoleToPatient"), "DN");
}

Party msghead_party(const tree::Node* e) {
  Party p;
  const auto* org = tree::child(e, "Organisation");
  if (!org) return p;
  msghead_org(org, p.organisation);
  if (const auto* dept = tree::child(org, "Organisation")) {
    msghead_org(dept, p.department);
    if (const auto* hp = tree::child(dept, "HealthcareProfessional")) msghead_person(hp, p.person);
  }
  if (const auto* hp = tree::child(org, "HealthcareProfessional")) msghead_person(hp, p.person);
  return p;
}

// Message family and AppRec: <HCP><Inst><Name/><Id/><TypeId V/><Dept/><HCPerson/>...
void hcp_unit(const tree::Node* e, Organisation& o) {
  o.name = tree::text_at(e, "Name");
  add_ident(o, tree::text_at(e, "Id"), tree::v_at(e, "TypeId"));
  for (const auto* a : tree::children(e, "AdditionalId"))
    add_ident(o, tree::text_at(a, "Id"), tree::v_at(a, "Type"));
}

void hcp_person(const tree::Node* e, Person& p) {
  p.name = tree::text_at(e, "Name");
  const std::string id = tree::text_at(e, "Id");
  const std::string type = tree::v_at(e, "TypeId");
  if (type == "HER") p.her_id = id;
  if (type == "HPR") p.hpr_number = id;
  for (const auto* a : tree::children(e, "AdditionalId")) {
    const std::string t = tree::v_at(a, "Type");
    if (t == "HER" && p.her_id.empty()) p.her_id = tree::text_at(a, "Id");
    if (t == "HPR" && p.hpr_number.empty()) p.hpr_number = tree::text_at(a, "Id");
  }
  p.role = tree::attr(tree::child(e, "Type"), "DN");
}

Party hcp_party(const tree::Node* holder) {
  Party p;
  const auto* hcp = tree::child(holder, "HCP");
  if (!hcp) return p;
  if (const auto* inst = tree::child(hcp, "Inst")) {
    hcp_unit(inst, p.organisation);
    if (const auto* dept = tree::child(inst, "Dept")) hcp_unit(dept, p.department);
    if (const auto* per = tree::child(inst, "HCPerson")) hcp_person(per, p.person);
  }
  if (const auto* prof = tree::child(hcp, "HCProf")) hcp_person(prof, p.person);
  return p;
}

// ---- patient

json msghead_patient(const tree::Node* e) {
  json p = json::object();
  if (!e) return p;
  json name = json::object();
  if (auto v = tree::text_at(e, "FamilyName"); !v.empty()) name["family"] = v;
  if (auto v = tree::text_at(e, "MiddleName"); !v.empty()) name["middle"] = v;
  if (auto v = tree::text_at(e, "GivenName"); !v.empty()) name["given"] = v;
  if (!name.empty()) p["name"] = name;
  if (auto v = tree::text_at(e, "DateOfBirth"); !v.empty()) p["birth_date"] = v;
  if (auto v = tree::v_at(e, "Sex"); !v.empty()) p["sex"] = v;
  json ids = json::array();
  for (const auto* ident : tree::children(e, "Ident")) {
    const std::string id = tree::text_at(ident, "Id");
    if (!id.empty()) ids.push_back({{"value", id}, {"type", tree::v_at(ident, "TypeId")}});
  }
  if (!ids.empty()) p["ids"] = ids;
  return p;
}

json message_patient(const tree::Node* e) {
  json p = json::object();
  if (!e) return p;
  if (auto v = tree::text_at(e, "Name"); !v.empty()) {
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
  if (auto v = tree::v_at(e, "DateOfBirth"); !v.empty()) p["birth_date"] = v;
  if (auto v = tree::v_at(e, "Sex"); !v.empty()) p["sex"] = v;
  json ids = json::array();
  if (auto id = tree::text_at(e, "OffId"); !id.empty()) {
    std::string type = tree::v_at(e, "TypeOffId");
    if (type.empty()) type = "FNR";
    ids.push_back({{"value", id}, {"type", type}});
  }
  for (const char* local : {"IdByServProvider", "IdByRequester"})
    if (auto id = tree::text_at(e, local); !id.empty())
      ids.push_back({{"value", id}, {"type", std::string("local:") + local}});
  if (!ids.empty()) p["ids"] = ids;
  return p;
}

// ---- clinical content common to the standards

using tree::collect;

json diagnoses(const tree::Node* root) {
  json out = json::array();
  std::vector<const tree::Node*> found;
  collect(root, "Diagnosis", found);
  for (const auto* d : found) {
    const tree::Node* cpt = tree::child(d, "Concept");
    json c = coded(cpt ? cpt : d);
    if (c.contains("code")) out.push_back(std::move(c));
  }
  return out;
}

json lab_results(const tree::Node* root) {
  json out = json::array();
  std::vector<const tree::Node*> items;
  collect(root, "ResultItem", items);
  for (const auto* it : items) {
    json r = json::object();
    if (const auto* inv = tree::path(it, "Investigation/Id")) r["analysis"] = coded(inv);
    if (const auto* num = tree::path(it, "NumResult/NumResultValue")) {
      r["value"] = tree::attr(num, "V");
      if (auto u = tree::attr(num, "U"); !u.empty()) r["unit"] = u;
    } else if (auto t = tree::text_at(it, "TextResult/Result"); !t.empty()) {
      r["value"] = t;
    }
    if (auto ref = tree::text_at(it, "RefInterval/Descr"); !ref.empty()) r["reference_range"] = ref;
    if (const auto* flag = tree::child(it, "DevResultInd")) r["flag"] = coded(flag);
    if (const auto* st = tree::child(it, "StatusInvestigation")) r["status"] = coded(st);
    if (const auto* st = tree::child(it, "ServType")) r["change"] = coded(st);
    if (auto c = tree::text_at(it, "Comment"); !c.empty()) r["comment"] = c;
    if (!r.empty()) out.push_back(std::move(r));
  }
  return out;
}

// The analyses a requisition asks for: Rekvisisjon has them as ReqInvestigation/Investigation
// beside the sample (AnalysedSubject); older layouts nest them in the sample.
json requested_analyses(const tree::Node* root) {
  json out = json::array();
  std::vector<const tree::Node*> items;
  collect(root, "ReqInvestigation", items);
  if (items.empty()) collect(root, "AnalysedSubject", items);
  for (const auto* s : items) {
    std::string specimen;
    if (const auto* sub = tree::child(s, "AnalysedSubject")) {
      if (const auto* tc = tree::child(sub, "TypeCoded")) specimen = tree::attr(tc, "DN");
      if (specimen.empty()) specimen = tree::text_at(sub, "Type");
    }
    std::vector<const tree::Node*> ids;
    collect(s, "Investigation", ids);
    for (const auto* inv : ids)
      if (const auto* id = tree::child(inv, "Id")) {
        json a = coded(id);
        if (!specimen.empty()) a["specimen"] = specimen;
        out.push_back(std::move(a));
      }
  }
  return out;
}

json reasons(const tree::Node* root) {
  json out = json::array();
  std::vector<const tree::Node*> items;
  collect(root, "ReasonAsText", items);
  for (const auto* r : items) {
    json j = json::object();
    if (auto h = tree::text_at(r, "Heading"); !h.empty()) j["heading"] = h;
    if (const auto* hd = tree::child(r, "Heading"); hd && !tree::attr(hd, "DN").empty())
      j["heading"] = tree::attr(hd, "DN");
    if (auto t = tree::text_at(r, "TextResultValue"); !t.empty()) j["text"] = t;
    if (!j.empty()) out.push_back(std::move(j));
  }
  return out;
}

json dialog_notes(const tree::Node* payload) {
  json out = json::array();
  for (const char* kind : {"Notat", "Foresporsel"}) {
    for (const auto* n : tree::children(payload, kind)) {
      json j = {{"kind", kind}};
      if (const auto* tema = tree::child(n, "TemaKodet")) j["topic"] = coded(tema);
      if (auto t = tree::text_at(n, "Tema"); !t.empty()) j["topic_text"] = t;
      if (auto t = tree::text_at(n, "TekstNotatInnhold"); !t.empty()) j["text"] = t;
      if (auto t = tree::text_at(n, "Sporsmal"); !t.empty()) j["question"] = t;
      if (const auto* ty = tree::child(n, "TypeForesp")) j["request_type"] = coded(ty);
      out.push_back(std::move(j));
    }
  }
  return out;
}

// RefDoc elements with embedded base64 documents.
void attachments_from(const tree::Node* root, std::vector<Blob>& out,
                      std::vector<std::string>& warnings) {
  std::vector<const tree::Node*> refdocs;
  collect(root, "RefDoc", refdocs);
  for (const auto* rd : refdocs) {
    const auto* b64 = tree::descendant(rd, "Base64Container");
    if (!b64) continue;
    auto data = base64_decode(tree::text(b64));
    if (!data) {
      warnings.push_back("RefDoc attachment is not valid base64; left out");
      continue;
    }
    Blob b = make_inline_blob(std::move(*data), tree::text_at(rd, "MimeType"));
    b.description = tree::text_at(rd, "Description");
    if (b.mime.empty()) b.mime = "application/octet-stream";
    b.id = "att-" + std::to_string(out.size() + 1);
    out.push_back(std::move(b));
  }
}

std::string trim_copy(const std::string& s) {
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

// Builds a tree::Tree from SAX2 events.
class TreeBuilder final : public x::DefaultHandler {
 public:
  explicit TreeBuilder(tree::Tree& t) : t_(t) {}
  void reset_tree() {
    t_.clear();
    stack_.clear();
  }
  void startElement(const XMLCh* uri, const XMLCh* localname, const XMLCh*,
                    const x::Attributes& attrs) override {
    tree::Node* n = t_.make();
    n->name = intern(localname);
    n->ns = intern(uri);
    const XMLSize_t count = attrs.getLength();
    for (XMLSize_t i = 0; i < count; ++i) {
      const XMLCh* qn = attrs.getQName(i);
      // xmlns declarations and xsi: attributes are not content.
      if (qn[0] == 'x' && qn[1] == 'm' && qn[2] == 'l' && qn[3] == 'n' && qn[4] == 's') continue;
      if (qn[0] == 'x' && qn[1] == 's' && qn[2] == 'i' && qn[3] == ':') continue;
      n->attrs.emplace_back(intern(attrs.getLocalName(i)), std::string());
      append_utf8(n->attrs.back().second, attrs.getValue(i),
                  x::XMLString::stringLen(attrs.getValue(i)));
    }
    if (stack_.empty()) {
      if (!t_.root) t_.root = n;
    } else {
      n->parent = stack_.back();
      stack_.back()->kids.push_back(n);
    }
    stack_.push_back(n);
  }
  void endElement(const XMLCh*, const XMLCh*, const XMLCh*) override {
    if (!stack_.empty()) stack_.pop_back();
  }
  void characters(const XMLCh* chars, const XMLSize_t length) override {
    if (!stack_.empty()) append_utf8(stack_.back()->text, chars, length);
  }
  void ignorableWhitespace(const XMLCh*, const XMLSize_t) override {}

  // ErrorHandler
  void warning(const x::SAXParseException&) override {}
  void error(const x::SAXParseException& e) override { add(e, false); }
  void fatalError(const x::SAXParseException& e) override {
    add(e, true);
    // Stop right here: letting Xerces carry on after a fatal error leaks its scanner state.
    throw e;
  }
  void resetErrors() override { errors.clear(); }
  std::vector<ParseError> errors;

 private:
  void add(const x::SAXParseException& e, bool fatal) {
    if (errors.size() >= 20) return;
    errors.push_back({static_cast<int>(e.getLineNumber()), static_cast<int>(e.getColumnNumber()),
                      fatal, xml::utf8(e.getMessage())});
  }
  // UTF-16 -> UTF-8, appended, with a fast path for ASCII.
  static void append_utf8(std::string& out, const XMLCh* s, size_t len) {
    const size_t start = out.size();
    out.resize(start + len);
    char* p = out.data() + start;
    size_t i = 0;
    for (; i < len; ++i) {
      if (s[i] >= 0x80) break;
      p[i] = static_cast<char>(s[i]);
    }
    if (i == len) return;
    out.resize(start + i);
    const std::u16string rest(reinterpret_cast<const char16_t*>(s + i), len - i);
    out += xml::utf8(reinterpret_cast<const XMLCh*>(rest.c_str()));
  }

  // Element, attribute and namespace names repeat endlessly: convert each once.
  std::string_view intern(const XMLCh* s) {
    if (!s || !*s) return {};
    const size_t len = x::XMLString::stringLen(s);
    const std::u16string_view key(reinterpret_cast<const char16_t*>(s), len);
    auto it = names_.find(key);
    if (it != names_.end()) return it->second;
    keys_.emplace_back(key);
    std::string utf;
    append_utf8(utf, s, len);
    values_.push_back(std::move(utf));
    names_.emplace(keys_.back(), values_.back());
    return values_.back();
  }

  tree::Tree& t_;
  std::vector<tree::Node*> stack_;
  std::deque<std::u16string> keys_;  // stable storage for the interned names
  std::deque<std::string> values_;
  std::unordered_map<std::u16string_view, std::string_view> names_;
};

struct Decoder::Impl {
  std::shared_ptr<const SchemaSet> schemas;
  tree::Tree tree;
  TreeBuilder builder{tree};
  std::unique_ptr<x::SAX2XMLReaderImpl> validating;
  std::unique_ptr<x::SAX2XMLReaderImpl> plain;
  NoExternal no_external;
  x::SecurityManager security;
  // The fast path (fast_xml.hpp, fast_xsd.hpp); Xerces decides whatever it declines.
  bool fast = true;
  fastxml::Names names;
  std::unique_ptr<fastxsd::Validator> validator;
  PathStats stats;

  // Parses into `tree` through the fast path if it can; true when it did (the tree is then
  // exactly what Xerces would have built, and the document is well-formed and, if asked,
  // valid). False: nothing is known yet, parse() with Xerces.
  bool parse_fast(std::string_view bytes, bool validate) {
    if (!fast) return false;
    if (validate && !validator) {
      if (!schemas || !schemas->compiled()) return false;
      validator = std::make_unique<fastxsd::Validator>(schemas->compiled());
    }
    // Bounded growth: a stream of hostile messages with fresh names each time. The interned
    // names go between documents, and with them the validator's ids keyed by them.
    if (names.size() > 50000) {
      names.clear();
      if (validator) validator->forget_names();
    }
    const fastxml::Outcome o = fastxml::parse(bytes, tree, names);
    if (!o.ok) {
      ++stats.parse_declined;
      stats.last_declined = o.declined;
      return false;
    }
    if (validate) {
      const fastxsd::Outcome v = validator->validate(tree);
      if (!v.valid) {
        ++stats.validate_declined;
        stats.last_declined = v.declined;
        return false;
      }
    }
    ++stats.fast;
    builder.resetErrors();
    return true;
  }

  x::SAX2XMLReaderImpl* reader(bool validate) {
    auto& slot = validate ? validating : plain;
    if (!slot) {
      slot = std::make_unique<x::SAX2XMLReaderImpl>(x::XMLPlatformUtils::fgMemoryManager,
                                                    validate ? schemas->pool() : nullptr);
      auto& r = *slot;
      r.setContentHandler(&builder);
      r.setErrorHandler(&builder);
      r.setFeature(x::XMLUni::fgSAX2CoreNameSpaces, true);
      r.setFeature(x::XMLUni::fgSAX2CoreNameSpacePrefixes, false);
      r.setFeature(x::XMLUni::fgXercesLoadExternalDTD, false);
      r.setFeature(x::XMLUni::fgXercesDisableDefaultEntityResolution, true);
      r.setProperty(x::XMLUni::fgXercesSecurityManager, &security);
      if (validate) {
        // The schema-only scanner: no DTD machinery, faster for schema validation.
        r.setProperty(x::XMLUni::fgXercesScannerName,
                      const_cast<XMLCh*>(x::XMLUni::fgSGXMLScanner));
        r.setFeature(x::XMLUni::fgXercesIdentityConstraintChecking, false);
        r.setFeature(x::XMLUni::fgSAX2CoreValidation, true);
        r.setFeature(x::XMLUni::fgXercesDynamic, false);
        r.setFeature(x::XMLUni::fgXercesSchema, true);
        r.setFeature(x::XMLUni::fgXercesSchemaFullChecking, false);
        r.setFeature(x::XMLUni::fgXercesUseCachedGrammarInParse, true);
        r.setFeature(x::XMLUni::fgXercesLoadSchema, false);  // only the pool; never xsi hints
        r.setFeature(x::XMLUni::fgXercesHandleMultipleImports, true);
        r.setFeature(x::XMLUni::fgXercesValidationErrorAsFatal, false);
        r.setXMLEntityResolver(schemas->resolver());
      } else {
        r.setFeature(x::XMLUni::fgSAX2CoreValidation, false);
        r.setFeature(x::XMLUni::fgXercesSchema, false);
        r.setXMLEntityResolver(&no_external);
      }
    }
    return slot.get();
  }

  // Parses into `tree`; errors land in builder.errors.
  void parse(std::string_view bytes, bool validate, const std::string& sys_id) {
    builder.reset_tree();
    builder.resetErrors();
    x::SAX2XMLReaderImpl* r = reader(validate);
    x::MemBufInputSource src(reinterpret_cast<const XMLByte*>(bytes.data()), bytes.size(),
                             sys_id.c_str(), false);
    try {
      r->parse(src);
    } catch (const x::XMLException& e) {
      builder.errors.push_back({0, 0, true, xml::utf8(e.getMessage())});
    } catch (const x::SAXParseException&) {
      // already recorded by fatalError()
    } catch (const x::SAXException& e) {
      builder.errors.push_back({0, 0, true, xml::utf8(e.getMessage())});
    } catch (...) {
      builder.errors.push_back({0, 0, true, "the XML parser failed"});
    }
  }
};

Decoder::Decoder(std::shared_ptr<const SchemaSet> schemas) : impl_(std::make_unique<Impl>()) {
  xml::ensure_initialized();
  impl_->schemas = std::move(schemas);
  // Predefined entities (&lt; &amp; ...) count too; a DOCTYPE is refused outright before
  // parsing, so there are no user-defined entities to expand.
  impl_->security.setEntityExpansionLimit(10000000);
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

// Position of a <!DOCTYPE in the prolog (before the root element), or npos.
size_t doctype_position(std::string_view b) {
  size_t i = 0;
  while ((i = b.find('<', i)) != std::string_view::npos) {
    if (b.compare(i, 9, "<!DOCTYPE") == 0) return i;
    if (i + 1 < b.size() && b[i + 1] != '?' && b[i + 1] != '!') return std::string_view::npos;
    if (b.compare(i, 4, "<!--") == 0) {
      const size_t end = b.find("-->", i + 4);
      if (end == std::string_view::npos) return std::string_view::npos;
      i = end + 3;
    } else {
      ++i;
    }
  }
  return std::string_view::npos;
}

std::string where(std::string_view name, int line, int col) {
  std::string s(name.empty() ? "message" : name);
  if (line > 0) s += ":" + std::to_string(line) + ":" + std::to_string(col);
  return s;
}

// Reads what a MsgHead/Message/AppRec says about itself, as far as it can.
void read_info(const tree::Node* root, MessageInfo& info) {
  const std::string root_name(root->name);
  if (root_name == "MsgHead") {
    info.family = "msghead";
    const auto* mi = tree::child(root, "MsgInfo");
    info.msg_type = tree::v_at(mi, "Type");
    info.msg_type_dn = tree::attr(tree::child(mi, "Type"), "DN");
    info.msg_id = tree::text_at(mi, "MsgId");
    info.gen_date = tree::text_at(mi, "GenDate");
    if (const auto* s = tree::child(mi, "Sender")) info.sender = msghead_party(s);
    if (const auto* r = tree::child(mi, "Receiver")) info.receiver = msghead_party(r);
  } else if (root_name == "AppRec") {
    info.family = "apprec";
    info.msg_type = "APPREC";
    info.msg_id = tree::text_at(root, "Id");
    info.gen_date = tree::text_at(root, "GenDate");
    if (const auto* s = tree::child(root, "Sender")) info.sender = hcp_party(s);
    if (const auto* r = tree::child(root, "Receiver")) info.receiver = hcp_party(r);
  } else if (root_name == "Message") {
    info.family = "message";
    info.msg_type = tree::v_at(root, "Type");
    info.msg_type_dn = tree::attr(tree::child(root, "Type"), "DN");
    info.msg_id = tree::text_at(root, "MsgId");
    info.gen_date = tree::v_at(root, "GenDate");
    if (info.gen_date.empty()) info.gen_date = tree::text_at(root, "GenDate");
    const tree::Node* body = nullptr;
    for (const char* b : {"ServReq", "ServReport", "ServRprt"})
      if (!body) body = tree::child(root, b);
    if (body) {
      const bool report = body->name != "ServReq";
      const auto* provider = tree::child(body, "ServProvider");
      const auto* requester = tree::child(body, "Requester");
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
  const std::string sys_id = name.empty() ? std::string("message") : std::string(name);
  if (bytes.empty()) {
    rej.code = kNotXml;
    rej.reason = where(name, 0, 0) + ": empty message";
    return rej;
  }
  // e-meldinger never carry a DOCTYPE; refusing it closes the door on entity expansion
  // ("billion laughs") and external entities.
  if (const size_t doctype = doctype_position(bytes); doctype != std::string_view::npos) {
    int line = 1;
    for (size_t i = 0; i < doctype; ++i) line += bytes[i] == '\n' ? 1 : 0;
    rej.code = kNotXml;
    rej.line = line;
    rej.column = 1;
    rej.reason = where(name, line, 1) + ": a DOCTYPE declaration is not allowed in e-meldinger";
    return rej;
  }
  if (!impl_->parse_fast(bytes, validate)) {
    ++impl_->stats.xerces;
    impl_->parse(bytes, validate, sys_id);
  }
  const auto& errs = impl_->builder.errors;
  const auto fatal = std::find_if(errs.begin(), errs.end(), [](const auto& e) { return e.fatal; });
  const tree::Node* root = impl_->tree.root;
  if (fatal != errs.end() || !root) {
    rej.code = kNotXml;
    if (fatal != errs.end()) {
      rej.line = fatal->line;
      rej.column = fatal->column;
      rej.reason =
          where(name, fatal->line, fatal->column) + ": not well-formed XML: " + fatal->message;
    } else {
      rej.reason = where(name, 0, 0) + ": no root element";
    }
    if (root) read_info(root, rej.info);
    return rej;
  }

  // Unwrap NAV's EI_fellesformat: the message is the MsgHead or AppRec inside.
  const tree::Node* msg = root;
  if (root->name == "EI_fellesformat") {
    msg = tree::child(root, "MsgHead");
    if (!msg) msg = tree::child(root, "AppRec");
    if (!msg) {
      rej.code = kUnsupported;
      rej.reason = where(name, 0, 0) + ": EI_fellesformat without a MsgHead or AppRec";
      return rej;
    }
  }
  MessageInfo& info = rej.info;
  read_info(msg, info);
  info.namespace_uri = msg->ns;
  const std::string msg_root(msg->name);
  const StandardInfo* std_info = standard_by_namespace(info.namespace_uri);
  const tree::Node* payload = nullptr;
  if (msg_root == "MsgHead" && std_info) {
    // The business standard is the first document's payload.
    payload = tree::path(msg, "Document/RefDoc/Content");
    const tree::Node* first = nullptr;
    if (payload)
      if (!payload->kids.empty()) first = payload->kids.front();
    payload = first;
    const StandardInfo* ps = payload ? standard_by_namespace(payload->ns) : nullptr;
    if (ps) std_info = ps;
  }
  const bool supported =
      std_info && (msg_root == "MsgHead" || msg_root == "AppRec" || msg_root == "Message");
  if (!supported) {
    rej.code = kUnsupported;
    rej.reason = where(name, 0, 0) + ": unsupported message format: root element <" + msg_root +
                 "> in namespace '" + info.namespace_uri + "'";
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
    return rej;
  }
  if (trim_copy(info.msg_id).empty()) {
    rej.code = kBadMsgId;
    rej.reason = where(name, 0, 0) + ": the message has no message id (MsgId)";
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
    const auto* mi = tree::child(msg, "MsgInfo");
    e.type = type_for_msg_type(info.msg_type, std_info->type);
    e.conversation.conversation_ref = tree::text_at(mi, "ConversationRef/RefToConversation");
    e.conversation.parent_ref = tree::text_at(mi, "ConversationRef/RefToParent");
    if (const auto* pat = tree::child(mi, "Patient")) body["patient"] = msghead_patient(pat);
    const auto* refdoc = tree::path(msg, "Document/RefDoc");
    if (auto d = tree::v_at(refdoc, "IssueDate"); !d.empty()) body["issued"] = d;
    if (payload) {
      e.body_content_json = content_json(payload);
      if (e.type == EventType::kDialog) body["notes"] = dialog_notes(payload);
      if (e.type == EventType::kReferral) {
        body["reasons"] = reasons(payload);
        if (const auto* rs = tree::descendant(payload, "ReqServ"))
          body["requested_service"] = tree::text(rs);
      }
      if (auto d = diagnoses(payload); !d.empty()) body["diagnoses"] = d;
    }
    // Documents after the first are attachments.
    auto docs = tree::children(msg, "Document");
    for (size_t i = 1; i < docs.size(); ++i) attachments_from(docs[i], e.attachments, out.warnings);
    if (docs.size() > 0) attachments_from(docs[0], e.attachments, out.warnings);
  } else if (msg_root == "AppRec") {
    e.type = EventType::kAppRec;
    const auto* orig = tree::child(msg, "OriginalMsgId");
    e.conversation.in_reply_to = tree::text_at(orig, "Id");
    body["status"] = coded(tree::child(msg, "Status"));
    json errors = json::array();
    for (const auto* er : tree::children(msg, "Error")) errors.push_back(coded(er));
    if (!errors.empty()) body["errors"] = errors;
    body["original"] = {{"message_type", coded(tree::child(orig, "MsgType"))},
                        {"issued", tree::text_at(orig, "IssueDate")},
                        {"id", e.conversation.in_reply_to}};
  } else {  // Message
    const tree::Node* sb = nullptr;
    for (const char* b : {"ServReq", "ServReport", "ServRprt"})
      if (!sb) sb = tree::child(msg, b);
    if (sb) {
      if (const auto* pat = tree::child(sb, "Patient")) body["patient"] = message_patient(pat);
      if (auto d = tree::v_at(sb, "IssueDate"); !d.empty()) body["issued"] = d;
      if (const auto* st = tree::child(sb, "ServType")) body["service_type"] = coded(st);
      if (const auto* st = tree::child(sb, "Status")) body["status"] = coded(st);
      if (const auto* md = tree::child(sb, "MsgDescr")) {
        json c = coded(md);
        if (c.empty()) c["text"] = tree::text(md);
        body["description"] = c;
      }
      if (auto id = tree::text_at(sb, "Id"); !id.empty()) body["request_id"] = id;
      if (auto id = tree::text_at(sb, "ServProvId"); !id.empty()) body["report_id"] = id;
      if (e.type == EventType::kLabResult) body["results"] = lab_results(sb);
      if (e.type == EventType::kLabRequisition) body["analyses"] = requested_analyses(sb);
      if (e.type == EventType::kReferral) {
        body["reasons"] = reasons(sb);
        if (const auto* rs = tree::descendant(sb, "ReqServ"))
          body["requested_service"] = tree::text(rs);
      }
      if (auto d = diagnoses(sb); !d.empty()) body["diagnoses"] = d;
      e.body_content_json = content_json(sb);
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
  return out;
}

void Decoder::set_fast_path(bool on) {
  impl_->fast = on;
}

const Decoder::PathStats& Decoder::path_stats() const {
  return impl_->stats;
}

const tree::Tree& Decoder::last_tree() const {
  return impl_->tree;
}

std::vector<std::string> Decoder::validate(std::string_view bytes) {
  std::vector<std::string> out;
  if (!impl_->schemas) return {"no schemas loaded"};
  if (impl_->parse_fast(bytes, true)) return out;
  impl_->parse(bytes, true, "document");
  for (const auto& e : impl_->builder.errors)
    out.push_back(std::to_string(e.line) + ":" + std::to_string(e.column) + ": " + e.message);
  return out;
}

}  // namespace budstikke::emelding
