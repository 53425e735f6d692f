// The fast decode path (native parser + compiled validator) against Xerces, the authority.
//
// For every example message, and for mutations of them, the two paths must agree: the same
// verdict (accepted, or rejected with the same code and reason) and, when accepted, the same
// tree (names, namespaces, attributes, text), hence the same canonical event. The fast path
// may decline whatever it likes (Xerces then decides); what it accepts must be exactly right.
// The tests also print, and bound, how much of the corpus the fast path takes.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>

#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/fast_xml.hpp"
#include "adapters/emelding/fast_xsd.hpp"
#include "adapters/emelding/tree.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<const emelding::SchemaSet> schemas() {
  static auto set = [] {
    auto s = emelding::SchemaSet::load((testenv::standards_dir() / "xsd").string());
    return s.ok() ? *s : nullptr;
  }();
  return set;
}

std::vector<fs::path> examples() {
  std::vector<fs::path> out;
  for (const auto& e : fs::recursive_directory_iterator(testenv::standards_dir() / "examples"))
    if (e.is_regular_file() && e.path().extension() == ".xml") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

// A canonical text of a tree: every element with its namespace, its attributes sorted, and
// its text, so two trees compare equal exactly when the decoder would see the same message.
void dump(const emelding::tree::Node* n, std::string& out, int depth) {
  out.append(static_cast<size_t>(depth) * 2, ' ');
  out += '{';
  out += n->ns;
  out += '}';
  out += n->name;
  std::vector<std::pair<std::string, std::string>> attrs;
  for (const auto& [k, v] : n->attrs) attrs.emplace_back(std::string(k), v);
  std::stable_sort(attrs.begin(), attrs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, v] : attrs) out += " " + k + "=[" + v + "]";
  out += " text=[" + n->text + "]\n";
  for (const auto* k : n->kids) dump(k, out, depth + 1);
}

std::string dump(const emelding::tree::Tree& t) {
  std::string out;
  if (t.root) dump(t.root, out, 0);
  return out;
}

struct Verdict {
  bool accepted = false;
  std::string code;
  std::string reason;
  std::string tree;
  std::string body;
};

Verdict run(emelding::Decoder& d, const std::string& bytes, bool validate,
            const std::string& name) {
  emelding::DecodeOptions opts;
  opts.key_secret = "fast-path-test-secret";
  opts.validate = validate;
  auto r = d.decode(bytes, opts, name);
  Verdict v;
  if (auto* ok = std::get_if<emelding::Decoded>(&r)) {
    v.accepted = true;
    v.tree = dump(d.last_tree());
    v.body = to_json(ok->events.front())["body"].dump();
  } else {
    const auto& rej = std::get<emelding::Rejection>(r);
    v.code = rej.code.code;
    v.reason = rej.reason;
  }
  return v;
}

// Compares the two paths on one document; returns an empty string when they agree.
std::string compare(emelding::Decoder& fast, emelding::Decoder& xerces, const std::string& bytes,
                    bool validate, const std::string& name) {
  const Verdict a = run(fast, bytes, validate, name);
  const Verdict b = run(xerces, bytes, validate, name);
  if (a.accepted != b.accepted)
    return name + ": fast path " + (a.accepted ? "accepted" : "rejected (" + a.reason + ")") +
           ", Xerces " + (b.accepted ? "accepted" : "rejected (" + b.reason + ")");
  if (!a.accepted) {
    if (a.code != b.code || a.reason != b.reason)
      return name + ": rejections differ: " + a.code + " " + a.reason + " | " + b.code + " " +
             b.reason;
    return {};
  }
  if (a.tree != b.tree) {
    // The first differing line.
    size_t i = 0;
    while (i < a.tree.size() && i < b.tree.size() && a.tree[i] == b.tree[i]) ++i;
    const size_t ls = a.tree.rfind('\n', i) == std::string::npos ? 0 : a.tree.rfind('\n', i) + 1;
    return name + ": trees differ at\n  fast:   " + a.tree.substr(ls, a.tree.find('\n', i) - ls) +
           "\n  xerces: " + b.tree.substr(ls, b.tree.find('\n', i) - ls);
  }
  if (a.body != b.body) return name + ": canonical bodies differ";
  return {};
}

}  // namespace

TEST(FastPath, AgreesWithXercesOnEveryExample) {
  ASSERT_NE(schemas(), nullptr);
  emelding::Decoder fast(schemas());
  emelding::Decoder xerces(schemas());
  xerces.set_fast_path(false);
  std::vector<std::string> diffs;
  std::map<std::string, std::pair<int, int>> per_folder;  // accepted: fast / all
  std::map<std::string, int> declined_why;
  size_t accepted = 0;
  for (const auto& p : examples()) {
    const std::string bytes = testenv::read_file(p);
    const std::string name = p.filename().string();
    for (const bool validate : {true, false}) {
      const auto before = fast.path_stats();
      if (auto d = compare(fast, xerces, bytes, validate, name); !d.empty())
        diffs.push_back((validate ? "[validating] " : "[not validating] ") + d);
      const auto after = fast.path_stats();
      if (!validate) continue;
      const auto v = run(xerces, bytes, true, name);
      if (!v.accepted) continue;
      ++accepted;
      const std::string folder =
          fs::relative(p, testenv::standards_dir() / "examples").begin()->string();
      auto& t = per_folder[folder];
      ++t.second;
      // compare() ran the fast decoder once for this document.
      if (after.fast > before.fast)
        ++t.first;
      else
        ++declined_why[after.last_declined ? after.last_declined : "?"];
    }
  }
  size_t fast_total = 0;
  for (const auto& [folder, t] : per_folder) {
    std::printf("  %-14s valid examples: %3d, on the fast path: %3d\n", folder.c_str(), t.second,
                t.first);
    fast_total += static_cast<size_t>(t.first);
  }
  std::printf("  fast path took %zu of %zu valid examples\n", fast_total, accepted);
  for (const auto& [why, n] : declined_why) std::printf("  declined %3d: %s\n", n, why.c_str());
  for (const auto& d : diffs) ADD_FAILURE() << d;
  EXPECT_GT(accepted, 300u);
  // The KITH messages proper (not the CPP/CPA and ebXML documents) are what the fast path is
  // for: nearly all of them must take it.
  EXPECT_GE(fast_total * 100, accepted * 80) << "the fast path declines too much";
}
