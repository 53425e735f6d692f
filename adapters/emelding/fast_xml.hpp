#pragma once
// A native XML 1.0 + Namespaces parser for the fast decode path: UTF-8 bytes straight into
// the light tree (tree.hpp), with no transcoding to UTF-16 and no per-node allocation once
// the tree's arena is warm.
//
// It is deliberately narrow. It takes what e-meldinger are made of (UTF-8 or an encoding
// declaration of UTF-8, ASCII names, elements, attributes, character and predefined entity
// references, comments, processing instructions) and *declines* everything else: other
// encodings, CDATA sections, DOCTYPE, non-ASCII names, XML 1.1, and every well-formedness
// error. A declined document is parsed by Xerces, which gives the verdict and the precise
// error; so this parser never has to explain a defect, only to be exact about what it
// accepts. What it accepts yields the same tree as Xerces' non-validating SAX2 parse
// (the tests hold it to that on every example message).
//
// Thread safety: a Names table and a Tree belong to one thread (one Decoder).

#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "adapters/emelding/tree.hpp"

namespace budstikke::emelding::fastxml {

inline constexpr std::string_view kXmlNs = "http://www.w3.org/XML/1998/namespace";
inline constexpr std::string_view kXmlnsNs = "http://www.w3.org/2000/xmlns/";
inline constexpr std::string_view kXsiNs = "http://www.w3.org/2001/XMLSchema-instance";

// Interned strings: names and namespace URIs repeat endlessly across messages. Views stay
// valid until clear(), which the owner calls only between documents (the Decoder does when
// the table has grown past its cap, together with everything keyed by these views).
class Names {
 public:
  std::string_view intern(std::string_view s) {
    if (const auto it = map_.find(s); it != map_.end()) return it->second;
    store_.emplace_back(s);
    const std::string_view v = store_.back();
    map_.emplace(v, v);
    return v;
  }
  size_t size() const { return map_.size(); }
  void clear() {
    map_.clear();
    store_.clear();
  }

 private:
  std::deque<std::string> store_;
  std::unordered_map<std::string_view, std::string_view> map_;
};

struct Outcome {
  bool ok = false;
  const char* declined = nullptr;  // why it was declined (for tests and counters)
  size_t offset = 0;               // byte offset where it was declined
};

// Parses `in` into `t` (cleared first). On decline the tree is incomplete.
Outcome parse(std::string_view in, tree::Tree& t, Names& names);

}  // namespace budstikke::emelding::fastxml
