#include "adapters/emelding/tree.hpp"

namespace budstikke::emelding::tree {

namespace {

std::string trim(std::string_view s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

void gather(const Node* n, std::string& out) {
  out += n->text;
  for (const Node* k : n->kids) gather(k, out);
}

}  // namespace

const Node* child(const Node* parent, std::string_view name) {
  if (!parent) return nullptr;
  for (const Node* k : parent->kids)
    if (k->name == name) return k;
  return nullptr;
}

std::vector<const Node*> children(const Node* parent, std::string_view name) {
  std::vector<const Node*> out;
  if (!parent) return out;
  for (const Node* k : parent->kids)
    if (k->name == name) out.push_back(k);
  return out;
}

const Node* path(const Node* from, std::string_view p) {
  const Node* cur = from;
  while (cur) {
    const auto slash = p.find('/');
    cur = child(cur, p.substr(0, slash));
    if (slash == std::string_view::npos) return cur;
    p = p.substr(slash + 1);
  }
  return nullptr;
}

const Node* descendant(const Node* from, std::string_view name) {
  if (!from) return nullptr;
  for (const Node* k : from->kids) {
    if (k->name == name) return k;
    if (const Node* d = descendant(k, name)) return d;
  }
  return nullptr;
}

std::string text(const Node* n) {
  if (!n) return {};
  if (n->kids.empty()) return trim(n->text);
  std::string all;
  gather(n, all);
  return trim(all);
}

std::string text_at(const Node* from, std::string_view p) {
  return text(path(from, p));
}

std::string attr(const Node* n, std::string_view name) {
  if (!n) return {};
  for (const auto& [k, v] : n->attrs)
    if (k == name) return v;
  return {};
}

std::string v_at(const Node* from, std::string_view p) {
  return attr(path(from, p), "V");
}

void collect(const Node* n, std::string_view name, std::vector<const Node*>& out, size_t limit) {
  if (!n) return;
  for (const Node* k : n->kids) {
    if (out.size() >= limit) return;
    if (k->name == name)
      out.push_back(k);
    else
      collect(k, name, out, limit);
  }
}

}  // namespace budstikke::emelding::tree
