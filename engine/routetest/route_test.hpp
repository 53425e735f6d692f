#pragma once
// Route tests: YAML files beside the routes (routes/<route>.test.yaml) that say, for an
// input message, what the route must do. They run through the real codecs and route code,
// without Kafka:
//
//   route: epikrise-to-gp-and-municipality     # default: the route in <name>.yaml
//   tests:
//     - name: the GP and the municipality get the discharge summary
//       input: ../examples/messages/epikrise.xml    # or input_inline: |
//       edits: [{replace: "8100001", with: "8999999"}]  # the same input, changed
//       validate: true                              # XSD validation (when schemas are loaded)
//       expect:
//         matched: true                             # the filter lets it through
//         deliveries:                               # exactly these systems (only: false: at least)
//           fjordbyen-legesenter:
//             format: kith/epikrise/1.2
//             answers_sender: true
//             xpath: {"/MsgHead/MsgInfo/Receiver/Organisation/Ident/Id": "8100001"}
//             hl7:   {"PID-5-1": "Fjellheim"}        # terser paths for HL7 v2 outputs
//             json:  {"/type": "discharge_summary"} # JSON pointers for JSON outputs
//             contains: ["<Epikrise"]
//             golden: golden/epikrise-gp.xml        # whole output, volatile fields masked
//         failures: [{code: E21, reason: "no system"}]
//         rejected: {code: T02, reason: "TypeId"}   # the codec rejects the input
//
// An expected value is a string (equality with the first value found), a list (all values,
// in order), or a map: {contains: s}, {matches: regex}, {exists: bool}, {count: n}.

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/config/spec.hpp"
#include "engine/event/event.hpp"
#include "engine/registry/registry.hpp"
#include "engine/route/route.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::routetest {

struct Options {
  bool update_golden = false;  // write golden files from the actual outputs
  bool validate = true;        // default for tests that do not say
  std::string key_secret = "route-test-key-not-a-secret";
};

struct CaseResult {
  std::string file;
  std::string name;
  bool passed = false;
  bool skipped = false;               // could not run here (e.g. an XSD test without the XSDs)
  std::vector<std::string> problems;  // lines, diffs included
};

struct SuiteResult {
  std::vector<CaseResult> cases;
  config::Diagnostics diags;  // test files that could not be read (file:line:col)
  size_t files = 0;
  size_t passed() const;
  size_t failed() const;
  size_t skipped() const;
};

// The *.test.yaml files under the paths (files, or folders searched one level deep).
std::vector<std::string> find_test_files(const std::vector<std::string>& paths,
                                         config::Diagnostics& diags);

SuiteResult run_files(const std::vector<std::string>& files, const route::RouteSet& routes,
                      const registry::Registry& reg, const runtime::CodecRegistry& codecs,
                      const Options& o);

// Decodes a message as the engine would (deterministic event ids from `name`).
using Decoded = std::variant<std::vector<Event>, runtime::CodecRejection>;
Decoded decode_input(const std::string& bytes, const std::string& name,
                     const runtime::CodecRegistry& codecs, bool validate,
                     const std::string& key_secret);

// Values found in a rendered output by an XPath (XML), terser path (HL7 v2) or JSON pointer.
enum class Lookup { kXPath, kHl7, kJson };
Result<std::vector<std::string>> lookup(Lookup how, const std::string& payload,
                                        const std::string& path);

// A line diff (expected -> actual) with context, for failure reports; at most max_lines.
std::vector<std::string> line_diff(const std::string& expected, const std::string& actual,
                                   size_t max_lines = 60);

// Masks what differs on every render (message ids and times) before golden comparison.
std::string mask_volatile(const std::string& payload);

}  // namespace budstikke::routetest
