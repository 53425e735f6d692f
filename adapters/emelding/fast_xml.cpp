#include "adapters/emelding/fast_xml.hpp"

#include "adapters/emelding/utf.hpp"

#include <array>
#include <cstdint>
#include <cstring>

namespace budstikke::emelding::fastxml {

namespace {

using u8 = unsigned char;

constexpr size_t kMaxDepth = 200;  // deeper documents go to Xerces

// Byte classes. Text: bytes that need a closer look in character data.
constexpr std::array<bool, 256> make_text_special() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = c != '\t' && c != '\n';
  t['\r'] = true;
  t['<'] = true;
  t['&'] = true;
  t[']'] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}
constexpr auto kTextSpecial = make_text_special();

constexpr std::array<bool, 256> make_attr_special() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = true;
  t['<'] = true;
  t['&'] = true;
  t['"'] = true;
  t['\''] = true;
  for (int c = 0x80; c < 0x100; ++c) t[c] = true;
  return t;
}
constexpr auto kAttrSpecial = make_attr_special();

constexpr std::array<bool, 256> make_name_start() {
  std::array<bool, 256> t{};
  for (int c = 'a'; c <= 'z'; ++c) t[c] = true;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = true;
  t['_'] = true;
  t[':'] = true;
  return t;
}
constexpr auto kNameStart = make_name_start();

constexpr std::array<bool, 256> make_name_char() {
  auto t = make_name_start();
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  t['-'] = true;
  t['.'] = true;
  return t;
}
constexpr auto kNameChar = make_name_char();

// The first byte of a local name (after a prefix's colon): a name-start character; a
// non-ASCII lead byte is checked by the name scanner itself.
inline bool local_start(char c) {
  const auto b = static_cast<u8>(c);
  return b >= 0x80 || (kNameStart[b] && b != ':');
}

inline bool is_space(u8 c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

inline bool is_xml_char(uint32_t c) {
  if (c < 0x20) return c == 0x9 || c == 0xA || c == 0xD;
  if (c <= 0xD7FF) return true;
  if (c < 0xE000) return false;
  if (c <= 0xFFFD) return true;
  return c >= 0x10000 && c <= 0x10FFFF;
}

// One UTF-8 sequence at p (p[0] >= 0x80): its length, or 0 when it is not well-formed
// UTF-8 (overlong, surrogate, beyond U+10FFFF, truncated) or not an XML character.
size_t utf8_char(const u8* p, const u8* end) {
  const u8 c = p[0];
  uint32_t cp;
  size_t len;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
    cp = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    cp = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return 0;  // overlong
  if (!is_xml_char(cp)) return 0;  // surrogates, U+FFFE/FFFF, > U+10FFFF
  return len;
}

struct RawAttr {
  std::string_view qname;
  std::string value;
};

struct Binding {
  std::string_view prefix;  // empty: the default namespace
  std::string_view uri;     // interned; empty: undeclared (default namespace only)
};

struct Open {
  tree::Node* node;
  std::string_view qname;
  size_t bindings;  // size of the binding stack before this element's declarations
};

constexpr const char* kLatin1 = "ISO-8859-1 (transcoded, then parsed again)";

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    const auto x = static_cast<u8>(a[i]);
    const auto y = static_cast<u8>(b[i]);
    if ((x >= 'A' && x <= 'Z' ? x | 0x20 : x) != (y >= 'A' && y <= 'Z' ? y | 0x20 : y))
      return false;
  }
  return true;
}

class Parser {
 public:
  // from_latin1: `in` is the UTF-8 transcoding of a document that declares ISO-8859-1.
  Parser(std::string_view in, tree::Tree& t, Names& names, bool from_latin1)
      : from_latin1_(from_latin1),
        begin_(reinterpret_cast<const u8*>(in.data())),
        p_(begin_),
        end_(begin_ + in.size()),
        t_(t),
        names_(names) {}

  Outcome run() {
    Outcome o;
    o.ok = document();
    o.declined = why_;
    o.offset = static_cast<size_t>(p_ - begin_);
    return o;
  }

 private:
  bool decline(const char* why) {
    if (!why_) why_ = why;
    return false;
  }
  bool at(const char* lit) const {
    const size_t n = std::strlen(lit);
    return static_cast<size_t>(end_ - p_) >= n && std::memcmp(p_, lit, n) == 0;
  }
  void skip_spaces() {
    while (p_ < end_ && is_space(*p_)) ++p_;
  }

  // ---- prolog and epilog

  bool document() {
    if (at("\xEF\xBB\xBF")) p_ += 3;
    if (at("<?xml") && end_ - p_ > 5 && is_space(p_[5])) {
      if (!xml_decl()) return false;
    }
    if (!misc()) return false;
    if (p_ >= end_ || *p_ != '<') return decline("no root element");
    if (!element()) return false;
    if (!misc()) return false;
    if (p_ != end_) return decline("content after the root element");
    return true;
  }

  // Comments, processing instructions and white space outside the root element.
  bool misc() {
    for (;;) {
      skip_spaces();
      if (at("<!--")) {
        if (!comment()) return false;
      } else if (at("<?")) {
        if (!pi()) return false;
      } else {
        return true;
      }
    }
  }

  bool quoted_literal(std::string_view& out) {
    if (p_ >= end_ || (*p_ != '"' && *p_ != '\'')) return decline("expected a quoted value");
    const u8 q = *p_++;
    const u8* s = p_;
    while (p_ < end_ && *p_ != q) ++p_;
    if (p_ >= end_) return decline("unterminated literal");
    out = std::string_view(reinterpret_cast<const char*>(s), static_cast<size_t>(p_ - s));
    ++p_;
    return true;
  }

  bool pseudo_attr(const char* name, std::string_view& value) {
    const size_t n = std::strlen(name);
    if (!at(name)) return false;
    p_ += n;
    skip_spaces();
    if (p_ >= end_ || *p_ != '=') return decline("bad XML declaration");
    ++p_;
    skip_spaces();
    return quoted_literal(value);
  }

  bool xml_decl() {
    p_ += 5;
    skip_spaces();
    std::string_view version;
    if (!pseudo_attr("version", version)) return decline("XML declaration without version");
    if (version != "1.0") return decline("XML version other than 1.0");
    bool sp = p_ < end_ && is_space(*p_);
    skip_spaces();
    std::string_view enc;
    if (sp && at("encoding")) {
      if (!pseudo_attr("encoding", enc)) return false;
      if (iequals(enc, "ISO-8859-1")) {
        if (!from_latin1_) return decline(kLatin1);
      } else if (!iequals(enc, "UTF-8") || from_latin1_) {
        return decline("encoding other than UTF-8 and ISO-8859-1");
      }
      sp = p_ < end_ && is_space(*p_);
      skip_spaces();
    }
    if (sp && at("standalone")) {
      std::string_view sd;
      if (!pseudo_attr("standalone", sd)) return false;
      if (sd != "yes" && sd != "no") return decline("bad standalone declaration");
      skip_spaces();
    }
    if (!at("?>")) return decline("bad XML declaration");
    p_ += 2;
    return true;
  }

  // Checks the characters of [s, e) are XML characters in well-formed UTF-8.
  bool chars_ok(const u8* s, const u8* e) {
    while (s < e) {
      const u8 c = *s;
      if (c < 0x80) {
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return decline("control character");
        ++s;
      } else {
        const size_t n = utf8_char(s, e);
        if (!n) return decline("malformed UTF-8 or a non-XML character");
        s += n;
      }
    }
    return true;
  }

  bool comment() {
    p_ += 4;
    const u8* s = p_;
    for (;;) {
      const void* dash = std::memchr(p_, '-', static_cast<size_t>(end_ - p_));
      if (!dash) return decline("unterminated comment");
      p_ = static_cast<const u8*>(dash);
      if (end_ - p_ >= 2 && p_[1] == '-') {
        if (end_ - p_ >= 3 && p_[2] == '>') break;
        return decline("'--' inside a comment");
      }
      ++p_;
    }
    if (!chars_ok(s, p_)) return false;
    p_ += 3;
    return true;
  }

  bool pi() {
    p_ += 2;
    const u8* s = p_;
    if (p_ >= end_ || !kNameStart[*p_] || *p_ == ':') return decline("bad processing instruction");
    while (p_ < end_ && kNameChar[*p_]) ++p_;
    const std::string_view target(reinterpret_cast<const char*>(s), static_cast<size_t>(p_ - s));
    if (target.size() == 3 && (target[0] | 0x20) == 'x' && (target[1] | 0x20) == 'm' &&
        (target[2] | 0x20) == 'l')
      return decline("reserved processing instruction target");
    if (target.find(':') != std::string_view::npos) return decline("colon in a PI target");
    if (at("?>")) {
      p_ += 2;
      return true;
    }
    if (p_ >= end_ || !is_space(*p_)) return decline("bad processing instruction");
    const u8* body = p_;
    for (;;) {
      const void* q = std::memchr(p_, '?', static_cast<size_t>(end_ - p_));
      if (!q) return decline("unterminated processing instruction");
      p_ = static_cast<const u8*>(q);
      if (end_ - p_ >= 2 && p_[1] == '>') break;
      ++p_;
    }
    if (!chars_ok(body, p_)) return false;
    p_ += 2;
    return true;
  }

  // ---- names and references

  // A name character beyond ASCII that every edition of XML 1.0 agrees on: the Latin-1
  // letters (U+00C0-U+00FF but U+00D7 and U+00F7: Norwegian names use æ, ø, å) and, after
  // the first character, U+00B7. Its length in bytes, or 0.
  size_t latin1_name_char(bool first) const {
    if (end_ - p_ < 2) return 0;
    if (p_[0] == 0xC3 && p_[1] >= 0x80 && p_[1] <= 0xBF && p_[1] != 0x97 && p_[1] != 0xB7) return 2;
    if (!first && p_[0] == 0xC2 && p_[1] == 0xB7) return 2;
    return 0;
  }

  bool qname(std::string_view& out) {
    const u8* s = p_;
    if (p_ >= end_) return decline("expected a name");
    if (!kNameStart[*p_]) {
      const size_t n = *p_ >= 0x80 ? latin1_name_char(true) : 0;
      if (!n) return decline(*p_ >= 0x80 ? "non-ASCII name" : "expected a name");
      p_ += n;
    }
    for (;;) {
      while (p_ < end_ && kNameChar[*p_]) ++p_;
      if (p_ >= end_ || *p_ < 0x80) break;
      const size_t n = latin1_name_char(false);
      if (!n) return decline("non-ASCII name");
      p_ += n;
    }
    out = std::string_view(reinterpret_cast<const char*>(s), static_cast<size_t>(p_ - s));
    // Namespaces: at most one colon, not first or last, and the local part an NCName too
    // (it starts as a name starts: not with a digit, '-' or '.').
    const size_t colon = out.find(':');
    if (colon != std::string_view::npos &&
        (colon == 0 || colon + 1 == out.size() ||
         out.find(':', colon + 1) != std::string_view::npos || !local_start(out[colon + 1])))
      return decline("not a QName");
    return true;
  }

  // At '&': appends the referenced character to out.
  bool reference(std::string& out) {
    ++p_;
    if (p_ < end_ && *p_ == '#') {
      ++p_;
      uint32_t cp = 0;
      int digits = 0;
      if (p_ < end_ && *p_ == 'x') {
        ++p_;
        for (; p_ < end_ && *p_ != ';'; ++p_, ++digits) {
          const u8 c = *p_;
          uint32_t d;
          if (c >= '0' && c <= '9')
            d = c - '0';
          else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            d = (c | 0x20) - 'a' + 10;
          else
            return decline("bad character reference");
          if (cp > 0x10FFFF) return decline("character reference out of range");
          cp = cp * 16 + d;
        }
      } else {
        for (; p_ < end_ && *p_ != ';'; ++p_, ++digits) {
          const u8 c = *p_;
          if (c < '0' || c > '9') return decline("bad character reference");
          if (cp > 0x10FFFF) return decline("character reference out of range");
          cp = cp * 10 + (c - '0');
        }
      }
      if (p_ >= end_ || digits == 0) return decline("bad character reference");
      ++p_;
      if (!is_xml_char(cp)) return decline("character reference to a non-XML character");
      utf::append_utf8(out, cp);
      return true;
    }
    const u8* s = p_;
    while (p_ < end_ && *p_ != ';' && p_ - s < 8) ++p_;
    if (p_ >= end_ || *p_ != ';') return decline("bad entity reference");
    const std::string_view name(reinterpret_cast<const char*>(s), static_cast<size_t>(p_ - s));
    ++p_;
    if (name == "lt")
      out += '<';
    else if (name == "gt")
      out += '>';
    else if (name == "amp")
      out += '&';
    else if (name == "apos")
      out += '\'';
    else if (name == "quot")
      out += '"';
    else
      return decline("undeclared entity");
    return true;
  }

  // An attribute value, normalised as for CDATA: references expanded, each white-space
  // character (after end-of-line handling: CR LF is one) a space.
  bool attr_value(std::string& out) {
    if (p_ >= end_ || (*p_ != '"' && *p_ != '\'')) return decline("expected a quoted value");
    const u8 q = *p_++;
    out.clear();
    for (;;) {
      const u8* s = p_;
      while (p_ < end_ && !kAttrSpecial[*p_]) ++p_;
      out.append(reinterpret_cast<const char*>(s), static_cast<size_t>(p_ - s));
      if (p_ >= end_) return decline("unterminated attribute value");
      const u8 c = *p_;
      if (c == q) {
        ++p_;
        return true;
      }
      if (c == '"' || c == '\'') {
        out += static_cast<char>(c);
        ++p_;
      } else if (c == '&') {
        if (!reference(out)) return false;
      } else if (c == '<') {
        return decline("'<' in an attribute value");
      } else if (c == '\t' || c == '\n') {
        out += ' ';
        ++p_;
      } else if (c == '\r') {
        out += ' ';
        ++p_;
        if (p_ < end_ && *p_ == '\n') ++p_;
      } else if (c >= 0x80) {
        const size_t n = utf8_char(p_, end_);
        if (!n) return decline("malformed UTF-8 or a non-XML character");
        out.append(reinterpret_cast<const char*>(p_), n);
        p_ += n;
      } else {
        return decline("control character");
      }
    }
  }

  std::string_view resolve(std::string_view prefix, bool& ok) {
    ok = true;
    for (size_t i = bindings_.size(); i-- > 0;)
      if (bindings_[i].prefix == prefix) {
        if (!prefix.empty() && bindings_[i].uri.empty()) break;
        return bindings_[i].uri;
      }
    if (prefix.empty()) return {};
    if (prefix == "xml") return names_.intern(kXmlNs);
    ok = false;
    return {};
  }

  // ---- elements

  bool element() {
    for (;;) {
      // At '<' of a start tag.
      ++p_;
      std::string_view qn;
      if (!qname(qn)) return false;
      attrs_.clear();
      bool empty = false;
      for (;;) {
        const bool sp = p_ < end_ && is_space(*p_);
        skip_spaces();
        if (p_ >= end_) return decline("unterminated start tag");
        if (*p_ == '>') {
          ++p_;
          break;
        }
        if (*p_ == '/') {
          if (end_ - p_ < 2 || p_[1] != '>') return decline("bad empty-element tag");
          p_ += 2;
          empty = true;
          break;
        }
        if (!sp) return decline("attributes must be separated by white space");
        if (attrs_.size() == attr_pool_.size()) attr_pool_.emplace_back();
        RawAttr& a = attr_pool_[attrs_.size()];
        if (!qname(a.qname)) return false;
        skip_spaces();
        if (p_ >= end_ || *p_ != '=') return decline("expected '='");
        ++p_;
        skip_spaces();
        if (!attr_value(a.value)) return false;
        for (const RawAttr* b : attrs_)
          if (b->qname == a.qname) return decline("duplicate attribute");
        attrs_.push_back(&a);
      }
      if (!open_element(qn)) return false;
      if (empty) {
        if (!close_element()) return false;
        if (stack_.empty()) return true;
      }
      // Content until the next start tag (loop) or the end of the root.
      for (;;) {
        if (!text()) return false;
        // At '<'.
        if (end_ - p_ >= 2 && p_[1] == '/') {
          p_ += 2;
          std::string_view end_name;
          if (!qname(end_name)) return false;
          if (end_name != stack_.back().qname) return decline("mismatched end tag");
          skip_spaces();
          if (p_ >= end_ || *p_ != '>') return decline("bad end tag");
          ++p_;
          if (!close_element()) return false;
          if (stack_.empty()) return true;
          continue;
        }
        if (at("<!--")) {
          if (!comment()) return false;
          continue;
        }
        if (at("<?")) {
          if (!pi()) return false;
          continue;
        }
        if (at("<!")) return decline("CDATA section or declaration in content");
        break;  // a child's start tag
      }
    }
  }

  // Character data up to the next '<', appended to the open element's text.
  bool text() {
    std::string& out = stack_.back().node->text;
    for (;;) {
      const u8* s = p_;
      while (p_ < end_ && !kTextSpecial[*p_]) ++p_;
      out.append(reinterpret_cast<const char*>(s), static_cast<size_t>(p_ - s));
      if (p_ >= end_) return decline("unterminated element");
      const u8 c = *p_;
      if (c == '<') return true;
      if (c == '&') {
        if (!reference(out)) return false;
      } else if (c == '\r') {
        out += '\n';
        ++p_;
        if (p_ < end_ && *p_ == '\n') ++p_;
      } else if (c == ']') {
        if (end_ - p_ >= 3 && p_[1] == ']' && p_[2] == '>') return decline("']]>' in content");
        out += ']';
        ++p_;
      } else if (c >= 0x80) {
        const size_t n = utf8_char(p_, end_);
        if (!n) return decline("malformed UTF-8 or a non-XML character");
        out.append(reinterpret_cast<const char*>(p_), n);
        p_ += n;
      } else {
        return decline("control character");
      }
    }
  }

  bool open_element(std::string_view qn) {
    if (stack_.size() >= kMaxDepth) return decline("nesting too deep");
    const size_t mark = bindings_.size();
    // Namespace declarations first: they apply to this element's own name and attributes.
    for (const RawAttr* a : attrs_) {
      const std::string_view q = a->qname;
      if (q == "xmlns") {
        if (a->value == kXmlNs || a->value == kXmlnsNs) return decline("reserved namespace");
        bindings_.push_back({{}, a->value.empty() ? std::string_view() : names_.intern(a->value)});
      } else if (q.size() > 6 && q.compare(0, 6, "xmlns:") == 0) {
        const std::string_view prefix = q.substr(6);
        if (a->value.empty()) return decline("empty namespace for a prefix");
        if (prefix == "xmlns") return decline("the xmlns prefix declared");
        if ((prefix == "xml") != (a->value == kXmlNs)) return decline("the xml prefix misused");
        if (a->value == kXmlnsNs) return decline("reserved namespace");
        bindings_.push_back({names_.intern(prefix), names_.intern(a->value)});
      }
    }
    tree::Node* n = t_.make();
    const size_t colon = qn.find(':');
    bool ok = true;
    if (colon == std::string_view::npos) {
      n->name = names_.intern(qn);
      n->ns = resolve({}, ok);
    } else {
      n->name = names_.intern(qn.substr(colon + 1));
      n->ns = resolve(qn.substr(0, colon), ok);
      if (qn.substr(0, colon) == "xmlns") return decline("element in the xmlns namespace");
    }
    if (!ok) return decline("undeclared namespace prefix");
    // Attributes: the tree keeps what Xerces' SAX2 tree builder keeps (not xmlns*, not xsi:*).
    for (const RawAttr* a : attrs_) {
      const std::string_view q = a->qname;
      if (q.size() >= 5 && q.compare(0, 5, "xmlns") == 0) {
        if (q.size() > 5 && q[5] != ':') return decline("attribute name starting with xmlns");
        continue;
      }
      const size_t c = q.find(':');
      std::string_view local = q;
      std::string_view ns;
      if (c != std::string_view::npos) {
        local = q.substr(c + 1);
        ns = resolve(q.substr(0, c), ok);
        if (!ok) return decline("undeclared namespace prefix");
      }
      const bool xsi_prefix = c == 3 && q.compare(0, 4, "xsi:") == 0;
      if (ns == kXsiNs) {
        if (!xsi_prefix) return decline("xsi attribute under another prefix");
        if (!xsi_attribute(n, local, a->value)) return false;
        continue;
      }
      if (xsi_prefix) return decline("the xsi prefix bound to another namespace");
      // Two attributes with the same expanded name.
      for (size_t i = 0; i < n->attrs.size(); ++i)
        if (n->attrs[i].first == local && n->attr_ns[i] == ns)
          return decline("duplicate expanded attribute name");
      n->attrs.emplace_back(names_.intern(local), std::move(const_cast<RawAttr*>(a)->value));
      n->attr_ns.push_back(ns.empty() ? std::string_view() : ns);
    }
    if (stack_.empty()) {
      if (t_.root) return decline("second root element");
      t_.root = n;
    } else {
      n->parent = stack_.back().node;
      stack_.back().node->kids.push_back(n);
    }
    stack_.push_back({n, qn, mark});
    return true;
  }

  bool xsi_attribute(tree::Node* n, std::string_view local, const std::string& value) {
    if (local == "type") {
      // A QName, white space collapsed.
      std::string_view v = value;
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      while (!v.empty() && v.back() == ' ') v.remove_suffix(1);
      if (v.empty() || v.find(' ') != std::string_view::npos) return decline("bad xsi:type");
      for (const char ch : v)
        if (!kNameChar[static_cast<u8>(ch)]) return decline("bad xsi:type");
      if (!kNameStart[static_cast<u8>(v.front())] || v.front() == ':')
        return decline("bad xsi:type");
      const size_t c = v.find(':');
      bool ok = true;
      if (c == std::string_view::npos) {
        n->xsi_type_local = names_.intern(v);
        n->xsi_type_ns = resolve({}, ok);
      } else {
        if (c + 1 == v.size() || v.find(':', c + 1) != std::string_view::npos ||
            !local_start(v[c + 1]))
          return decline("bad xsi:type");
        n->xsi_type_local = names_.intern(v.substr(c + 1));
        n->xsi_type_ns = resolve(v.substr(0, c), ok);
      }
      if (!ok) return decline("undeclared prefix in xsi:type");
      n->has_xsi_type = true;
      return true;
    }
    if (local == "nil") {
      n->has_xsi_nil = true;
      return true;
    }
    if (local == "schemaLocation") {
      size_t tokens = 0;
      bool in_token = false;
      for (const char ch : value) {
        const bool sp = is_space(static_cast<u8>(ch));
        if (!sp && !in_token) ++tokens;
        in_token = !sp;
      }
      if (tokens == 0 || tokens % 2 != 0) t_.odd_schema_location = true;
      return true;
    }
    if (local == "noNamespaceSchemaLocation") return true;
    return decline("unknown xsi attribute");
  }

  bool close_element() {
    bindings_.resize(stack_.back().bindings);
    stack_.pop_back();
    return true;
  }

  bool from_latin1_;
  const u8* begin_;
  const u8* p_;
  const u8* end_;
  tree::Tree& t_;
  Names& names_;
  const char* why_ = nullptr;
  std::vector<Binding> bindings_;
  std::vector<Open> stack_;
  std::deque<RawAttr> attr_pool_;
  std::vector<RawAttr*> attrs_;
};

}  // namespace

Outcome parse(std::string_view in, tree::Tree& t, Names& names) {
  t.clear();
  Outcome o = Parser(in, t, names, false).run();
  if (o.ok || o.declined != kLatin1) return o;
  // ISO-8859-1: every byte is the code point of the same value (all of them XML characters
  // in XML 1.0); transcode to UTF-8 and parse that. The tree keeps no view of its input.
  thread_local std::string utf8;
  utf8.clear();
  utf8.reserve(in.size() + in.size() / 8);
  for (const char ch : in) {
    const auto c = static_cast<u8>(ch);
    if (c < 0x80) {
      utf8 += ch;
    } else {
      utf8 += static_cast<char>(0xC0 | (c >> 6));
      utf8 += static_cast<char>(0x80 | (c & 0x3F));
    }
  }
  t.clear();
  o = Parser(utf8, t, names, true).run();
  if (utf8.capacity() > (1u << 20)) std::string().swap(utf8);
  return o;
}

}  // namespace budstikke::emelding::fastxml
