#include "adapters/emelding/xpath.hpp"

#include <xercesc/framework/MemBufInputSource.hpp>
#include <xercesc/parsers/XercesDOMParser.hpp>
#include <xercesc/sax/HandlerBase.hpp>

#include <cctype>
#include <memory>
#include <optional>

#include "adapters/emelding/xml.hpp"

namespace budstikke::emelding {

namespace x = XERCES_CPP_NAMESPACE;

namespace {

struct Pred {
  enum class Kind { kIndex, kEquals } kind = Kind::kIndex;
  int index = 0;
  std::vector<std::string> path;  // relative: names, last may be @attr or text()
  std::string value;
};

struct Step {
  bool descendant = false;  // reached with //
  enum class Kind { kElement, kAttribute, kText } kind = Kind::kElement;
  std::string name;  // local name; * any
  std::vector<Pred> preds;
};

std::string local(std::string_view qname) {
  const auto c = qname.find(':');
  return std::string(c == std::string_view::npos ? qname : qname.substr(c + 1));
}

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  Result<std::vector<Step>> parse() {
    std::vector<Step> steps;
    bool first = true;
    while (i_ < s_.size() || first) {
      Step st;
      if (s_.substr(i_, 2) == "//") {
        st.descendant = true;
        i_ += 2;
      } else if (i_ < s_.size() && s_[i_] == '/') {
        ++i_;
      } else if (!first) {
        return fail("expected '/'");
      }
      first = false;
      if (i_ < s_.size() && s_[i_] == '@') {
        ++i_;
        st.kind = Step::Kind::kAttribute;
        st.name = local(name());
        if (st.name.empty()) return fail("expected an attribute name");
      } else if (s_.substr(i_, 6) == "text()") {
        i_ += 6;
        st.kind = Step::Kind::kText;
      } else {
        const std::string n = name();
        if (n.empty()) return fail("expected an element name");
        st.name = n == "*" ? "*" : local(n);
        while (i_ < s_.size() && s_[i_] == '[') {
          ++i_;
          auto p = pred();
          if (!p) return p.error();
          st.preds.push_back(std::move(*p));
          if (i_ >= s_.size() || s_[i_] != ']') return fail("expected ']'");
          ++i_;
        }
      }
      steps.push_back(std::move(st));
      if (steps.back().kind != Step::Kind::kElement && i_ < s_.size())
        return fail("@attribute and text() end a path");
    }
    return steps;
  }

 private:
  Error fail(const std::string& why) const {
    return Error::permanent(ErrorDomain::kConfig, "xpath '" + std::string(s_) + "' at offset " +
                                                      std::to_string(i_) + ": " + why);
  }
  std::string name() {
    const size_t b = i_;
    if (i_ < s_.size() && s_[i_] == '*') {
      ++i_;
      return "*";
    }
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' ||
                              s_[i_] == '-' || s_[i_] == '.' || s_[i_] == ':'))
      ++i_;
    return std::string(s_.substr(b, i_ - b));
  }
  Result<Pred> pred() {
    Pred p;
    if (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) {
      size_t b = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      p.kind = Pred::Kind::kIndex;
      p.index = std::stoi(std::string(s_.substr(b, i_ - b)));
      if (p.index < 1) return fail("positions start at 1");
      return p;
    }
    p.kind = Pred::Kind::kEquals;
    for (;;) {
      if (i_ < s_.size() && s_[i_] == '@') {
        ++i_;
        p.path.push_back("@" + local(name()));
        break;
      }
      if (s_.substr(i_, 6) == "text()") {
        i_ += 6;
        p.path.push_back("text()");
        break;
      }
      const std::string n = name();
      if (n.empty()) return fail("expected a name in the predicate");
      p.path.push_back(local(n));
      if (i_ < s_.size() && s_[i_] == '/') {
        ++i_;
        continue;
      }
      break;
    }
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    if (i_ >= s_.size() || s_[i_] != '=') return fail("expected '=' (predicates compare)");
    ++i_;
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    if (i_ >= s_.size() || (s_[i_] != '\'' && s_[i_] != '"'))
      return fail("expected a quoted value");
    const char q = s_[i_++];
    const auto end = s_.find(q, i_);
    if (end == std::string_view::npos) return fail("unterminated string");
    p.value = std::string(s_.substr(i_, end - i_));
    i_ = end + 1;
    return p;
  }
  std::string_view s_;
  size_t i_ = 0;
};

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

std::string own_text(const x::DOMNode* n) {
  std::string out;
  for (auto* c = n->getFirstChild(); c; c = c->getNextSibling())
    if (c->getNodeType() == x::DOMNode::TEXT_NODE ||
        c->getNodeType() == x::DOMNode::CDATA_SECTION_NODE)
      out += xml::utf8(c->getNodeValue());
  return trim(out);
}

std::string attr_of(const x::DOMNode* n, const std::string& name) {
  const auto* attrs = n->getAttributes();
  if (!attrs) return "";
  for (XMLSize_t i = 0; i < attrs->getLength(); ++i) {
    const auto* a = attrs->item(i);
    if (xml::local_name(a) == name) return xml::utf8(a->getNodeValue());
  }
  return "\x01";  // absent
}

bool is_element(const x::DOMNode* n) {
  return n->getNodeType() == x::DOMNode::ELEMENT_NODE;
}

bool name_matches(const x::DOMNode* n, const std::string& name) {
  return is_element(n) && (name == "*" || xml::local_name(n) == name);
}

// Values reached from n by a predicate path.
void pred_values(const x::DOMNode* n, const std::vector<std::string>& path, size_t k,
                 std::vector<std::string>& out) {
  if (k == path.size()) {
    out.push_back(trim(xml::utf8(n->getTextContent())));
    return;
  }
  const std::string& s = path[k];
  if (s == "text()") {
    out.push_back(own_text(n));
    return;
  }
  if (s[0] == '@') {
    const std::string v = attr_of(n, s.substr(1));
    if (v != "\x01") out.push_back(v);
    return;
  }
  for (auto* c = n->getFirstChild(); c; c = c->getNextSibling())
    if (name_matches(c, s)) pred_values(c, path, k + 1, out);
}

void descendants(const x::DOMNode* n, const std::string& name,
                 std::vector<const x::DOMNode*>& out) {
  for (auto* c = n->getFirstChild(); c; c = c->getNextSibling()) {
    if (!is_element(c)) continue;
    if (name_matches(c, name)) out.push_back(c);
    descendants(c, name, out);
  }
}

}  // namespace

Result<std::vector<std::string>> xpath_values(std::string_view xml_text, std::string_view expr) {
  auto steps = Parser(expr).parse();
  if (!steps) return steps.error();
  xml::ensure_initialized();
  x::XercesDOMParser parser;
  parser.setValidationScheme(x::XercesDOMParser::Val_Never);
  parser.setDoNamespaces(true);
  parser.setDoSchema(false);
  parser.setLoadExternalDTD(false);
  parser.setDisableDefaultEntityResolution(true);
  x::HandlerBase errors;
  parser.setErrorHandler(&errors);
  x::MemBufInputSource src(reinterpret_cast<const XMLByte*>(xml_text.data()), xml_text.size(),
                           "rendered");
  try {
    parser.parse(src);
  } catch (const x::SAXParseException& e) {
    return Error::permanent(ErrorDomain::kCodec, "not well-formed XML at line " +
                                                     std::to_string(e.getLineNumber()) + ": " +
                                                     xml::utf8(e.getMessage()));
  } catch (const x::XMLException& e) {
    return Error::permanent(ErrorDomain::kCodec, "not XML: " + xml::utf8(e.getMessage()));
  } catch (const x::DOMException& e) {
    return Error::permanent(ErrorDomain::kCodec, "not XML: " + xml::utf8(e.getMessage()));
  }
  const x::DOMDocument* doc = parser.getDocument();
  if (!doc || !doc->getDocumentElement())
    return Error::permanent(ErrorDomain::kCodec, "not XML: no root element");
  std::vector<const x::DOMNode*> nodes = {doc};
  std::vector<std::string> values;
  for (const auto& st : *steps) {
    if (st.kind == Step::Kind::kAttribute || st.kind == Step::Kind::kText) {
      for (const auto* n : nodes) {
        std::vector<const x::DOMNode*> from = {n};
        if (st.descendant) descendants(n, "*", from);
        for (const auto* f : from) {
          if (!is_element(f)) continue;
          if (st.kind == Step::Kind::kText) {
            values.push_back(own_text(f));
          } else if (const std::string v = attr_of(f, st.name); v != "\x01") {
            values.push_back(v);
          }
        }
      }
      return values;
    }
    std::vector<const x::DOMNode*> next;
    for (const auto* n : nodes) {
      std::vector<const x::DOMNode*> cand;
      if (st.descendant) {
        descendants(n, st.name, cand);
      } else {
        for (auto* c = n->getFirstChild(); c; c = c->getNextSibling())
          if (name_matches(c, st.name)) cand.push_back(c);
      }
      for (const auto& p : st.preds) {
        std::vector<const x::DOMNode*> kept;
        for (size_t i = 0; i < cand.size(); ++i) {
          if (p.kind == Pred::Kind::kIndex) {
            if (static_cast<int>(i) + 1 == p.index) kept.push_back(cand[i]);
            continue;
          }
          std::vector<std::string> vs;
          pred_values(cand[i], p.path, 0, vs);
          for (const auto& v : vs)
            if (v == p.value) {
              kept.push_back(cand[i]);
              break;
            }
        }
        cand = std::move(kept);
      }
      next.insert(next.end(), cand.begin(), cand.end());
    }
    nodes = std::move(next);
  }
  for (const auto* n : nodes) values.push_back(trim(xml::utf8(n->getTextContent())));
  return values;
}

}  // namespace budstikke::emelding
