#include "engine/route/expr.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ctime>
#include <functional>
#include <vector>

#include <boost/regex.hpp>

#include "engine/core/time.hpp"
#include "engine/event/event.hpp"
#include "engine/registry/registry.hpp"

namespace budstikke::route {

using json = nlohmann::json;

bool truthy(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return false;
    case json::value_t::boolean:
      return v.get<bool>();
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float:
      return v.get<double>() != 0.0;
    case json::value_t::string:
      return !v.get_ref<const std::string&>().empty();
    case json::value_t::array:
    case json::value_t::object:
      return !v.empty();
    default:
      return true;
  }
}

const std::set<std::string>& event_roots() {
  static const std::set<std::string> kRoots = {
      "event_id", "type",         "occurred_at", "received_at", "source",  "sender",
      "receiver", "conversation", "body",        "attachments", "patient", "format",
      "version",  "message_id",   "key",         "message_type"};
  return kRoots;
}

namespace {

void party_shortcuts(json& p) {
  if (!p.is_object()) return;
  auto get = [&](const char* part, const char* field) -> std::string {
    const auto it = p.find(part);
    if (it == p.end() || !it->is_object()) return {};
    return it->value(field, "");
  };
  std::string her = get("department", "her_id");
  if (her.empty()) her = get("organisation", "her_id");
  if (!her.empty()) p["her_id"] = her;
  const std::string org = get("organisation", "org_number");
  if (!org.empty()) p["org_number"] = org;
  const std::string name = get("organisation", "name");
  if (!name.empty()) p["name"] = name;
}

}  // namespace

json event_view_from_json(json j) {
  j.erase("original");
  if (auto it = j.find("attachments"); it != j.end() && it->is_array())
    for (auto& a : *it) a.erase("data");
  if (auto it = j.find("sender"); it != j.end()) party_shortcuts(*it);
  if (auto it = j.find("receiver"); it != j.end()) party_shortcuts(*it);
  if (auto it = j.find("body"); it != j.end() && it->is_object())
    if (auto p = it->find("patient"); p != it->end()) j["patient"] = *p;
  json source = j.value("source", json::object());
  if (!source.is_object()) source = json::object();
  j["format"] = source.value("format", "");
  j["version"] = source.value("version", "");
  j["message_id"] = source.value("message_id", "");
  j["message_type"] = source.value("message_type", "");
  return j;
}

json event_view(const Event& e) {
  return event_view_from_json(to_json(e));
}

// ---------------------------------------------------------------------------------------
// AST

struct Node {
  virtual ~Node() = default;
  virtual json eval(const EvalContext& c) const = 0;
  // What the value can depend on: adds the root names its paths start with and whether it
  // reads the clock (see Expr::reads).
  virtual void reads(ExprReads& r) const = 0;
};

namespace {

using NodePtr = std::shared_ptr<const Node>;

struct Literal final : Node {
  json v;
  explicit Literal(json x) : v(std::move(x)) {}
  json eval(const EvalContext&) const override { return v; }
  void reads(ExprReads&) const override {}
};

struct ListLit final : Node {
  std::vector<NodePtr> items;
  json eval(const EvalContext& c) const override {
    json a = json::array();
    for (const auto& i : items) a.push_back(i->eval(c));
    return a;
  }
  void reads(ExprReads& r) const override {
    for (const auto& i : items) i->reads(r);
  }
};

// The value a root name stands for, without copying it.
const json* root_value(const EvalContext& c, const std::string& name) {
  if (name == "system") return c.system;
  if (!c.event) return nullptr;
  const auto it = c.event->find(name);
  return it == c.event->end() ? nullptr : &*it;
}

json member(const json& v, const std::string& name) {
  if (v.is_object()) {
    const auto it = v.find(name);
    return it == v.end() ? json() : *it;
  }
  if (v.is_array()) {
    json out = json::array();
    for (const auto& x : v) {
      json m = member(x, name);
      if (m.is_array())
        for (auto& y : m) out.push_back(std::move(y));
      else if (!m.is_null())
        out.push_back(std::move(m));
    }
    return out;
  }
  return json();
}

// A root and its members (receiver.organisation.her_id): walked by pointer, so only the
// value the path ends on is copied. A member of a list maps over it (see member()).
struct Path final : Node {
  std::string root;
  std::vector<std::string> members;
  json eval(const EvalContext& c) const override {
    const json* cur = root_value(c, root);
    for (size_t i = 0; i < members.size(); ++i) {
      if (!cur) return json();
      if (cur->is_object()) {
        const auto it = cur->find(members[i]);
        cur = it == cur->end() ? nullptr : &*it;
        continue;
      }
      if (!cur->is_array()) return json();
      json v = member(*cur, members[i]);
      for (size_t k = i + 1; k < members.size(); ++k) v = member(v, members[k]);
      return v;
    }
    return cur ? *cur : json();
  }
  void reads(ExprReads& r) const override { r.roots.insert(root); }
};

struct Member final : Node {
  NodePtr base;
  std::string name;
  json eval(const EvalContext& c) const override { return member(base->eval(c), name); }
  void reads(ExprReads& r) const override { base->reads(r); }
};

struct Index final : Node {
  NodePtr base, index;
  json eval(const EvalContext& c) const override {
    json b = base->eval(c);
    json i = index->eval(c);
    if (b.is_array() && i.is_number()) {
      auto n = static_cast<long long>(i.get<double>());
      if (n < 0) n += static_cast<long long>(b.size());
      if (n >= 0 && static_cast<size_t>(n) < b.size()) return b[static_cast<size_t>(n)];
      return json();
    }
    if (b.is_object() && i.is_string()) return member(b, i.get<std::string>());
    return json();
  }
  void reads(ExprReads& r) const override {
    base->reads(r);
    index->reads(r);
  }
};

int compare(const json& a, const json& b, bool& ok) {
  ok = true;
  if (a.is_number() && b.is_number()) {
    const double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  if (a.is_string() && b.is_string()) {
    const auto& x = a.get_ref<const std::string&>();
    const auto& y = b.get_ref<const std::string&>();
    return x < y ? -1 : (x > y ? 1 : 0);
  }
  ok = false;
  return 0;
}

bool equal(const json& a, const json& b) {
  if (a.is_number() && b.is_number()) return a.get<double>() == b.get<double>();
  return a == b;
}

bool contained(const json& item, const json& coll) {
  if (coll.is_array()) {
    for (const auto& x : coll)
      if (equal(item, x)) return true;
    return false;
  }
  if (coll.is_string() && item.is_string())
    return coll.get_ref<const std::string&>().find(item.get_ref<const std::string&>()) !=
           std::string::npos;
  if (coll.is_object() && item.is_string()) return coll.contains(item.get<std::string>());
  return false;
}

struct Binary final : Node {
  std::string op;
  NodePtr l, r;
  json eval(const EvalContext& c) const override {
    if (op == "and") return truthy(l->eval(c)) && truthy(r->eval(c));
    if (op == "or") return truthy(l->eval(c)) || truthy(r->eval(c));
    const json a = l->eval(c);
    const json b = r->eval(c);
    if (op == "==") return equal(a, b);
    if (op == "!=") return !equal(a, b);
    if (op == "in") return contained(a, b);
    if (op == "not in") return !contained(a, b);
    if (op == "+") {
      if (a.is_number() && b.is_number()) return a.get<double>() + b.get<double>();
      if (a.is_array() && b.is_array()) {
        json o = a;
        for (const auto& x : b) o.push_back(x);
        return o;
      }
      auto s = [](const json& v) -> std::string {
        if (v.is_string()) return v.get<std::string>();
        if (v.is_null()) return "";
        return v.dump();
      };
      return s(a) + s(b);
    }
    if (op == "-") {
      if (a.is_number() && b.is_number()) return a.get<double>() - b.get<double>();
      return json();
    }
    bool ok = false;
    const int k = compare(a, b, ok);
    if (!ok) return false;
    if (op == "<") return k < 0;
    if (op == "<=") return k <= 0;
    if (op == ">") return k > 0;
    if (op == ">=") return k >= 0;
    return json();
  }
  void reads(ExprReads& out) const override {
    l->reads(out);
    r->reads(out);
  }
};

struct Not final : Node {
  NodePtr x;
  json eval(const EvalContext& c) const override { return !truthy(x->eval(c)); }
  void reads(ExprReads& r) const override { x->reads(r); }
};

struct Neg final : Node {
  NodePtr x;
  json eval(const EvalContext& c) const override {
    json v = x->eval(c);
    return v.is_number() ? json(-v.get<double>()) : json();
  }
  void reads(ExprReads& r) const override { x->reads(r); }
};

using Fn = std::function<json(const EvalContext&, const std::vector<NodePtr>&)>;

struct Call final : Node {
  Fn fn;
  std::vector<NodePtr> args;
  bool clock = false;  // now(), today()
  json eval(const EvalContext& c) const override { return fn(c, args); }
  void reads(ExprReads& r) const override {
    r.clock = r.clock || clock;
    for (const auto& a : args) a->reads(r);
  }
};

std::string str_of(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  if (v.is_number_integer() || v.is_number_unsigned()) return std::to_string(v.get<int64_t>());
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
    return v.dump();
  }
  return v.dump();
}

// "YYYY-MM-DD" from RFC 3339, ISO dates, KITH dates and HL7 timestamps; "" when unreadable.
std::string date_of(const json& v) {
  const std::string s = str_of(v);
  auto digits = [&](size_t from, size_t n) {
    if (s.size() < from + n) return false;
    for (size_t i = from; i < from + n; ++i)
      if (!std::isdigit(static_cast<unsigned char>(s[i]))) return false;
    return true;
  };
  if (digits(0, 4) && s.size() >= 10 && s[4] == '-' && digits(5, 2) && s[7] == '-' && digits(8, 2))
    return s.substr(0, 10);
  if (digits(0, 8)) return s.substr(0, 4) + "-" + s.substr(4, 2) + "-" + s.substr(6, 2);
  return {};
}

int64_t days_from_civil(int y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return static_cast<int64_t>(era) * 146097 + static_cast<int64_t>(doe) - 719468;
}

std::optional<int64_t> day_number(const std::string& iso) {
  if (iso.size() != 10) return std::nullopt;
  return days_from_civil(std::stoi(iso.substr(0, 4)),
                         static_cast<unsigned>(std::stoi(iso.substr(5, 2))),
                         static_cast<unsigned>(std::stoi(iso.substr(8, 2))));
}

struct FnSpec {
  size_t min_args;
  size_t max_args;
  Fn fn;
};

const std::map<std::string, FnSpec>& functions() {
  static const std::map<std::string, FnSpec> kFunctions = [] {
    std::map<std::string, FnSpec> m;
    auto unary_str = [](const std::function<std::string(std::string)>& op) {
      return [op](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
        const json v = a[0]->eval(c);
        if (v.is_null()) return json();
        return op(str_of(v));
      };
    };
    m["lower"] = {1, 1, unary_str([](std::string s) {
                    for (auto& ch : s)
                      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
                    return s;
                  })};
    m["upper"] = {1, 1, unary_str([](std::string s) {
                    for (auto& ch : s)
                      ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                    return s;
                  })};
    m["trim"] = {1, 1, unary_str([](const std::string& s) {
                   const auto b = s.find_first_not_of(" \t\r\n");
                   if (b == std::string::npos) return std::string();
                   return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
                 })};
    m["len"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                  const json v = a[0]->eval(c);
                  if (v.is_string()) return v.get_ref<const std::string&>().size();
                  if (v.is_array() || v.is_object()) return v.size();
                  return 0;
                }};
    m["starts_with"] = {2, 2, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                          const std::string s = str_of(a[0]->eval(c)), p = str_of(a[1]->eval(c));
                          return s.compare(0, p.size(), p) == 0;
                        }};
    m["ends_with"] = {2, 2, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                        const std::string s = str_of(a[0]->eval(c)), p = str_of(a[1]->eval(c));
                        return s.size() >= p.size() &&
                               s.compare(s.size() - p.size(), p.size(), p) == 0;
                      }};
    m["contains"] = {2, 2, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                       return contained(a[1]->eval(c), a[0]->eval(c));
                     }};
    m["exists"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                     const json v = a[0]->eval(c);
                     return !v.is_null() &&
                            !(v.is_string() && v.get_ref<const std::string&>().empty()) &&
                            !(v.is_array() && v.empty());
                   }};
    m["coalesce"] = {1, 16, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                       for (const auto& n : a) {
                         json v = n->eval(c);
                         if (truthy(v)) return v;
                       }
                       return json();
                     }};
    m["string"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                     return str_of(a[0]->eval(c));
                   }};
    m["number"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                     json v = a[0]->eval(c);
                     if (v.is_number()) return v;
                     const std::string s = str_of(v);
                     char* end = nullptr;
                     const double d = std::strtod(s.c_str(), &end);
                     if (s.empty() || !end || *end != '\0') return json();
                     return d;
                   }};
    m["date"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                   const std::string d = date_of(a[0]->eval(c));
                   return d.empty() ? json() : json(d);
                 }};
    m["now"] = {0, 0, [](const EvalContext&, const std::vector<NodePtr>&) -> json {
                  return now_rfc3339();
                }};
    m["today"] = {0, 0, [](const EvalContext&, const std::vector<NodePtr>&) -> json {
                    return now_rfc3339().substr(0, 10);
                  }};
    m["days_between"] = {2, 2, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                           const auto x = day_number(date_of(a[0]->eval(c)));
                           const auto y = day_number(date_of(a[1]->eval(c)));
                           if (!x || !y) return json();
                           return *y - *x;
                         }};
    m["system"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                     if (!c.registry) return json();
                     return c.registry->json_of(str_of(a[0]->eval(c)));
                   }};
    m["owner"] = {1, 1, [](const EvalContext& c, const std::vector<NodePtr>& a) -> json {
                    if (!c.registry) return json();
                    const std::string id = str_of(a[0]->eval(c));
                    const registry::System* s = c.registry->owner_of_her(id);
                    if (!s) s = c.registry->owner_of_org(id);
                    return s ? c.registry->json_of(s->id) : json();
                  }};
    return m;
  }();
  return kFunctions;
}

// matches(text, "regex"): the regex is compiled once, when the expression compiles.
struct Matches final : Node {
  NodePtr text;
  std::string source;  // the regex as written
  std::shared_ptr<const boost::regex> re;
  json eval(const EvalContext& c) const override {
    const json v = text->eval(c);
    if (v.is_null()) return false;
    const std::string s = str_of(v);
    try {
      return boost::regex_search(s, *re);
    } catch (const std::runtime_error& ex) {
      // Boost's bound on backtracking (or on its own stack) was reached: undecided.
      throw EvalError("matches(\"" + source + "\") could not decide on a text of " +
                      std::to_string(s.size()) + " bytes: " + ex.what());
    }
  }
  void reads(ExprReads& r) const override { text->reads(r); }
};

// ---------------------------------------------------------------------------------------
// Lexer and parser

enum class Tok {
  kEnd,
  kIdent,
  kNumber,
  kString,
  kOp,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kDot,
  kComma
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;
  size_t offset = 0;
};

struct ParseError {
  ExprError e;
};

class Parser {
 public:
  Parser(std::string_view text, const CompileOptions& o) : s_(text), o_(o) { lex(); }

  NodePtr parse() {
    NodePtr n = parse_or();
    if (peek().kind != Tok::kEnd) fail(peek().offset, "unexpected '" + peek().text + "'");
    return n;
  }

 private:
  [[noreturn]] void fail(size_t off, std::string msg) { throw ParseError{{off, std::move(msg)}}; }

  void lex() {
    size_t i = 0;
    while (i < s_.size()) {
      const char ch = s_[i];
      if (std::isspace(static_cast<unsigned char>(ch))) {
        ++i;
        continue;
      }
      Token t;
      t.offset = i;
      if (std::isalpha(static_cast<unsigned char>(ch)) || ch == '_') {
        size_t j = i;
        while (j < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_'))
          ++j;
        t.kind = Tok::kIdent;
        t.text = std::string(s_.substr(i, j - i));
        i = j;
      } else if (std::isdigit(static_cast<unsigned char>(ch))) {
        size_t j = i;
        while (j < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[j])) || s_[j] == '.'))
          ++j;
        t.kind = Tok::kNumber;
        t.text = std::string(s_.substr(i, j - i));
        i = j;
      } else if (ch == '"' || ch == '\'') {
        size_t j = i + 1;
        std::string v;
        while (j < s_.size() && s_[j] != ch) {
          if (s_[j] == '\\' && j + 1 < s_.size()) {
            const char e = s_[j + 1];
            v.push_back(e == 'n' ? '\n' : (e == 't' ? '\t' : e));
            j += 2;
            continue;
          }
          v.push_back(s_[j++]);
        }
        if (j >= s_.size()) fail(i, "unterminated string");
        t.kind = Tok::kString;
        t.text = std::move(v);
        i = j + 1;
      } else {
        static const char* two[] = {"==", "!=", "<=", ">="};
        bool matched = false;
        for (const char* op : two)
          if (s_.substr(i, 2) == op) {
            t.kind = Tok::kOp;
            t.text = op;
            i += 2;
            matched = true;
            break;
          }
        if (!matched) {
          switch (ch) {
            case '<':
            case '>':
            case '+':
            case '-':
              t.kind = Tok::kOp;
              break;
            case '(':
              t.kind = Tok::kLParen;
              break;
            case ')':
              t.kind = Tok::kRParen;
              break;
            case '[':
              t.kind = Tok::kLBracket;
              break;
            case ']':
              t.kind = Tok::kRBracket;
              break;
            case '.':
              t.kind = Tok::kDot;
              break;
            case ',':
              t.kind = Tok::kComma;
              break;
            case '=':
              fail(i, "use '==' to compare");
            case '&':
            case '|':
            case '!':
              fail(i, std::string("use 'and', 'or' and 'not' instead of '") + ch + "'");
            default:
              fail(i, std::string("unexpected character '") + ch + "'");
          }
          t.text = std::string(1, ch);
          ++i;
        }
      }
      toks_.push_back(std::move(t));
    }
    Token end;
    end.offset = s_.size();
    end.text = "end of expression";
    toks_.push_back(end);
  }

  const Token& peek(size_t k = 0) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  Token take() { return toks_[std::min(pos_++, toks_.size() - 1)]; }
  bool is_word(const Token& t, const char* w) const { return t.kind == Tok::kIdent && t.text == w; }
  void expect(Tok k, const char* what) {
    if (peek().kind != k)
      fail(peek().offset, std::string("expected ") + what + ", found '" + peek().text + "'");
    take();
  }

  NodePtr binary(std::string op, NodePtr l, NodePtr r) {
    auto b = std::make_shared<Binary>();
    b->op = std::move(op);
    b->l = std::move(l);
    b->r = std::move(r);
    return b;
  }

  NodePtr parse_or() {
    NodePtr l = parse_and();
    while (is_word(peek(), "or")) {
      take();
      l = binary("or", l, parse_and());
    }
    return l;
  }
  NodePtr parse_and() {
    NodePtr l = parse_not();
    while (is_word(peek(), "and")) {
      take();
      l = binary("and", l, parse_not());
    }
    return l;
  }
  NodePtr parse_not() {
    if (is_word(peek(), "not") && !is_word(peek(1), "in")) {
      take();
      auto n = std::make_shared<Not>();
      n->x = parse_not();
      return n;
    }
    return parse_cmp();
  }
  NodePtr parse_cmp() {
    NodePtr l = parse_add();
    const Token& t = peek();
    if (t.kind == Tok::kOp && (t.text == "==" || t.text == "!=" || t.text == "<" ||
                               t.text == "<=" || t.text == ">" || t.text == ">=")) {
      const std::string op = take().text;
      return binary(op, l, parse_add());
    }
    if (is_word(t, "in")) {
      take();
      return binary("in", l, parse_add());
    }
    if (is_word(t, "not") && is_word(peek(1), "in")) {
      take();
      take();
      return binary("not in", l, parse_add());
    }
    return l;
  }
  NodePtr parse_add() {
    NodePtr l = parse_unary();
    while (peek().kind == Tok::kOp && (peek().text == "+" || peek().text == "-")) {
      const std::string op = take().text;
      l = binary(op, l, parse_unary());
    }
    return l;
  }
  NodePtr parse_unary() {
    if (peek().kind == Tok::kOp && peek().text == "-") {
      take();
      auto n = std::make_shared<Neg>();
      n->x = parse_unary();
      return n;
    }
    return parse_postfix();
  }
  NodePtr parse_postfix() {
    NodePtr n = parse_primary();
    for (;;) {
      if (peek().kind == Tok::kDot) {
        take();
        if (peek().kind != Tok::kIdent)
          fail(peek().offset, "expected a field name after '.', found '" + peek().text + "'");
        std::string name = take().text;
        if (auto* p = dynamic_cast<const Path*>(n.get())) {
          auto longer = std::make_shared<Path>(*p);
          longer->members.push_back(std::move(name));
          n = longer;
        } else {
          auto m = std::make_shared<Member>();
          m->base = n;
          m->name = std::move(name);
          n = m;
        }
      } else if (peek().kind == Tok::kLBracket) {
        take();
        auto ix = std::make_shared<Index>();
        ix->base = n;
        ix->index = parse_or();
        expect(Tok::kRBracket, "']'");
        n = ix;
      } else {
        return n;
      }
    }
  }
  NodePtr parse_primary() {
    const Token t = take();
    switch (t.kind) {
      case Tok::kNumber: {
        char* end = nullptr;
        const double d = std::strtod(t.text.c_str(), &end);
        if (!end || *end != '\0') fail(t.offset, "invalid number '" + t.text + "'");
        if (std::floor(d) == d && t.text.find('.') == std::string::npos)
          return std::make_shared<Literal>(json(static_cast<int64_t>(d)));
        return std::make_shared<Literal>(json(d));
      }
      case Tok::kString:
        return std::make_shared<Literal>(json(t.text));
      case Tok::kLParen: {
        NodePtr n = parse_or();
        expect(Tok::kRParen, "')'");
        return n;
      }
      case Tok::kLBracket: {
        auto l = std::make_shared<ListLit>();
        if (peek().kind != Tok::kRBracket) {
          for (;;) {
            l->items.push_back(parse_or());
            if (peek().kind == Tok::kComma) {
              take();
              continue;
            }
            break;
          }
        }
        expect(Tok::kRBracket, "']'");
        return l;
      }
      case Tok::kIdent:
        return ident(t);
      default:
        fail(t.offset, "expected a value, found '" + t.text + "'");
    }
  }

  NodePtr ident(const Token& t) {
    if (t.text == "true") return std::make_shared<Literal>(json(true));
    if (t.text == "false") return std::make_shared<Literal>(json(false));
    if (t.text == "null") return std::make_shared<Literal>(json());
    if (t.text == "matches" && peek().kind == Tok::kLParen) {
      take();
      auto m = std::make_shared<Matches>();
      m->text = parse_or();
      expect(Tok::kComma, "',' and a regular expression");
      const Token re = peek();
      if (re.kind != Tok::kString)
        fail(re.offset, "matches() needs a quoted regular expression as its second argument");
      take();
      m->source = re.text;
      try {
        m->re = std::make_shared<const boost::regex>(re.text, boost::regex::ECMAScript);
      } catch (const boost::regex_error& ex) {
        fail(re.offset, "invalid regular expression '" + re.text + "': " + ex.what());
      }
      expect(Tok::kRParen, "')'");
      return m;
    }
    if (peek().kind == Tok::kLParen) {
      const auto& fns = functions();
      const auto it = fns.find(t.text);
      if (it == fns.end()) {
        std::string known;
        for (const auto& [k, v] : fns) known += (known.empty() ? "" : ", ") + k;
        fail(t.offset, "unknown function '" + t.text + "'; known: " + known);
      }
      take();
      auto call = std::make_shared<Call>();
      call->fn = it->second.fn;
      call->clock = t.text == "now" || t.text == "today";
      if (peek().kind != Tok::kRParen) {
        for (;;) {
          call->args.push_back(parse_or());
          if (peek().kind == Tok::kComma) {
            take();
            continue;
          }
          break;
        }
      }
      expect(Tok::kRParen, "')' or ','");
      const size_t n = call->args.size();
      if (n < it->second.min_args || n > it->second.max_args) {
        const auto& f = it->second;
        fail(t.offset,
             t.text + "() takes " +
                 (f.min_args == f.max_args
                      ? std::to_string(f.min_args)
                      : std::to_string(f.min_args) + " to " + std::to_string(f.max_args)) +
                 " argument" + (f.max_args == 1 ? "" : "s") + ", got " + std::to_string(n));
      }
      // Literal arguments checked now: regexes compile, system ids exist.
      if (t.text == "system" && o_.registry) {
        if (auto* lit = dynamic_cast<const Literal*>(call->args[0].get()))
          if (lit->v.is_string() && !o_.registry->find(lit->v.get<std::string>()))
            fail(t.offset, "unknown system '" + lit->v.get<std::string>() + "' (not in " +
                               o_.registry->file() + ")");
      }
      return call;
    }
    if (!event_roots().count(t.text) && !o_.extra_roots.count(t.text)) {
      std::string known;
      for (const auto& r : event_roots()) known += (known.empty() ? "" : ", ") + r;
      for (const auto& r : o_.extra_roots) known += ", " + r;
      fail(t.offset, "unknown name '" + t.text + "'; a path starts with one of: " + known);
    }
    auto r = std::make_shared<Path>();
    r->root = t.text;
    return r;
  }

  std::string_view s_;
  const CompileOptions& o_;
  std::vector<Token> toks_;
  size_t pos_ = 0;
};

}  // namespace

std::variant<Expr, ExprError> Expr::compile(std::string_view text, const CompileOptions& o) {
  Expr e;
  e.text_ = std::string(text);
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos)
    return ExprError{0, "empty expression"};
  try {
    Parser p(text, o);
    e.root_ = p.parse();
  } catch (const ParseError& pe) {
    return pe.e;
  }
  return e;
}

json Expr::eval(const EvalContext& c) const {
  return root_ ? root_->eval(c) : json();
}

bool Expr::test(const EvalContext& c) const {
  return truthy(eval(c));
}

ExprReads Expr::reads() const {
  ExprReads r;
  if (root_) root_->reads(r);
  return r;
}

bool Expr::reads_event() const {
  const ExprReads r = reads();
  return r.clock || std::any_of(r.roots.begin(), r.roots.end(),
                                [](const std::string& n) { return n != "system"; });
}

std::vector<Expr> Expr::conjuncts() const {
  std::vector<Expr> out;
  std::function<void(const NodePtr&)> walk = [&](const NodePtr& n) {
    if (const auto* b = dynamic_cast<const Binary*>(n.get()); b && b->op == "and") {
      walk(b->l);
      walk(b->r);
      return;
    }
    Expr e;
    e.text_ = text_;
    e.root_ = n;
    out.push_back(std::move(e));
  };
  if (root_) walk(root_);
  return out;
}

}  // namespace budstikke::route
