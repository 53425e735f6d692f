#pragma once
// A light element tree built from SAX2 events: UTF-8 strings, local names, attributes and
// the character data directly inside each element. Much cheaper to build than Xerces' DOM
// (no virtual node hierarchy, no pooled strings), and all the decoder needs.
// Nodes live in an arena owned by the Tree and are valid until clear().

#include <deque>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace budstikke::emelding::tree {

struct Node {
  std::string_view name;  // local name (interned by the builder; lives as long as it)
  std::string_view ns;    // namespace URI (interned)
  std::vector<std::pair<std::string_view, std::string>> attrs;  // local name -> value
  std::string text;  // character data directly inside (not of children)
  std::vector<Node*> kids;
  Node* parent = nullptr;
  // Filled by the native parser only (fast_xml.hpp), for the compiled validator: the
  // namespace of each attribute (parallel to attrs), and the xsi attributes the tree leaves out.
  std::vector<std::string_view> attr_ns;
  std::string_view xsi_type_ns;     // xsi:type, resolved (interned)
  std::string_view xsi_type_local;  //
  bool has_xsi_type = false;
  bool has_xsi_nil = false;
};

class Tree {
 public:
  Node* make() {
    if (used_ == arena_.size()) arena_.emplace_back();
    Node* n = &arena_[used_++];
    n->name = {};
    n->ns = {};
    n->attrs.clear();
    n->text.clear();
    n->kids.clear();
    n->parent = nullptr;
    n->attr_ns.clear();
    n->xsi_type_ns = {};
    n->xsi_type_local = {};
    n->has_xsi_type = false;
    n->has_xsi_nil = false;
    return n;
  }
  void clear() {
    used_ = 0;
    root = nullptr;
    odd_schema_location = false;
  }
  Node* root = nullptr;
  // Native parser: an xsi:schemaLocation that is not namespace-location pairs (Xerces
  // refuses it when validating, and ignores it otherwise).
  bool odd_schema_location = false;

 private:
  std::deque<Node> arena_;  // reused across documents: no allocation once warm
  size_t used_ = 0;
};

const Node* child(const Node* parent, std::string_view name);
std::vector<const Node*> children(const Node* parent, std::string_view name);
const Node* path(const Node* from, std::string_view slash_path);
const Node* descendant(const Node* from, std::string_view name);
// Text of the element and its descendants, trimmed (like DOM textContent, trimmed).
std::string text(const Node* n);
std::string text_at(const Node* from, std::string_view slash_path);
std::string attr(const Node* n, std::string_view name);
std::string v_at(const Node* from, std::string_view slash_path);
// Every descendant named `name`, not descending into matches.
void collect(const Node* n, std::string_view name, std::vector<const Node*>& out,
             size_t limit = 1000);

}  // namespace budstikke::emelding::tree
