#pragma once
// A compiled form of the loaded XSDs, and a validator over the light tree.
//
// Xerces stays the authority: it loads and checks the schemas (SchemaSet), and it gives the
// verdict and the precise error for every message this validator does not accept. What this
// adds is speed on the common path. At load time, the grammars Xerces built (element
// declarations, complex types, content-model particle trees, attribute uses, datatype
// validators) are compiled into deterministic automata over element-name ids and attribute
// tables; at run time the tree from fast_xml.hpp is validated against them without
// transcoding to UTF-16 or looking anything up by string.
//
// The validator is one-sided by construction: it says "valid" only when it is certain,
// and otherwise declines, sending the message down Xerces' path. Simple values it cannot
// decide natively (patterns, URIs, base64, bounded decimals, ...) are handed to the very
// Xerces datatype validator the schema defines. Constructs it does not model (xs:all, lax
// wildcards without a declaration, substitution groups, abstract elements, xsi:nil, ID
// and IDREF, identity constraints are off anyway) make it decline. Validation also
// normalises the tree the way Xerces' validating SAX2 parse reports it: white space of
// attribute values and simple content collapsed or replaced per type, default and fixed
// attributes added, white space between children of element-only content dropped.
//
// Thread safety: a Compiled schema is immutable and shared; a Validator belongs to one
// thread (one Decoder).

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <xercesc/util/XercesDefs.hpp>

#include "adapters/emelding/tree.hpp"

namespace XERCES_CPP_NAMESPACE {
class XMLGrammarPool;
}  // namespace XERCES_CPP_NAMESPACE

namespace budstikke::emelding::fastxsd {

struct Schema;  // the compiled model (fast_xsd.cpp)

class Compiled {
 public:
  // Compiles every grammar of a locked pool. Never fails: what cannot be compiled makes the
  // validator decline the messages that use it.
  static std::shared_ptr<const Compiled> build(XERCES_CPP_NAMESPACE::XMLGrammarPool* pool);
  ~Compiled();
  Compiled(const Compiled&) = delete;
  Compiled& operator=(const Compiled&) = delete;

  struct Stats {
    size_t elements = 0;                            // element declarations compiled
    size_t complex_types = 0;                       // complex types compiled
    size_t unsupported = 0;                         // complex types the validator declines
    std::map<std::string, size_t> unsupported_why;  // ... by reason
    size_t simple_types = 0;                        // simple types compiled
    size_t native_simple = 0;  // ... of which decided natively (no Xerces call)
    size_t dfa_states = 0;     // automaton states in all
  };
  const Stats& stats() const { return stats_; }
  const Schema& schema() const { return *schema_; }

 private:
  Compiled();
  std::unique_ptr<Schema> schema_;
  Stats stats_;
};

struct Outcome {
  bool valid = false;
  const char* declined = nullptr;  // why not (fast path only; Xerces then decides)
  const tree::Node* at = nullptr;  // where
};

class Validator {
 public:
  explicit Validator(std::shared_ptr<const Compiled> schema);
  ~Validator();
  Validator(const Validator&) = delete;
  Validator& operator=(const Validator&) = delete;

  // Validates and normalises the tree in place. On anything but valid the tree may be
  // half-normalised: parse again.
  Outcome validate(tree::Tree& t);
  // The interned names the caller's tree uses are about to be dropped.
  void forget_names();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace budstikke::emelding::fastxsd
