#pragma once
// Small helpers over Xerces-C DOM: UTF-8 strings in and out, children by local name.

#include <string>
#include <string_view>
#include <vector>

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

std::string local_name(const x::DOMNode* n);
std::string namespace_uri(const x::DOMNode* n);

// First element child with this local name (any namespace), or nullptr.
x::DOMElement* child(const x::DOMNode* parent, std::string_view name);
// All element children with this local name.
std::vector<x::DOMElement*> children(const x::DOMNode* parent, std::string_view name);
// All element children.
std::vector<x::DOMElement*> element_children(const x::DOMNode* parent);
// Follows a path of local names ("MsgInfo/Sender/Organisation"); nullptr when absent.
x::DOMElement* path(const x::DOMNode* from, std::string_view slash_path);
// First descendant (depth-first) with this local name.
x::DOMElement* descendant(const x::DOMNode* from, std::string_view name);

// Text content, trimmed.
std::string text(const x::DOMNode* n);
std::string text_at(const x::DOMNode* from, std::string_view slash_path);
std::string attr(const x::DOMElement* e, std::string_view name);
// Attribute V of the element at the path (KITH coded values: <X V=".." DN=".." S=".."/>).
std::string v_at(const x::DOMNode* from, std::string_view slash_path);

}  // namespace budstikke::emelding::xml
