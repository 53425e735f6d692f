#include "adapters/emelding/xml.hpp"

#include "adapters/emelding/utf.hpp"

#include <mutex>

#include <xercesc/util/PlatformUtils.hpp>
#include <xercesc/util/TransService.hpp>
#include <xercesc/util/XMLNetAccessor.hpp>

namespace budstikke::emelding::xml {

void ensure_initialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    x::XMLPlatformUtils::Initialize();
    // Never fetch anything over the network: without a net accessor every URL fails.
    delete x::XMLPlatformUtils::fgNetAccessor;
    x::XMLPlatformUtils::fgNetAccessor = nullptr;
  });
}

std::string utf8(const XMLCh* s) {
  std::string out;
  if (!s) return out;
  // Manual UTF-16 -> UTF-8: faster than the transcoder and has no allocation per call.
  for (const XMLCh* p = s; *p; ++p) {
    uint32_t c = *p;
    if (c >= 0xD800 && c <= 0xDBFF && p[1] >= 0xDC00 && p[1] <= 0xDFFF) {
      c = 0x10000 + ((c - 0xD800) << 10) + (static_cast<uint32_t>(p[1]) - 0xDC00);
      ++p;
    }
    utf::append_utf8(out, c);
  }
  return out;
}

std::u16string utf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  utf::append_utf16(out, s);
  return out;
}

namespace {

bool local_is(const x::DOMNode* n, std::string_view name) {
  const XMLCh* ln = n->getLocalName();
  if (!ln) ln = n->getNodeName();
  size_t i = 0;
  for (; ln[i] && i < name.size(); ++i)
    if (ln[i] != static_cast<XMLCh>(static_cast<unsigned char>(name[i]))) return false;
  return ln[i] == 0 && i == name.size();
}

}  // namespace

std::string local_name(const x::DOMNode* n) {
  if (!n) return {};
  return utf8(n->getLocalName() ? n->getLocalName() : n->getNodeName());
}

std::string namespace_uri(const x::DOMNode* n) {
  return n ? utf8(n->getNamespaceURI()) : "";
}

x::DOMElement* child(const x::DOMNode* parent, std::string_view name) {
  if (!parent) return nullptr;
  for (x::DOMNode* c = parent->getFirstChild(); c; c = c->getNextSibling())
    if (c->getNodeType() == x::DOMNode::ELEMENT_NODE && local_is(c, name))
      return static_cast<x::DOMElement*>(c);
  return nullptr;
}

}  // namespace budstikke::emelding::xml
