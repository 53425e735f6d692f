#pragma once
// Small helpers over Xerces-C DOM: UTF-8 strings in and out, children by local name.

#include <string>
#include <string_view>

#include <xercesc/dom/DOM.hpp>
#include <xercesc/util/XMLString.hpp>

namespace budstikke::emelding::xml {

namespace x = XERCES_CPP_NAMESPACE;

// Initializes Xerces once per process (thread-safe; safe to call often).
void ensure_initialized();

// UTF-16 (XMLCh) -> UTF-8.
std::string utf8(const XMLCh* s);
// UTF-8 -> UTF-16, owned.
std::u16string utf16(std::string_view s);
inline const XMLCh* xc(const std::u16string& s) {
  return reinterpret_cast<const XMLCh*>(s.c_str());
}

// DOM helpers for the re-renderer (decoding reads the light tree in tree.hpp instead).
std::string local_name(const x::DOMNode* n);
std::string namespace_uri(const x::DOMNode* n);
// First element child with this local name (any namespace), or nullptr.
x::DOMElement* child(const x::DOMNode* parent, std::string_view name);

}  // namespace budstikke::emelding::xml
