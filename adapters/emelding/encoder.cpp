#include <chrono>
#include <ctime>

#include <xercesc/dom/DOM.hpp>
#include <xercesc/framework/MemBufFormatTarget.hpp>
#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/framework/Wrapper4InputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>

#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/standards.hpp"
#include "adapters/emelding/xml.hpp"
#include "engine/core/crypto.hpp"

namespace budstikke::emelding {

namespace x = XERCES_CPP_NAMESPACE;

namespace {

void remove_children(x::DOMElement* e) {
  while (x::DOMNode* c = e->getFirstChild()) e->removeChild(c)->release();
}

x::DOMElement* add(x::DOMDocument* doc, x::DOMElement* parent, const std::string& ns,
                   const std::string& prefix, const char* name, const std::string& text = {}) {
  const auto qn = xml::utf16(prefix.empty() ? std::string(name) : prefix + ":" + name);
  const auto nsu = xml::utf16(ns);
  x::DOMElement* e = doc->createElementNS(ns.empty() ? nullptr : xml::xc(nsu), xml::xc(qn));
  if (!text.empty()) {
    const auto t = xml::utf16(text);
    e->appendChild(doc->createTextNode(xml::xc(t)));
  }
  parent->appendChild(e);
  return e;
}

void set_attr(x::DOMElement* e, const char* name, const std::string& v) {
  const auto n = xml::utf16(name);
  const auto val = xml::utf16(v);
  e->setAttribute(xml::xc(n), xml::xc(val));
}

void set_text(x::DOMDocument* doc, x::DOMElement* e, const std::string& text) {
  remove_children(e);
  const auto t = xml::utf16(text);
  e->appendChild(doc->createTextNode(xml::xc(t)));
}

std::string prefix_of(const x::DOMElement* e) {
  return e && e->getPrefix() ? xml::utf8(e->getPrefix()) : std::string();
}

// MsgHead: <Organisation><OrganisationName/><Ident><Id/><TypeId/></Ident>[<Organisation>]</..>
void msghead_receiver(x::DOMDocument* doc, x::DOMElement* receiver, const Party& p) {
  remove_children(receiver);
  const std::string ns = xml::namespace_uri(receiver);
  const std::string pre = prefix_of(receiver);
  auto org_block = [&](x::DOMElement* parent, const Organisation& o) {
    x::DOMElement* org = add(doc, parent, ns, pre, "Organisation");
    add(doc, org, ns, pre, "OrganisationName", o.name);
    auto ident = [&](const std::string& id, const char* v, const char* dn, const char* s) {
      x::DOMElement* i = add(doc, org, ns, pre, "Ident");
      add(doc, i, ns, pre, "Id", id);
      x::DOMElement* t = add(doc, i, ns, pre, "TypeId");
      set_attr(t, "V", v);
      set_attr(t, "DN", dn);
      set_attr(t, "S", s);
    };
    if (!o.her_id.empty()) ident(o.her_id, "HER", "HER-id", "2.16.578.1.12.4.1.1.9051");
    if (!o.org_number.empty())
      ident(o.org_number, "ENH", "Organisasjonsnummeret i Enhetsregisteret",
            "2.16.578.1.12.4.1.1.9051");
    return org;
  };
  x::DOMElement* org = org_block(receiver, p.organisation);
  if (!p.department.empty()) org_block(org, p.department);
}

// Message family: <HCP><Inst><Name/><Id/><TypeId/>[<Dept>...]</Inst></HCP>
void message_receiver(x::DOMDocument* doc, x::DOMElement* holder, const Party& p) {
  x::DOMElement* old = xml::child(holder, "HCP");
  const std::string ns = xml::namespace_uri(holder);
  const std::string pre = prefix_of(holder);
  x::DOMElement* hcp =
      doc->createElementNS(ns.empty() ? nullptr : xml::xc(xml::utf16(ns)),
                           xml::xc(xml::utf16(pre.empty() ? "HCP" : pre + ":HCP")));
  if (old) {
    holder->replaceChild(hcp, old)->release();
  } else {
    holder->appendChild(hcp);
  }
  x::DOMElement* inst = add(doc, hcp, ns, pre, "Inst");
  add(doc, inst, ns, pre, "Name", p.organisation.name);
  if (!p.organisation.her_id.empty()) {
    add(doc, inst, ns, pre, "Id", p.organisation.her_id);
    x::DOMElement* t = add(doc, inst, ns, pre, "TypeId");
    set_attr(t, "V", "HER");
    set_attr(t, "DN", "HER-id");
  }
  if (!p.department.empty()) {
    x::DOMElement* d = add(doc, inst, ns, pre, "Dept");
    add(doc, d, ns, pre, "Name", p.department.name);
    if (!p.department.her_id.empty()) {
      add(doc, d, ns, pre, "Id", p.department.her_id);
      x::DOMElement* t = add(doc, d, ns, pre, "TypeId");
      set_attr(t, "V", "HER");
      set_attr(t, "DN", "HER-id");
    }
  }
}

std::string serialize(x::DOMDocument* doc) {
  static const XMLCh kLs[] = {'L', 'S', 0};
  x::DOMImplementation* impl = x::DOMImplementationRegistry::getDOMImplementation(kLs);
  x::DOMLSSerializer* ser = impl->createLSSerializer();
  x::DOMLSOutput* out = impl->createLSOutput();
  x::MemBufFormatTarget target;
  out->setByteStream(&target);
  static const XMLCh kUtf8[] = {'U', 'T', 'F', '-', '8', 0};
  out->setEncoding(kUtf8);
  ser->write(doc, out);
  std::string s(reinterpret_cast<const char*>(target.getRawBuffer()), target.getLen());
  out->release();
  ser->release();
  return s;
}

}  // namespace

Result<std::string> encode_original(const Event& e) {
  if (!e.original || !e.original->data)
    return Error::permanent(ErrorDomain::kCodec,
                            "event " + e.event_id + " carries no inline original message");
  if (sha256_hex(*e.original->data) != e.original->sha256)
    return Error::permanent(ErrorDomain::kCodec,
                            "event " + e.event_id + ": original bytes do not match their sha256");
  return *e.original->data;
}

Result<std::string> encode_readdressed(const Event& e, const Readdress& r) {
  auto orig = encode_original(e);
  if (!orig) return orig.error();
  if (r.receiver.organisation.name.empty() || r.receiver.organisation.her_id.empty())
    return Error::permanent(ErrorDomain::kCodec,
                            "readdressing needs the new receiver's name and HER-id");
  xml::ensure_initialized();
  x::XercesDOMParser parser;
  parser.setDoNamespaces(true);
  parser.setValidationScheme(x::XercesDOMParser::Val_Never);
  parser.setLoadExternalDTD(false);
  parser.setDisableDefaultEntityResolution(true);
  x::MemBufInputSource src(reinterpret_cast<const XMLByte*>(orig->data()), orig->size(), "original",
                           false);
  try {
    parser.parse(src);
  } catch (...) {
    return Error::permanent(ErrorDomain::kCodec, "original message does not parse");
  }
  x::DOMDocument* doc = parser.getDocument();
  x::DOMElement* root = doc ? doc->getDocumentElement() : nullptr;
  if (!root) return Error::permanent(ErrorDomain::kCodec, "original message has no root element");
  x::DOMElement* msg = root;
  if (xml::local_name(root) == "EI_fellesformat") msg = xml::child(root, "MsgHead");
  if (!msg) return Error::permanent(ErrorDomain::kCodec, "no MsgHead inside EI_fellesformat");
  const std::string id = r.new_msg_id.empty() ? uuid_v4() : r.new_msg_id;
  const std::string gen = r.gen_date.empty() ? kith_datetime_now() : r.gen_date;
  const std::string name = xml::local_name(msg);
  if (name == "MsgHead") {
    x::DOMElement* mi = xml::child(msg, "MsgInfo");
    x::DOMElement* msgid = xml::child(mi, "MsgId");
    x::DOMElement* gendate = xml::child(mi, "GenDate");
    x::DOMElement* receiver = xml::child(mi, "Receiver");
    if (!msgid || !gendate || !receiver)
      return Error::permanent(ErrorDomain::kCodec, "MsgHead lacks MsgId, GenDate or Receiver");
    set_text(doc, msgid, id);
    set_text(doc, gendate, gen);
    msghead_receiver(doc, receiver, r.receiver);
  } else if (name == "Message") {
    x::DOMElement* msgid = xml::child(msg, "MsgId");
    x::DOMElement* gendate = xml::child(msg, "GenDate");
    x::DOMElement* body = nullptr;
    for (const char* b : {"ServReq", "ServReport", "ServRprt"})
      if (!body) body = xml::child(msg, b);
    if (!msgid || !gendate || !body)
      return Error::permanent(ErrorDomain::kCodec, "Message lacks MsgId, GenDate or its body");
    set_text(doc, msgid, id);
    set_attr(gendate, "V", gen);
    const bool report = xml::local_name(body) != "ServReq";
    x::DOMElement* holder = xml::child(body, report ? "Requester" : "ServProvider");
    if (!holder)
      return Error::permanent(ErrorDomain::kCodec, std::string("Message has no ") +
                                                       (report ? "Requester" : "ServProvider"));
    message_receiver(doc, holder, r.receiver);
  } else {
    return Error::permanent(ErrorDomain::kCodec, "cannot readdress a <" + name + ">");
  }
  return serialize(doc);
}

}  // namespace budstikke::emelding
