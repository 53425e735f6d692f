#include "adapters/emelding/xml.hpp"

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
    if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

std::u16string utf16(std::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    const auto b = static_cast<unsigned char>(s[i]);
    uint32_t c = 0xFFFD;
    size_t len = 1;
    if (b < 0x80) {
      c = b;
    } else if ((b >> 5) == 6 && i + 1 < s.size()) {
      c = ((b & 0x1Fu) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3Fu);
      len = 2;
    } else if ((b >> 4) == 14 && i + 2 < s.size()) {
      c = ((b & 0x0Fu) << 12) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 6) |
          (static_cast<unsigned char>(s[i + 2]) & 0x3Fu);
      len = 3;
    } else if ((b >> 3) == 30 && i + 3 < s.size()) {
      c = ((b & 0x07u) << 18) | ((static_cast<unsigned char>(s[i + 1]) & 0x3Fu) << 12) |
          ((static_cast<unsigned char>(s[i + 2]) & 0x3Fu) << 6) |
          (static_cast<unsigned char>(s[i + 3]) & 0x3Fu);
      len = 4;
    }
    if (c >= 0x10000) {
      c -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (c >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (c & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(c));
    }
    i += len;
  }
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
