#include "adapters/emelding/fast_xsd.hpp"

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <set>

#include <xercesc/framework/XMLContentModel.hpp>
#include <xercesc/framework/XMLGrammarPool.hpp>
#include <xercesc/util/RefHash3KeysIdPool.hpp>
#include <xercesc/util/StringPool.hpp>
#include <xercesc/util/XMLUni.hpp>
#include <xercesc/validators/common/ContentSpecNode.hpp>
#include <xercesc/validators/datatype/DatatypeValidator.hpp>
#include <xercesc/validators/datatype/DatatypeValidatorFactory.hpp>
#include <xercesc/validators/datatype/ListDatatypeValidator.hpp>
#include <xercesc/validators/datatype/UnionDatatypeValidator.hpp>
#include <xercesc/validators/schema/ComplexTypeInfo.hpp>
#include <xercesc/validators/schema/SchemaAttDef.hpp>
#include <xercesc/validators/schema/SchemaElementDecl.hpp>
#include <xercesc/validators/schema/SchemaGrammar.hpp>
#include <xercesc/validators/schema/SchemaSymbols.hpp>

#include "adapters/emelding/utf.hpp"
#include "adapters/emelding/xml.hpp"

namespace budstikke::emelding::fastxsd {

namespace x = XERCES_CPP_NAMESPACE;

constexpr std::string_view kXsdNs = "http://www.w3.org/2001/XMLSchema";

// ---- the compiled model

enum class Native : uint8_t {
  kAny,  // every string of XML characters
  kBoolean,
  kDecimal,
  kInteger,
  kDouble,
  kFloat,
  kDateTime,
  kDate,
  kTime,
  kYear,
  kYearMonth,
};

enum class Mode : uint8_t { kNative, kEnum, kUnion, kXerces, kUnsupported };

struct SimpleType {
  Mode mode = Mode::kXerces;
  Native native = Native::kAny;
  int ws = 0;  // 0 preserve, 1 replace, 2 collapse
  bool int_has_lo = false, int_has_hi = false;
  int64_t int_lo = 0, int_hi = 0;
  std::vector<std::string> enums;
  std::vector<const SimpleType*> members;
  x::DatatypeValidator* dv = nullptr;
};

struct Wild {
  enum Kind : uint8_t { kAny, kOther, kList } kind = kAny;
  enum Process : uint8_t { kStrict, kLax, kSkip } process = kStrict;
  std::vector<std::string> nss;  // kOther: the one excluded; kList: the allowed
  bool matches(std::string_view ns) const {
    switch (kind) {
      case kAny:
        return true;
      case kOther:
        return !ns.empty() && ns != nss.front();
      case kList:
        return std::find(nss.begin(), nss.end(), ns) != nss.end();
    }
    return false;
  }
  bool operator==(const Wild& o) const {
    return kind == o.kind && process == o.process && nss == o.nss;
  }
};

struct Elem;
struct ComplexType;

struct Transition {
  int name_id;
  int next;
  const Elem* decl;
};
struct WildTransition {
  int wild;
  int next;
};
struct State {
  bool final = false;
  std::vector<Transition> on;  // sorted by name_id
  std::vector<WildTransition> wild;
};

struct AttrUse {
  std::string local;
  std::string ns;
  const SimpleType* type = nullptr;
  bool required = false;
  bool has_value = false;  // a default or fixed value
  bool fixed = false;
  std::string value;  // normalised
};

enum class Content : uint8_t { kEmpty, kSimple, kElementOnly, kMixed };

struct ComplexType {
  const char* unsupported = nullptr;
  bool abstract = false;
  bool any_type = false;
  Content content = Content::kEmpty;
  const SimpleType* simple = nullptr;
  std::vector<AttrUse> attrs;
  bool has_attr_wild = false;
  Wild attr_wild;
  std::vector<State> dfa;
  std::vector<Wild> wilds;
};

struct Elem {
  int name_id = -1;
  std::string local;
  std::string ns;
  const ComplexType* complex = nullptr;
  const SimpleType* simple = nullptr;
  const char* unsupported = nullptr;
  bool abstract = false;
  bool has_value = false;
  bool fixed = false;
  std::string value;
};

struct Schema {
  std::unordered_map<std::string, std::unordered_map<std::string, int>> name_ids;
  std::vector<const Elem*> global;                              // by name id
  std::unordered_map<std::string, const SimpleType*> builtins;  // XSD local name -> type
  std::deque<Elem> elems;
  std::deque<ComplexType> complex;
  std::deque<SimpleType> simple;
};

// ---- compiling

namespace {

std::string u8(const XMLCh* s) {
  return s ? xml::utf8(s) : std::string();
}

void normalise_ws(std::string& v, int ws) {
  if (ws == 0) return;
  for (char& c : v)
    if (c == '\t' || c == '\n' || c == '\r') c = ' ';
  if (ws == 1) return;
  size_t out = 0;
  bool space = true;  // drops leading spaces
  for (const char c : v) {
    if (c == ' ') {
      if (!space) v[out++] = ' ';
      space = true;
    } else {
      v[out++] = c;
      space = false;
    }
  }
  if (out > 0 && v[out - 1] == ' ') --out;
  v.resize(out);
}

// The built-in types decided natively; integers with their bounds. Every other built-in
// (language, NMTOKEN, Name, anyURI, base64Binary, duration, ...) goes to Xerces.
struct Builtin {
  const char* name;
  Native native;
  bool has_lo = false, has_hi = false;
  int64_t lo = 0, hi = 0;
};
constexpr Builtin kBuiltins[] = {
    {"string", Native::kAny},
    {"normalizedString", Native::kAny},
    {"token", Native::kAny},
    {"anySimpleType", Native::kAny},
    {"boolean", Native::kBoolean},
    {"decimal", Native::kDecimal},
    {"double", Native::kDouble},
    {"float", Native::kFloat},
    {"dateTime", Native::kDateTime},
    {"date", Native::kDate},
    {"time", Native::kTime},
    {"gYear", Native::kYear},
    {"gYearMonth", Native::kYearMonth},
    {"integer", Native::kInteger},
    {"long", Native::kInteger, true, true, INT64_MIN, INT64_MAX},
    {"int", Native::kInteger, true, true, INT32_MIN, INT32_MAX},
    {"short", Native::kInteger, true, true, INT16_MIN, INT16_MAX},
    {"byte", Native::kInteger, true, true, INT8_MIN, INT8_MAX},
    {"nonNegativeInteger", Native::kInteger, true, false, 0, 0},
    {"positiveInteger", Native::kInteger, true, false, 1, 0},
    {"nonPositiveInteger", Native::kInteger, false, true, 0, 0},
    {"negativeInteger", Native::kInteger, false, true, 0, -1},
    // Values of up to 18 digits lie below its upper bound; longer ones go to Xerces.
    {"unsignedLong", Native::kInteger, true, false, 0, 0},
    {"unsignedInt", Native::kInteger, true, true, 0, UINT32_MAX},
    {"unsignedShort", Native::kInteger, true, true, 0, UINT16_MAX},
    {"unsignedByte", Native::kInteger, true, true, 0, UINT8_MAX},
};

class Compiler {
 public:
  Compiler(x::XMLGrammarPool* pool, Schema& s, Compiled::Stats& stats)
      : pool_(pool), s_(s), stats_(stats) {}

  void run() {
    x::XMLStringPool* uris = pool_->getURIStringPool();
    uris_ = uris;
    // Heads of substitution groups: elements that stand for others are not modelled.
    std::vector<x::SchemaGrammar*> grammars;
    x::RefHashTableOfEnumerator<x::Grammar> ge = pool_->getGrammarEnumerator();
    while (ge.hasMoreElements()) {
      x::Grammar& g = ge.nextElement();
      if (g.getGrammarType() == x::Grammar::SchemaGrammarType)
        grammars.push_back(static_cast<x::SchemaGrammar*>(&g));
    }
    for (x::SchemaGrammar* g : grammars) {
      x::RefHash3KeysIdPoolEnumerator<x::SchemaElementDecl> en = g->getElemEnumerator();
      while (en.hasMoreElements()) {
        x::SchemaElementDecl& d = en.nextElement();
        if (const x::SchemaElementDecl* head = d.getSubstitutionGroupElem()) heads_.insert(head);
      }
    }
    // Every global element declaration (and, through them, everything reachable).
    for (x::SchemaGrammar* g : grammars) {
      x::RefHash3KeysIdPoolEnumerator<x::SchemaElementDecl> en = g->getElemEnumerator();
      while (en.hasMoreElements()) {
        x::SchemaElementDecl& d = en.nextElement();
        if (d.getEnclosingScope() != x::Grammar::TOP_LEVEL_SCOPE) continue;
        const Elem* e = elem(&d);
        if (static_cast<size_t>(e->name_id) >= s_.global.size())
          s_.global.resize(static_cast<size_t>(e->name_id) + 1, nullptr);
        s_.global[static_cast<size_t>(e->name_id)] = e;
      }
    }
    // Built-in simple types, for xsi:type.
    if (x::RefHashTableOf<x::DatatypeValidator>* reg =
            x::DatatypeValidatorFactory::getBuiltInRegistry()) {
      x::RefHashTableOfEnumerator<x::DatatypeValidator> en(reg);
      while (en.hasMoreElements()) {
        x::DatatypeValidator& dv = en.nextElement();
        s_.builtins[u8(dv.getTypeLocalName())] = simple(&dv);
      }
    }
    s_.global.resize(next_id_, nullptr);
  }

 private:
  std::string uri(unsigned int id) const {
    const XMLCh* u = uris_->getValueForId(id);
    return u ? xml::utf8(u) : std::string();
  }

  int name_id(const std::string& ns, const std::string& local) {
    auto& m = s_.name_ids[ns];
    const auto it = m.find(local);
    if (it != m.end()) return it->second;
    m.emplace(local, next_id_);
    return next_id_++;
  }

  // The facets a level defines, other than whiteSpace (and enumeration, kept apart).
  static int user_facets(const x::DatatypeValidator* d) {
    int n = 0;
    if (x::RefHashTableOf<x::KVStringPair>* f = d->getFacets()) {
      x::RefHashTableOfEnumerator<x::KVStringPair> en(f);
      while (en.hasMoreElements()) {
        const std::string key = u8(en.nextElement().getKey());
        if (key != "whiteSpace" && key != "enumeration") ++n;
      }
    }
    return n;
  }

  static bool is_builtin(const x::DatatypeValidator* d) {
    const XMLCh* u = d->getTypeUri();
    return u && xml::utf8(u) == kXsdNs && !d->getAnonymous();
  }

  const SimpleType* simple(x::DatatypeValidator* dv) {
    if (!dv) return nullptr;
    if (const auto it = simple_memo_.find(dv); it != simple_memo_.end()) return it->second;
    SimpleType& t = s_.simple.emplace_back();
    simple_memo_[dv] = &t;
    ++stats_.simple_types;
    t.dv = dv;
    t.ws = dv->getWSFacet();
    const auto type = dv->getType();
    using DV = x::DatatypeValidator;
    if (type == DV::ID || type == DV::IDREF || type == DV::ENTITY || type == DV::NOTATION ||
        type == DV::QName || type == DV::UnKnown) {
      t.mode = Mode::kUnsupported;  // need document-wide context
      return &t;
    }
    if (type == DV::List) {
      const auto* item = static_cast<x::ListDatatypeValidator*>(dv)->getItemTypeDTV();
      const SimpleType* it = simple(const_cast<DV*>(item));
      t.mode = it && it->mode != Mode::kUnsupported ? Mode::kXerces : Mode::kUnsupported;
      return &t;
    }
    if (type == DV::Union) {
      auto* members = static_cast<x::UnionDatatypeValidator*>(dv)->getMemberTypeValidators();
      bool native = user_facets(dv) == 0 && dv->getEnumString() == nullptr && members != nullptr;
      bool supported = members != nullptr;
      if (members)
        for (XMLSize_t i = 0; i < members->size(); ++i) {
          const SimpleType* m = simple(members->elementAt(i));
          t.members.push_back(m);
          if (!m || m->mode == Mode::kUnsupported) supported = false;
          if (!m || (m->mode != Mode::kNative && m->mode != Mode::kEnum)) native = false;
        }
      t.mode = !supported ? Mode::kUnsupported : native ? Mode::kUnion : Mode::kXerces;
      if (t.mode == Mode::kUnion) ++stats_.native_simple;
      return &t;
    }
    // Atomic: the facets of the user-defined levels, down to the first built-in type.
    int facets = 0;  // other than white space and enumeration
    bool enumerated = false;
    const DV* b = dv;
    while (b && !is_builtin(b)) {
      facets += user_facets(b);
      enumerated = enumerated || b->getEnumString() != nullptr;
      b = b->getBaseValidator();
    }
    if (!b) return &t;  // Xerces
    const std::string name = u8(b->getTypeLocalName());
    const Builtin* known = nullptr;
    for (const Builtin& bi : kBuiltins)
      if (name == bi.name) known = &bi;
    if (known) {
      t.native = known->native;
      t.int_has_lo = known->has_lo;
      t.int_has_hi = known->has_hi;
      t.int_lo = known->lo;
      t.int_hi = known->hi;
    }
    if (!known) return &t;       // Xerces
    if (facets != 0) return &t;  // Xerces: patterns, lengths, ranges, digits
    if (enumerated) {
      const auto* en = dv->getEnumString();
      if (t.native != Native::kAny || !en) return &t;  // Xerces
      for (XMLSize_t i = 0; i < en->size(); ++i) t.enums.push_back(u8(en->elementAt(i)));
      t.mode = Mode::kEnum;
    } else {
      t.mode = Mode::kNative;
    }
    ++stats_.native_simple;
    return &t;
  }

  const Elem* elem(const x::SchemaElementDecl* d) {
    if (const auto it = elem_memo_.find(d); it != elem_memo_.end()) return it->second;
    Elem& e = s_.elems.emplace_back();
    elem_memo_[d] = &e;
    ++stats_.elements;
    const x::QName* qn = d->getElementName();
    e.local = u8(qn->getLocalPart());
    e.ns = uri(qn->getURI());
    e.name_id = name_id(e.ns, e.local);
    const int flags = d->getMiscFlags();
    e.abstract = (flags & x::SchemaSymbols::XSD_ABSTRACT) != 0;
    e.fixed = (flags & x::SchemaSymbols::XSD_FIXED) != 0;
    if (const XMLCh* v = d->getDefaultValue()) {
      e.has_value = true;
      e.value = u8(v);
    }
    if (heads_.count(d)) e.unsupported = "substitution group head";
    if (const x::ComplexTypeInfo* ct = d->getComplexTypeInfo()) {
      e.complex = complex(ct);
    } else if (x::DatatypeValidator* dv = d->getDatatypeValidator()) {
      e.simple = simple(dv);
      if (e.has_value) normalise_ws(e.value, e.simple->ws);
    } else if (d->getModelType() == x::SchemaElementDecl::Any) {
      // type="anyType" (or no type at all): Xerces keeps no ComplexTypeInfo for it.
      e.complex = complex(x::ComplexTypeInfo::getAnyType(uris_->getId(x::XMLUni::fgZeroLenString)));
    } else {
      e.unsupported = "element without a type";
    }
    return &e;
  }

  const ComplexType* complex(const x::ComplexTypeInfo* ct) {
    if (const auto it = complex_memo_.find(ct); it != complex_memo_.end()) return it->second;
    ComplexType& c = s_.complex.emplace_back();
    complex_memo_[ct] = &c;
    ++stats_.complex_types;
    c.abstract = ct->getAbstract();
    c.any_type = u8(ct->getTypeLocalName()) == "anyType" && u8(ct->getTypeUri()) == kXsdNs;
    switch (ct->getContentType()) {
      case x::SchemaElementDecl::Empty:
        c.content = Content::kEmpty;
        break;
      case x::SchemaElementDecl::Simple:
        c.content = Content::kSimple;
        c.simple = simple(ct->getDatatypeValidator());
        if (!c.simple) c.unsupported = "simple content without a datatype";
        break;
      case x::SchemaElementDecl::Children:
      case x::SchemaElementDecl::ElementOnlyEmpty:
        c.content = Content::kElementOnly;
        break;
      case x::SchemaElementDecl::Mixed_Simple:
      case x::SchemaElementDecl::Mixed_Complex:
        c.content = Content::kMixed;
        break;
      default:
        c.unsupported = "content type";
    }
    // Attribute uses.
    const x::XMLAttDefList& list = ct->getAttDefList();
    for (XMLSize_t i = 0; i < list.getAttDefCount(); ++i) {
      const auto& ad = static_cast<const x::SchemaAttDef&>(list.getAttDef(i));
      const auto def = ad.getDefaultType();
      if (def == x::XMLAttDef::Prohibited) continue;  // present -> not valid here
      AttrUse u;
      u.local = u8(ad.getAttName()->getLocalPart());
      u.ns = uri(ad.getAttName()->getURI());
      u.type = simple(ad.getDatatypeValidator());
      if (!u.type) {
        c.unsupported = "attribute without a datatype";
        continue;
      }
      u.required = def == x::XMLAttDef::Required || def == x::XMLAttDef::Required_And_Fixed;
      u.fixed = def == x::XMLAttDef::Fixed || def == x::XMLAttDef::Required_And_Fixed;
      if ((u.fixed || def == x::XMLAttDef::Default) && ad.getValue()) {
        u.has_value = true;
        u.value = u8(ad.getValue());
        normalise_ws(u.value, u.type->ws);
      }
      c.attrs.push_back(std::move(u));
    }
    if (c.attrs.size() > 64) c.unsupported = "more than 64 attributes";
    if (const x::SchemaAttDef* w = ct->getAttWildCard()) {
      c.has_attr_wild = true;
      if (!wild_from_att(*w, c.attr_wild)) c.unsupported = "attribute wildcard";
    }
    if (c.content == Content::kElementOnly || c.content == Content::kMixed) {
      if (!automaton(ct->getContentSpec(), c)) {
        if (!c.unsupported) c.unsupported = "content model";
        c.dfa.clear();
      }
    }
    if (c.unsupported) {
      ++stats_.unsupported;
      ++stats_.unsupported_why[c.unsupported];
    }
    stats_.dfa_states += c.dfa.size();
    return &c;
  }

  bool wild_from_att(const x::SchemaAttDef& w, Wild& out) {
    switch (w.getDefaultType()) {
      case x::XMLAttDef::ProcessContents_Skip:
        out.process = Wild::kSkip;
        break;
      case x::XMLAttDef::ProcessContents_Lax:
        out.process = Wild::kLax;
        break;
      default:
        out.process = Wild::kStrict;
    }
    switch (w.getType()) {
      case x::XMLAttDef::Any_Any:
        out.kind = Wild::kAny;
        return true;
      case x::XMLAttDef::Any_Other:
        out.kind = Wild::kOther;
        out.nss.push_back(uri(w.getAttName()->getURI()));
        return true;
      case x::XMLAttDef::Any_List: {
        out.kind = Wild::kList;
        const auto* l = w.getNamespaceList();
        if (!l) return false;
        for (XMLSize_t i = 0; i < l->size(); ++i) out.nss.push_back(uri(l->elementAt(i)));
        return true;
      }
      default:
        return false;
    }
  }

  // ---- content models: particle tree -> NFA (with epsilon moves) -> DFA

  struct Term {
    bool wild = false;
    int name_id = -1;
    const Elem* decl = nullptr;
    int wild_index = -1;
  };
  struct NState {
    std::vector<int> eps;
    std::vector<std::pair<int, int>> edges;  // term, target
  };
  struct Nfa {
    std::vector<NState> s;
    std::vector<Term> terms;
    bool ok = true;
    const char* why = nullptr;
    int add() {
      if (s.size() > 20000) {
        ok = false;
        why = "content model too large";
        return 0;
      }
      s.emplace_back();
      return static_cast<int>(s.size() - 1);
    }
  };

  int term_for_elem(Nfa& n, const Elem* e) {
    for (size_t i = 0; i < n.terms.size(); ++i)
      if (!n.terms[i].wild && n.terms[i].decl == e) return static_cast<int>(i);
    n.terms.push_back({false, e->name_id, e, -1});
    return static_cast<int>(n.terms.size() - 1);
  }
  int term_for_wild(Nfa& n, ComplexType& c, const Wild& w) {
    int wi = -1;
    for (size_t i = 0; i < c.wilds.size(); ++i)
      if (c.wilds[i] == w) wi = static_cast<int>(i);
    if (wi < 0) {
      c.wilds.push_back(w);
      wi = static_cast<int>(c.wilds.size() - 1);
    }
    for (size_t i = 0; i < n.terms.size(); ++i)
      if (n.terms[i].wild && n.terms[i].wild_index == wi) return static_cast<int>(i);
    n.terms.push_back({true, -1, nullptr, wi});
    return static_cast<int>(n.terms.size() - 1);
  }

  int edge(Nfa& n, int from, int term) {
    const int to = n.add();
    if (!n.ok) return 0;
    n.s[static_cast<size_t>(from)].edges.push_back({term, to});
    return to;
  }
  void eps(Nfa& n, int from, int to) {
    if (n.ok) n.s[static_cast<size_t>(from)].eps.push_back(to);
  }

  // The node with its own minOccurs/maxOccurs.
  int build(Nfa& n, ComplexType& c, const x::ContentSpecNode* node, int from, int depth) {
    if (!n.ok) return 0;
    if (!node) return from;
    if (depth > 200) {
      n.ok = false;
      n.why = "content model too deep";
      return 0;
    }
    const int min = node->getMinOccurs();
    const int max = node->getMaxOccurs();  // -1: unbounded
    if (min < 0 || (max >= 0 && max < min) || min > 1000 || max > 1000) {
      n.ok = false;
      n.why = "occurrence bounds";
      return 0;
    }
    int at = from;
    for (int i = 0; i < min && n.ok; ++i) at = core(n, c, node, at, depth);
    if (max < 0) {
      const int loop = n.add();
      eps(n, at, loop);
      const int end = core(n, c, node, loop, depth);
      eps(n, end, loop);
      at = loop;
    } else {
      for (int i = min; i < max && n.ok; ++i) {
        const int end = core(n, c, node, at, depth);
        const int join = n.add();
        eps(n, at, join);
        eps(n, end, join);
        at = join;
      }
    }
    return at;
  }

  int core(Nfa& n, ComplexType& c, const x::ContentSpecNode* node, int from, int depth) {
    using CSN = x::ContentSpecNode;
    if (!n.ok) return 0;
    switch (node->getType()) {
      case CSN::Leaf: {
        const x::QName* q = node->getElement();
        if (q && (q->getURI() == x::XMLContentModel::gEpsilonFakeId ||
                  q->getURI() == x::XMLElementDecl::fgPCDataElemId))
          return from;
        const auto* d = static_cast<const x::SchemaElementDecl*>(node->getElementDecl());
        if (!d) {
          n.ok = false;
          n.why = "particle without a declaration";
          return 0;
        }
        const Elem* e = elem(d);
        if (e->abstract || heads_.count(d)) {
          n.ok = false;
          n.why = "abstract element or substitution group";
          return 0;
        }
        return edge(n, from, term_for_elem(n, e));
      }
      case CSN::ZeroOrOne: {
        const int end = build(n, c, node->getFirst(), from, depth + 1);
        const int join = n.add();
        eps(n, from, join);
        eps(n, end, join);
        return join;
      }
      case CSN::ZeroOrMore: {
        const int loop = n.add();
        eps(n, from, loop);
        const int end = build(n, c, node->getFirst(), loop, depth + 1);
        eps(n, end, loop);
        return loop;
      }
      case CSN::OneOrMore: {
        const int first = build(n, c, node->getFirst(), from, depth + 1);
        const int loop = n.add();
        eps(n, first, loop);
        const int end = build(n, c, node->getFirst(), loop, depth + 1);
        eps(n, end, loop);
        return loop;
      }
      case CSN::Choice:
      case CSN::ModelGroupChoice:
      case CSN::Any_NS_Choice: {
        const int a = build(n, c, node->getFirst(), from, depth + 1);
        const int join = n.add();
        eps(n, a, join);
        if (node->getSecond()) {
          const int b = build(n, c, node->getSecond(), from, depth + 1);
          eps(n, b, join);
        }
        return join;
      }
      case CSN::Sequence:
      case CSN::ModelGroupSequence: {
        const int a = build(n, c, node->getFirst(), from, depth + 1);
        return node->getSecond() ? build(n, c, node->getSecond(), a, depth + 1) : a;
      }
      case CSN::Any:
      case CSN::Any_Lax:
      case CSN::Any_Skip:
      case CSN::Any_Other:
      case CSN::Any_Other_Lax:
      case CSN::Any_Other_Skip:
      case CSN::Any_NS:
      case CSN::Any_NS_Lax:
      case CSN::Any_NS_Skip: {
        const int t = node->getType();
        Wild w;
        const int base = t & 0x0F;  // Any 6, Any_Other 7, Any_NS 8
        w.process = t >= 32 ? Wild::kSkip : t >= 16 ? Wild::kLax : Wild::kStrict;
        if (base == CSN::Any) {
          w.kind = Wild::kAny;
        } else if (base == CSN::Any_Other) {
          w.kind = Wild::kOther;
          w.nss.push_back(uri(node->getElement()->getURI()));
        } else {
          w.kind = Wild::kList;
          w.nss.push_back(uri(node->getElement()->getURI()));
        }
        return edge(n, from, term_for_wild(n, c, w));
      }
      default:
        n.ok = false;
        n.why = "xs:all or another particle kind";
        return 0;
    }
  }

  static void closure(const Nfa& n, std::vector<int>& set) {
    std::vector<int> stack(set.begin(), set.end());
    std::vector<bool> seen(n.s.size(), false);
    for (int v : set) seen[static_cast<size_t>(v)] = true;
    while (!stack.empty()) {
      const int v = stack.back();
      stack.pop_back();
      for (int w : n.s[static_cast<size_t>(v)].eps)
        if (!seen[static_cast<size_t>(w)]) {
          seen[static_cast<size_t>(w)] = true;
          set.push_back(w);
          stack.push_back(w);
        }
    }
    std::sort(set.begin(), set.end());
  }

  bool automaton(const x::ContentSpecNode* spec, ComplexType& c) {
    Nfa n;
    const int start = n.add();
    const int accept = build(n, c, spec, start, 0);
    if (!n.ok) {
      c.unsupported = n.why;
      return false;
    }
    std::map<std::vector<int>, int> ids;
    std::vector<std::vector<int>> sets;
    std::vector<int> s0{start};
    closure(n, s0);
    ids[s0] = 0;
    sets.push_back(s0);
    c.dfa.emplace_back();
    for (size_t i = 0; i < sets.size(); ++i) {
      if (sets.size() > 4096) {
        c.unsupported = "content model automaton too large";
        return false;
      }
      const std::vector<int> cur = sets[i];
      std::map<int, std::vector<int>> by_term;
      bool final = false;
      for (int v : cur) {
        if (v == accept) final = true;
        for (const auto& [term, to] : n.s[static_cast<size_t>(v)].edges)
          by_term[term].push_back(to);
      }
      c.dfa[i].final = final;
      for (auto& [term, targets] : by_term) {
        closure(n, targets);
        targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
        auto [it, added] = ids.emplace(targets, static_cast<int>(sets.size()));
        if (added) {
          sets.push_back(targets);
          c.dfa.emplace_back();
        }
        const Term& t = n.terms[static_cast<size_t>(term)];
        State& st = c.dfa[i];
        if (t.wild) {
          st.wild.push_back({t.wild_index, it->second});
        } else {
          for (const Transition& tr : st.on)
            if (tr.name_id == t.name_id) {
              c.unsupported = "one name, two declarations";  // not UPA-clean
              return false;
            }
          st.on.push_back({t.name_id, it->second, t.decl});
        }
      }
      State& st = c.dfa[i];
      std::sort(st.on.begin(), st.on.end(),
                [](const Transition& a, const Transition& b) { return a.name_id < b.name_id; });
      // An element that a wildcard of the same state could also take: not modelled.
      for (const Transition& tr : st.on)
        for (const WildTransition& w : st.wild)
          if (c.wilds[static_cast<size_t>(w.wild)].matches(tr.decl->ns)) {
            c.unsupported = "element and wildcard overlap";
            return false;
          }
    }
    return true;
  }

  x::XMLGrammarPool* pool_;
  x::XMLStringPool* uris_ = nullptr;
  Schema& s_;
  Compiled::Stats& stats_;
  int next_id_ = 0;
  std::set<const x::SchemaElementDecl*> heads_;
  std::map<const x::DatatypeValidator*, const SimpleType*> simple_memo_;
  std::map<const x::SchemaElementDecl*, const Elem*> elem_memo_;
  std::map<const x::ComplexTypeInfo*, const ComplexType*> complex_memo_;
};

}  // namespace

Compiled::Compiled() : schema_(std::make_unique<Schema>()) {}
Compiled::~Compiled() = default;

std::shared_ptr<const Compiled> Compiled::build(x::XMLGrammarPool* pool) {
  std::shared_ptr<Compiled> c(new Compiled());
  if (pool) Compiler(pool, *c->schema_, c->stats_).run();
  return c;
}

// ---- values

namespace {

inline bool digit(char c) {
  return c >= '0' && c <= '9';
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!digit(c)) return false;
  return true;
}

int two(std::string_view s, size_t at) {
  return (s[at] - '0') * 10 + (s[at + 1] - '0');
}

bool leap(int y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

int days_in(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// "YYYY" with exactly four digits, 0001-9999 (others: Xerces decides).
bool year4(std::string_view s, int& y) {
  if (s.size() != 4 || !all_digits(s)) return false;
  y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
  return y > 0;
}

// Optional time zone at the end: Z, or +hh:mm / -hh:mm. Removes it from s.
bool zone(std::string_view& s) {
  if (!s.empty() && s.back() == 'Z') {
    s.remove_suffix(1);
    return true;
  }
  if (s.size() >= 6 && (s[s.size() - 6] == '+' || s[s.size() - 6] == '-') &&
      s[s.size() - 3] == ':') {
    const std::string_view z = s.substr(s.size() - 5);
    if (!digit(z[0]) || !digit(z[1]) || !digit(z[3]) || !digit(z[4])) return false;
    const int hh = two(z, 0);
    const int mm = two(z, 3);
    if (hh > 13 || mm > 59) return false;  // 14:00 and beyond: Xerces decides
    s.remove_suffix(6);
  }
  return true;
}

bool date_part(std::string_view s, bool with_day) {
  // YYYY-MM[-DD]
  const size_t need = with_day ? 10 : 7;
  if (s.size() != need || s[4] != '-' || (with_day && s[7] != '-')) return false;
  int y;
  if (!year4(s.substr(0, 4), y)) return false;
  if (!digit(s[5]) || !digit(s[6])) return false;
  const int m = two(s, 5);
  if (m < 1 || m > 12) return false;
  if (!with_day) return true;
  if (!digit(s[8]) || !digit(s[9])) return false;
  const int d = two(s, 8);
  return d >= 1 && d <= days_in(y, m);
}

bool time_part(std::string_view s) {
  // hh:mm:ss(.s+)?
  if (s.size() < 8 || s[2] != ':' || s[5] != ':') return false;
  for (size_t i : {0, 1, 3, 4, 6, 7})
    if (!digit(s[i])) return false;
  if (two(s, 0) > 23 || two(s, 3) > 59 || two(s, 6) > 59) return false;
  if (s.size() == 8) return true;
  return s[8] == '.' && all_digits(s.substr(9));
}

bool decimal_ok(std::string_view v) {
  if (!v.empty() && v[0] == '-') v.remove_prefix(1);
  const size_t dot = v.find('.');
  if (dot == std::string_view::npos) return all_digits(v);
  return all_digits(v.substr(0, dot)) && all_digits(v.substr(dot + 1));
}

bool double_ok(std::string_view v, bool is_float) {
  size_t e = v.find_first_of("eE");
  std::string_view mant = v.substr(0, e);
  if (!decimal_ok(mant)) return false;
  std::string_view m = mant;
  if (!m.empty() && m[0] == '-') m.remove_prefix(1);
  const size_t int_digits = std::min(m.find('.'), m.size());
  if (int_digits > (is_float ? 30u : 300u)) return false;
  if (e == std::string_view::npos) return true;
  if (is_float) return false;  // exponents of floats: Xerces decides (range)
  std::string_view ex = v.substr(e + 1);
  if (!ex.empty() && ex[0] == '-') ex.remove_prefix(1);
  return ex.size() <= 2 && all_digits(ex) && int_digits <= 100;
}

bool integer_ok(const SimpleType& t, std::string_view v) {
  bool neg = false;
  if (!v.empty() && v[0] == '-') {
    neg = true;
    v.remove_prefix(1);
  }
  if (!all_digits(v)) return false;
  if (!t.int_has_lo && !t.int_has_hi) return true;
  size_t z = 0;
  while (z + 1 < v.size() && v[z] == '0') ++z;
  v.remove_prefix(z);
  if (v.size() > 18) return false;  // Xerces decides
  int64_t n = 0;
  for (char c : v) n = n * 10 + (c - '0');
  if (neg) n = -n;
  if (t.int_has_lo && n < t.int_lo) return false;
  if (t.int_has_hi && n > t.int_hi) return false;
  return true;
}

bool native_ok(const SimpleType& t, std::string_view v) {
  switch (t.native) {
    case Native::kAny:
      return true;
    case Native::kBoolean:
      return v == "true" || v == "false" || v == "1" || v == "0";
    case Native::kDecimal:
      return decimal_ok(v);
    case Native::kInteger:
      return integer_ok(t, v);
    case Native::kDouble:
      return double_ok(v, false);
    case Native::kFloat:
      return double_ok(v, true);
    case Native::kDateTime: {
      if (!zone(v)) return false;
      const size_t tpos = v.find('T');
      return tpos == 10 && date_part(v.substr(0, 10), true) && time_part(v.substr(11));
    }
    case Native::kDate:
      return zone(v) && date_part(v, true);
    case Native::kTime:
      return zone(v) && time_part(v);
    case Native::kYear: {
      int y;
      return zone(v) && year4(v, y);
    }
    case Native::kYearMonth:
      return zone(v) && date_part(v, false);
  }
  return false;
}

}  // namespace

// ---- validating

struct Validator::Impl {
  std::shared_ptr<const Compiled> compiled;
  const Schema* s = nullptr;
  std::unordered_map<const char*, std::unordered_map<const char*, int>> ids;  // ns -> name -> id
  std::u16string buf;
  std::string scratch;
  Outcome out;

  bool decline(const char* why, const tree::Node* at) {
    if (!out.declined) {
      out.declined = why;
      out.at = at;
    }
    return false;
  }

  int id_of(const tree::Node* n) {
    auto& inner = ids[n->ns.data()];
    if (const auto it = inner.find(n->name.data()); it != inner.end()) return it->second;
    int id = -1;
    if (const auto ns = s->name_ids.find(std::string(n->ns)); ns != s->name_ids.end())
      if (const auto l = ns->second.find(std::string(n->name)); l != ns->second.end())
        id = l->second;
    inner.emplace(n->name.data(), id);
    return id;
  }

  bool xerces_ok(const SimpleType& t, const std::string& v) {
    buf.clear();
    utf::append_utf16(buf, v);  // the parser has checked the UTF-8
    try {
      t.dv->validate(reinterpret_cast<const XMLCh*>(buf.c_str()), nullptr,
                     x::XMLPlatformUtils::fgMemoryManager);
      return true;
    } catch (...) {
      return false;
    }
  }

  // Is v (already normalised for t) a valid value of t?
  bool value_ok(const SimpleType& t, const std::string& v) {
    switch (t.mode) {
      case Mode::kNative:
        if (native_ok(t, v)) return true;
        return xerces_ok(t, v);
      case Mode::kEnum:
        if (std::find(t.enums.begin(), t.enums.end(), v) != t.enums.end()) return true;
        return xerces_ok(t, v);
      case Mode::kUnion:
        for (const SimpleType* m : t.members) {
          scratch = v;
          normalise_ws(scratch, m->ws);
          if (m->mode == Mode::kNative && native_ok(*m, scratch)) return true;
          if (m->mode == Mode::kEnum &&
              std::find(m->enums.begin(), m->enums.end(), scratch) != m->enums.end())
            return true;
        }
        return xerces_ok(t, v);
      case Mode::kXerces:
        return xerces_ok(t, v);
      case Mode::kUnsupported:
        return false;
    }
    return false;
  }

  bool simple_value(const SimpleType* t, std::string& v, const tree::Node* at) {
    if (t->mode == Mode::kUnsupported) return decline("datatype needs document context", at);
    normalise_ws(v, t->ws);
    if (!value_ok(*t, v)) return decline("value not valid for its type", at);
    return true;
  }

  static bool blank(const std::string& s) {
    for (char c : s)
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') return false;
    return true;
  }

  bool element(tree::Node* n, const Elem* d) {
    if (d->unsupported) return decline(d->unsupported, n);
    if (d->abstract) return decline("abstract element", n);
    if (n->has_xsi_nil) return decline("xsi:nil", n);
    const ComplexType* ct = d->complex;
    const SimpleType* st = d->simple;
    if (n->has_xsi_type) {
      // Only a built-in simple type in place of anyType (what dialogmelding senders do).
      if (!ct || !ct->any_type || n->xsi_type_ns != kXsdNs)
        return decline("xsi:type other than a built-in type for anyType", n);
      const auto it = s->builtins.find(std::string(n->xsi_type_local));
      if (it == s->builtins.end()) return decline("unknown xsi:type", n);
      ct = nullptr;
      st = it->second;
    }
    if (st) {
      if (!n->attrs.empty()) return decline("attributes on a simple-typed element", n);
      if (!n->kids.empty()) return decline("children of a simple-typed element", n);
      return text_value(n, st, d);
    }
    if (!ct) return decline("no type", n);
    if (ct->unsupported) return decline(ct->unsupported, n);
    if (ct->abstract) return decline("abstract type", n);
    if (!attributes(n, *ct)) return false;
    switch (ct->content) {
      case Content::kEmpty:
        if (!n->kids.empty()) return decline("children in empty content", n);
        if (!n->text.empty()) return decline("character data in empty content", n);
        return true;
      case Content::kSimple:
        if (!n->kids.empty()) return decline("children in simple content", n);
        return text_value(n, ct->simple, d);
      case Content::kElementOnly:
        if (!blank(n->text)) return decline("character data in element-only content", n);
        n->text.clear();  // Xerces reports it as ignorable white space
        break;
      case Content::kMixed:
        break;
    }
    if (d->has_value) return decline("element default or fixed value on complex content", n);
    return children(n, *ct);
  }

  bool text_value(tree::Node* n, const SimpleType* st, const Elem* d) {
    if (d->has_value) {
      if (n->text.empty()) return decline("empty element with a default or fixed value", n);
      if (!simple_value(st, n->text, n)) return false;
      if (d->fixed && n->text != d->value) return decline("not the fixed value", n);
      return true;
    }
    return simple_value(st, n->text, n);
  }

  bool attributes(tree::Node* n, const ComplexType& ct) {
    uint64_t seen = 0;
    const size_t given = n->attrs.size();
    for (size_t i = 0; i < given; ++i) {
      const std::string_view local = n->attrs[i].first;
      const std::string_view ns = n->attr_ns[i];
      size_t u = 0;
      for (; u < ct.attrs.size(); ++u)
        if (ct.attrs[u].local == local && ct.attrs[u].ns == ns) break;
      if (u == ct.attrs.size()) {
        if (ct.has_attr_wild && ct.attr_wild.matches(ns) && ct.attr_wild.process == Wild::kSkip)
          continue;
        return decline("attribute not declared", n);
      }
      const AttrUse& use = ct.attrs[u];
      seen |= uint64_t{1} << u;
      if (!simple_value(use.type, n->attrs[i].second, n)) return false;
      if (use.fixed && n->attrs[i].second != use.value) return decline("not the fixed value", n);
    }
    for (size_t u = 0; u < ct.attrs.size(); ++u) {
      if (seen & (uint64_t{1} << u)) continue;
      const AttrUse& use = ct.attrs[u];
      if (use.required) return decline("required attribute missing", n);
      if (use.has_value) {
        // Xerces reports defaulted attributes; the tree keeps them as its SAX2 builder does.
        if (!use.ns.empty()) return decline("defaulted qualified attribute", n);
        n->attrs.emplace_back(std::string_view(use.local), use.value);
        n->attr_ns.emplace_back();
      }
    }
    return true;
  }

  const Elem* global_of(int id) const {
    return id >= 0 && static_cast<size_t>(id) < s->global.size()
               ? s->global[static_cast<size_t>(id)]
               : nullptr;
  }

  bool declared_inside(const tree::Node* n) {
    for (const tree::Node* k : n->kids)
      if (global_of(id_of(k)) || declared_inside(k)) return true;
    return false;
  }

  bool children(tree::Node* n, const ComplexType& ct) {
    int state = 0;
    for (tree::Node* k : n->kids) {
      const State& st = ct.dfa[static_cast<size_t>(state)];
      const int id = id_of(k);
      const Transition* tr = nullptr;
      if (id >= 0) {
        const auto it = std::lower_bound(st.on.begin(), st.on.end(), id,
                                         [](const Transition& t, int v) { return t.name_id < v; });
        if (it != st.on.end() && it->name_id == id) tr = &*it;
      }
      if (tr) {
        state = tr->next;
        if (!element(k, tr->decl)) return false;
        continue;
      }
      const WildTransition* wt = nullptr;
      for (const WildTransition& w : st.wild)
        if (ct.wilds[static_cast<size_t>(w.wild)].matches(k->ns)) {
          if (wt) return decline("two wildcards match", k);
          wt = &w;
        }
      if (!wt) return decline("element not allowed here", k);
      state = wt->next;
      const Wild& w = ct.wilds[static_cast<size_t>(wt->wild)];
      if (w.process == Wild::kSkip) continue;
      const Elem* g = global_of(id);
      if (!g) {
        // Lax, and nothing declares it: Xerces assesses the subtree without validation, as
        // this parse already has it, provided nothing inside is declared either (it could
        // then be validated on its own).
        if (w.process == Wild::kLax && !declared_inside(k)) continue;
        return decline("no global declaration for a wildcard's element", k);
      }
      if (!element(k, g)) return false;
    }
    if (!ct.dfa[static_cast<size_t>(state)].final) return decline("content incomplete", n);
    return true;
  }
};

Validator::Validator(std::shared_ptr<const Compiled> schema) : impl_(std::make_unique<Impl>()) {
  impl_->compiled = std::move(schema);
  impl_->s = &impl_->compiled->schema();
}

Validator::~Validator() = default;

void Validator::forget_names() {
  impl_->ids.clear();
}

Outcome Validator::validate(tree::Tree& t) {
  Impl& m = *impl_;
  m.out = Outcome{};
  tree::Node* root = t.root;
  if (t.odd_schema_location) {
    m.decline("xsi:schemaLocation not in pairs", root);
    return m.out;
  }
  if (!root) {
    m.decline("no root", nullptr);
    return m.out;
  }
  const int id = m.id_of(root);
  const Elem* g = id >= 0 && static_cast<size_t>(id) < m.s->global.size()
                      ? m.s->global[static_cast<size_t>(id)]
                      : nullptr;
  if (!g) {
    m.decline("no global declaration for the root", root);
    return m.out;
  }
  m.out.valid = m.element(root, g);
  if (!m.out.valid && !m.out.declined) m.decline("not valid", root);
  return m.out;
}

}  // namespace budstikke::emelding::fastxsd
