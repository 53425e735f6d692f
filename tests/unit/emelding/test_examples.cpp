// Every example under ../shared/standards/examples against the MANIFEST's xmllint verdict.
// valid -> decodes, validates, canonicalises; INVALID -> rejected T02 pointing at the defect
// (the element xmllint names, or its line); NOT WELL-FORMED -> rejected T01 at its line;
// n/a (SOAP/ebXML envelopes, registry responses: not e-meldinger) -> rejected T10.
// Exceptions are listed in tests/fixtures/emelding/manifest-exceptions.txt with a reason.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "adapters/emelding/codec.hpp"
#include "tests/support/test_env.hpp"
#include "tests/unit/emelding/manifest.hpp"

using namespace budstikke;
namespace fs = std::filesystem;

namespace {

// file -> expected outcome ("accept" | "T01" | "T02" | "T10"), with a reason.
std::map<std::string, std::string> exceptions() {
  std::map<std::string, std::string> out;
  std::ifstream in(testenv::source_dir() / "tests/fixtures/emelding/manifest-exceptions.txt");
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string file, outcome;
    ls >> file >> outcome;
    out[file] = outcome;
  }
  return out;
}

std::shared_ptr<const emelding::SchemaSet> schemas() {
  static auto set = [] {
    auto s = emelding::SchemaSet::load((testenv::standards_dir() / "xsd").string());
    return s.ok() ? *s : nullptr;
  }();
  return set;
}

}  // namespace

TEST(EmeldingExamples, EveryExampleMatchesTheManifest) {
  const auto manifest = testenv::standards_dir() / "MANIFEST.md";
  ASSERT_TRUE(fs::exists(manifest)) << manifest;
  const auto rows = testenv::read_manifest(manifest.string());
  ASSERT_GT(rows.size(), 400u);
  ASSERT_NE(schemas(), nullptr);
  const auto exc = exceptions();
  emelding::Decoder decoder(schemas());
  emelding::DecodeOptions opts;
  opts.key_secret = "manifest-test-secret";
  struct Tally {
    int total = 0;
    int pass = 0;
  };
  std::map<std::string, Tally> per_folder;
  std::vector<std::string> failures;
  int exceptions_used = 0;
  for (const auto& r : rows) {
    const auto path = testenv::standards_dir() / r.file;
    if (!fs::exists(path)) {
      failures.push_back(r.file + ": missing");
      continue;
    }
    const std::string bytes = testenv::read_file(path);
    auto result = decoder.decode(bytes, opts, fs::path(r.file).filename().string());
    const auto* ok = std::get_if<emelding::Decoded>(&result);
    const auto* rej = std::get_if<emelding::Rejection>(&result);
    std::string expected;
    if (r.verdict == "valid") expected = "accept";
    if (r.verdict == "INVALID") expected = "T02";
    if (r.verdict == "NOT WELL-FORMED") expected = "T01";
    if (r.verdict == "n/a") expected = "T10";
    if (auto it = exc.find(r.file); it != exc.end()) {
      expected = it->second;
      ++exceptions_used;
    }
    std::string got = ok ? "accept" : rej->code.code;
    bool pass = got == expected;
    std::string why;
    if (pass && ok) {
      const auto& e = ok->events.at(0);
      // Canonicalised: an id, a type, a message id, the original bytes, the key.
      pass = !e.event_id.empty() && !e.source.message_id.empty() && e.original &&
             e.original->data == bytes && e.key.size() == 66 && e.source.validated == true;
      if (!pass) why = "incomplete canonical event";
    }
    if (pass && rej && (expected == "T02" || expected == "T01") && r.line > 0 &&
        !exc.count(r.file)) {
      // The reason must point at the defect: xmllint's element, or a line close to its line.
      const bool names_element =
          !r.element.empty() && rej->reason.find("'" + r.element + "'") != std::string::npos;
      const bool near_line = rej->line > 0 && std::abs(rej->line - r.line) <= 3;
      pass = names_element || near_line;
      if (!pass)
        why = "reason does not point at the defect (xmllint: line " + std::to_string(r.line) +
              " element " + r.element + ")";
    }
    auto& t = per_folder[r.folder];
    ++t.total;
    if (pass) {
      ++t.pass;
    } else {
      failures.push_back(r.file + ": expected " + expected + ", got " + got +
                         (rej ? " (" + rej->reason + ")" : "") + (why.empty() ? "" : ": " + why));
    }
  }
  int total = 0;
  int passed = 0;
  std::printf("%-16s %6s %6s\n", "type", "pass", "total");
  for (const auto& [folder, t] : per_folder) {
    std::printf("%-16s %6d %6d\n", folder.c_str(), t.pass, t.total);
    total += t.total;
    passed += t.pass;
  }
  std::printf("%-16s %6d %6d  (%d listed exceptions)\n", "all", passed, total, exceptions_used);
  for (const auto& f : failures) ADD_FAILURE() << f;
  EXPECT_EQ(passed, total);
}
