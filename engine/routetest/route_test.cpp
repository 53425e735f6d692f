#include "engine/routetest/route_test.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include "adapters/emelding/xpath.hpp"
#include "adapters/hl7v2/message.hpp"
#include "engine/runtime/ingest.hpp"

namespace budstikke::routetest {

namespace fs = std::filesystem;
using json = nlohmann::json;

size_t SuiteResult::passed() const {
  return static_cast<size_t>(std::count_if(
      cases.begin(), cases.end(), [](const CaseResult& c) { return c.passed && !c.skipped; }));
}
size_t SuiteResult::failed() const {
  return cases.size() - passed() - skipped();
}
size_t SuiteResult::skipped() const {
  return static_cast<size_t>(
      std::count_if(cases.begin(), cases.end(), [](const CaseResult& c) { return c.skipped; }));
}

std::vector<std::string> find_test_files(const std::vector<std::string>& paths,
                                         config::Diagnostics& diags) {
  std::vector<std::string> out;
  auto is_test = [](const fs::path& p) {
    const std::string n = p.filename().string();
    return n.size() > 10 && n.substr(n.size() - 10) == ".test.yaml";
  };
  for (const auto& p : paths) {
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::directory_iterator(p, ec))
        if (e.is_regular_file() && is_test(e.path())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      out.insert(out.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(p, ec)) {
      out.push_back(p);
    } else {
      diags.add(
          config::Diagnostic{p, 0, 0, config::Severity::kError, "", "no such file or folder"});
    }
  }
  return out;
}

Decoded decode_input(const std::string& bytes, const std::string& name,
                     const runtime::CodecRegistry& codecs, bool validate,
                     const std::string& key_secret) {
  const runtime::DecodeContext ctx{"test", name, validate, key_secret, false};
  auto d = runtime::decode_with(codecs, bytes, ctx);
  if (auto* rej = std::get_if<runtime::CodecRejection>(&d)) return std::move(*rej);
  auto& out = std::get<runtime::CodecOutput>(d);
  // Deterministic event ids, as the engine's sources make them.
  for (size_t i = 0; i < out.events.size(); ++i) {
    Event& e = out.events[i];
    e.event_id = runtime::uuid_from_seed("route-test|" + name + "#" + std::to_string(i));
    assign_key(e, key_secret);
  }
  return std::move(out.events);
}

Result<std::vector<std::string>> lookup(Lookup how, const std::string& payload,
                                        const std::string& path) {
  switch (how) {
    case Lookup::kXPath:
      return emelding::xpath_values(payload, path);
    case Lookup::kHl7: {
      auto parsed = hl7v2::Message::parse(payload);
      if (auto* err = std::get_if<hl7v2::ParseError>(&parsed))
        return Error::permanent(ErrorDomain::kCodec, "not HL7 v2: " + err->message);
      const auto& m = std::get<hl7v2::Message>(parsed);
      auto v = m.get(path);
      std::vector<std::string> out;
      if (v) out.push_back(*v);
      return out;
    }
    case Lookup::kJson: {
      const json j = json::parse(payload, nullptr, false);
      if (j.is_discarded()) return Error::permanent(ErrorDomain::kCodec, "not JSON");
      std::vector<std::string> out;
      try {
        const json::json_pointer ptr(path);
        if (!j.contains(ptr)) return out;
        const json& v = j.at(ptr);
        out.push_back(v.is_string() ? v.get<std::string>() : v.dump());
      } catch (const json::exception& e) {
        return Error::permanent(ErrorDomain::kConfig,
                                "'" + path + "' is not a JSON pointer (/a/b/0): " + e.what());
      }
      return out;
    }
  }
  return std::vector<std::string>{};
}

std::vector<std::string> line_diff(const std::string& expected, const std::string& actual,
                                   size_t max_lines) {
  auto split = [](const std::string& s) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
      if (c == '\n' || c == '\r') {
        out.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
  };
  const auto a = split(expected);
  const auto b = split(actual);
  const size_t n = std::min<size_t>(a.size(), 3000);
  const size_t m = std::min<size_t>(b.size(), 3000);
  // LCS table, then a walk that emits ' ', '-', '+' lines.
  std::vector<std::vector<uint16_t>> l(n + 1, std::vector<uint16_t>(m + 1, 0));
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      l[i][j] = a[i] == b[j] ? static_cast<uint16_t>(l[i + 1][j + 1] + 1)
                             : std::max(l[i + 1][j], l[i][j + 1]);
  std::vector<std::pair<char, std::string>> ops;
  size_t i = 0;
  size_t j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] == b[j]) {
      ops.push_back({' ', a[i]});
      ++i;
      ++j;
    } else if (i < n && (j == m || l[i + 1][j] >= l[i][j + 1])) {
      ops.push_back({'-', a[i++]});
    } else {
      ops.push_back({'+', b[j++]});
    }
  }
  // Changed lines with two lines of context.
  std::vector<bool> show(ops.size(), false);
  for (size_t k = 0; k < ops.size(); ++k)
    if (ops[k].first != ' ')
      for (size_t c = (k >= 2 ? k - 2 : 0); c < std::min(ops.size(), k + 3); ++c) show[c] = true;
  std::vector<std::string> out = {"--- expected", "+++ actual"};
  bool gap = false;
  for (size_t k = 0; k < ops.size(); ++k) {
    if (!show[k]) {
      gap = true;
      continue;
    }
    if (gap && out.size() > 2) out.push_back("@@");
    gap = false;
    if (out.size() >= max_lines) {
      out.push_back("... (diff cut)");
      break;
    }
    out.push_back(std::string(1, ops[k].first) + " " + ops[k].second);
  }
  return out;
}

std::string mask_volatile(const std::string& payload) {
  std::string s = payload;
  // KITH: message ids and generation times are fresh on every render.
  static const std::regex kXml(R"((<(?:[A-Za-z_][\w.-]*:)?(MsgId|GenDate)>)[^<]*(</))");
  s = std::regex_replace(s, kXml, "$1*$3");
  static const std::regex kXmlAttr(R"((<(?:[A-Za-z_][\w.-]*:)?GenDate V=")[^"]*("))");
  s = std::regex_replace(s, kXmlAttr, "$1*$2");
  // HL7 v2: MSH-7 (message time).
  std::string out;
  size_t start = 0;
  while (start < s.size()) {
    size_t end = s.find_first_of("\r\n", start);
    if (end == std::string::npos) end = s.size();
    std::string line = s.substr(start, end - start);
    if (line.size() > 4 && line.rfind("MSH", 0) == 0) {
      const char sep = line[3];
      size_t pos = 0;
      int field = 0;
      for (size_t k = 0; k < line.size(); ++k)
        if (line[k] == sep && ++field == 6) {
          pos = k + 1;
          break;
        }
      if (pos) {
        const size_t e = line.find(sep, pos);
        line = line.substr(0, pos) + "*" + (e == std::string::npos ? "" : line.substr(e));
      }
    }
    out += line;
    if (end < s.size()) out += s[end];
    start = end + 1;
  }
  // Canonical JSON: when it was received.
  static const std::regex kJson(R"re(("(received_at|generated_at)"\s*:\s*)"[^"]*")re");
  return std::regex_replace(out, kJson, "$1\"*\"");
}

namespace {

struct Ctx {
  const std::string& file;
  config::Diagnostics& diags;
};

std::string scalar_or_empty(const YAML::Node& n) {
  return n && n.IsScalar() ? n.Scalar() : "";
}

// Checks the values found against an expected value node; problems are appended.
void check_values(const std::string& what, const std::vector<std::string>& found,
                  const YAML::Node& want, std::vector<std::string>& problems) {
  auto show = [](const std::vector<std::string>& v) {
    if (v.empty()) return std::string("nothing");
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ", ") + ("'" + x + "'");
    return s;
  };
  if (want.IsScalar()) {
    if (found.empty() || found.front() != want.Scalar())
      problems.push_back(what + ": expected '" + want.Scalar() + "', got " + show(found));
    return;
  }
  if (want.IsSequence()) {
    std::vector<std::string> w;
    for (const auto& x : want) w.push_back(x.IsScalar() ? x.Scalar() : "");
    if (w != found) problems.push_back(what + ": expected [" + show(w) + "], got " + show(found));
    return;
  }
  if (want.IsMap()) {
    for (const auto& kv : want) {
      const std::string k = kv.first.Scalar();
      const std::string v = scalar_or_empty(kv.second);
      if (k == "contains") {
        const bool any = std::any_of(found.begin(), found.end(), [&](const std::string& f) {
          return f.find(v) != std::string::npos;
        });
        if (!any)
          problems.push_back(what + ": expected a value containing '" + v + "', got " +
                             show(found));
      } else if (k == "matches") {
        try {
          const std::regex re(v);
          const bool any = std::any_of(found.begin(), found.end(), [&](const std::string& f) {
            return std::regex_search(f, re);
          });
          if (!any)
            problems.push_back(what + ": expected a value matching /" + v + "/, got " +
                               show(found));
        } catch (const std::regex_error& e) {
          problems.push_back(what + ": /" + v + "/ is not a regular expression: " + e.what());
        }
      } else if (k == "exists") {
        const bool want_exists = v == "true";
        if (want_exists != !found.empty())
          problems.push_back(what + (want_exists ? ": expected to exist, found nothing"
                                                 : ": expected absent, got " + show(found)));
      } else if (k == "count") {
        if (std::to_string(found.size()) != v)
          problems.push_back(what + ": expected " + v + " value(s), got " +
                             std::to_string(found.size()) + " (" + show(found) + ")");
      } else {
        problems.push_back(what + ": unknown check '" + k +
                           "' (use contains, matches, exists, count)");
      }
    }
  }
}

void check_delivery(const Ctx& c, const std::string& system, const route::RoutedDelivery& d,
                    const YAML::Node& want, const Options& o, const std::string& input_path,
                    std::vector<std::string>& problems) {
  if (!want || want.IsNull()) return;
  if (!want.IsMap()) {
    c.diags.error(c.file, want.Mark(), "deliveries." + system, "expected a map of checks");
    return;
  }
  const std::string where = system + ": ";
  for (const auto& kv : want) {
    const std::string k = kv.first.Scalar();
    const YAML::Node& v = kv.second;
    if (k == "format" || k == "content_type") {
      const std::string got = k == "format" ? d.format : d.content_type;
      if (got != scalar_or_empty(v))
        problems.push_back(where + k + ": expected '" + scalar_or_empty(v) + "', got '" + got +
                           "'");
    } else if (k == "answers_sender") {
      const bool w = scalar_or_empty(v) == "true";
      if (w != d.answers_sender)
        problems.push_back(where + "answers_sender: expected " + (w ? "true" : "false") +
                           " (whether this delivery's outcome answers the sender)");
    } else if (k == "xpath" || k == "hl7" || k == "json") {
      if (!v.IsMap()) {
        c.diags.error(c.file, v.Mark(), system + "." + k, "expected a map of path: value");
        continue;
      }
      const Lookup how = k == "xpath" ? Lookup::kXPath : k == "hl7" ? Lookup::kHl7 : Lookup::kJson;
      for (const auto& pv : v) {
        const std::string path = pv.first.Scalar();
        auto found = lookup(how, d.payload, path);
        if (!found) {
          problems.push_back(where + k + " " + path + ": " + found.error().message);
          continue;
        }
        check_values(where + path, *found, pv.second, problems);
      }
    } else if (k == "contains") {
      std::vector<std::string> needles;
      if (v.IsScalar()) needles.push_back(v.Scalar());
      if (v.IsSequence())
        for (const auto& x : v) needles.push_back(scalar_or_empty(x));
      for (const auto& n : needles)
        if (d.payload.find(n) == std::string::npos)
          problems.push_back(where + "the output does not contain '" + n + "'");
    } else if (k == "golden") {
      const fs::path golden = fs::path(c.file).parent_path() / scalar_or_empty(v);
      const std::string actual = mask_volatile(d.payload);
      std::error_code same_ec;
      const bool is_input = !input_path.empty() && fs::exists(golden, same_ec) &&
                            fs::equivalent(golden, input_path, same_ec);
      if (o.update_golden && !is_input) {
        std::error_code ec;
        fs::create_directories(golden.parent_path(), ec);
        std::ofstream(golden, std::ios::binary) << actual;
        continue;
      }
      std::ifstream in(golden, std::ios::binary);
      if (!in) {
        problems.push_back(where + "golden file " + golden.string() +
                           " is missing (budstikke test --update-golden writes it)");
        continue;
      }
      std::stringstream ss;
      ss << in.rdbuf();
      const std::string expected = mask_volatile(ss.str());
      if (expected != actual) {
        problems.push_back(where + "differs from " + golden.string() + ":");
        for (auto& line : line_diff(expected, actual)) problems.push_back("    " + line);
      }
    } else {
      c.diags.error(c.file, kv.first.Mark(), system + "." + k,
                    "unknown check '" + k +
                        "' (use format, content_type, answers_sender, xpath, hl7, json, contains, "
                        "golden)");
    }
  }
}

CaseResult run_case(const Ctx& c, const route::Route& route, const YAML::Node& t,
                    const registry::Registry& reg, const runtime::CodecRegistry& codecs,
                    const Options& o) {
  CaseResult r;
  r.file = c.file;
  r.name = scalar_or_empty(t["name"]);
  auto& problems = r.problems;
  // The input.
  std::string bytes;
  std::string input_name = r.name;
  std::string input_path;  // never overwritten as a golden file
  if (t["input"]) {
    const fs::path p = fs::path(c.file).parent_path() / scalar_or_empty(t["input"]);
    std::ifstream in(p, std::ios::binary);
    if (!in) {
      problems.push_back("input " + p.string() + ": cannot open file");
      return r;
    }
    std::stringstream ss;
    ss << in.rdbuf();
    bytes = ss.str();
    input_name = p.filename().string();
    input_path = p.string();
  } else {
    bytes = scalar_or_empty(t["input_inline"]);
  }
  // edits: the same message with small changes (another sender, an unknown receiver, ...).
  if (const YAML::Node edits = t["edits"]; edits && edits.IsSequence()) {
    for (const auto& e : edits) {
      const std::string from = scalar_or_empty(e["replace"]);
      const std::string to = scalar_or_empty(e["with"]);
      if (from.empty() || !e["with"]) {
        c.diags.error(c.file, e.Mark(), "edits", "an edit is {replace: TEXT, with: TEXT}");
        continue;
      }
      size_t n = 0;
      for (size_t pos = bytes.find(from); pos != std::string::npos;
           pos = bytes.find(from, pos + to.size())) {
        bytes.replace(pos, from.size(), to);
        ++n;
      }
      if (n == 0) problems.push_back("edit: '" + from + "' does not occur in the input");
    }
  }
  const bool validate = t["validate"] ? scalar_or_empty(t["validate"]) == "true" : o.validate;
  const YAML::Node expect = t["expect"];
  // A test of XSD validation cannot run without the XSDs.
  if (!o.validate && expect && expect["rejected"] && expect["rejected"].IsMap() &&
      scalar_or_empty(expect["rejected"]["code"]) == "T02") {
    r.skipped = true;
    r.passed = true;
    problems.push_back("skipped: expects an XSD rejection (T02) and no XSDs are loaded");
    return r;
  }
  auto decoded = decode_input(bytes, input_name, codecs, validate, o.key_secret);
  const YAML::Node want_rej = expect ? expect["rejected"] : YAML::Node();
  if (auto* rej = std::get_if<runtime::CodecRejection>(&decoded)) {
    if (!want_rej || scalar_or_empty(want_rej) == "false") {
      problems.push_back("the input was rejected: " + rej->code + " " + rej->reason);
    } else if (want_rej.IsMap()) {
      const std::string code = scalar_or_empty(want_rej["code"]);
      const std::string reason = scalar_or_empty(want_rej["reason"]);
      if (!code.empty() && code != rej->code)
        problems.push_back("rejected with " + rej->code + ", expected " + code + " (" +
                           rej->reason + ")");
      if (!reason.empty() && rej->reason.find(reason) == std::string::npos)
        problems.push_back("rejection reason does not contain '" + reason + "': " + rej->reason);
    }
    r.passed = problems.empty();
    return r;
  }
  if (want_rej && scalar_or_empty(want_rej) != "false") {
    problems.push_back("expected a rejection, but the input was accepted");
    return r;
  }
  const auto& events = std::get<std::vector<Event>>(decoded);
  route::RouteEnv env{&reg, &codecs, nullptr};
  bool matched = false;
  std::vector<route::RoutedDelivery> deliveries;
  std::vector<route::RouteFailure> failures;
  for (const auto& e : events) {
    auto res = route.process(e, env);
    matched = matched || res.matched;
    for (auto& d : res.deliveries) deliveries.push_back(std::move(d));
    for (auto& f : res.failures) failures.push_back(std::move(f));
  }
  const bool want_matched =
      !(expect && expect["matched"]) || scalar_or_empty(expect["matched"]) == "true";
  if (want_matched != matched) {
    problems.push_back(std::string("filter: expected the route to ") +
                       (want_matched ? "take" : "skip") + " the message, but it " +
                       (matched ? "took" : "skipped") + " it" +
                       (route.filter() ? " (filter: " + route.filter()->text() + ")" : ""));
  }
  // Destinations.
  const YAML::Node want_d = expect ? expect["deliveries"] : YAML::Node();
  const bool only = !(expect && expect["only"]) || scalar_or_empty(expect["only"]) != "false";
  std::map<std::string, const route::RoutedDelivery*> got;
  for (const auto& d : deliveries) got[d.system] = &d;
  if (want_d && want_d.IsMap()) {
    std::set<std::string> wanted;
    for (const auto& kv : want_d) {
      const std::string sys = kv.first.Scalar();
      wanted.insert(sys);
      if (!reg.find(sys))
        c.diags.error(c.file, kv.first.Mark(), "deliveries." + sys,
                      "unknown system '" + sys + "' (not in the registry)");
      const auto it = got.find(sys);
      if (it == got.end()) {
        problems.push_back("expected a delivery to " + sys + ", there was none");
        continue;
      }
      check_delivery(c, sys, *it->second, kv.second, o, input_path, problems);
    }
    if (only)
      for (const auto& [sys, d] : got)
        if (!wanted.count(sys))
          problems.push_back("unexpected delivery to " + sys + " (" + d->format + ")");
  } else if (want_d && !want_d.IsNull()) {
    c.diags.error(c.file, want_d.Mark(), "expect.deliveries",
                  "expected a map: system id -> checks");
  } else if (matched && only && !deliveries.empty() && want_matched) {
    std::string s;
    for (const auto& [sys, d] : got) s += (s.empty() ? "" : ", ") + sys;
    problems.push_back("deliveries to " + s + " but the test names none (expect.deliveries)");
  }
  // Failures.
  const YAML::Node want_f = expect ? expect["failures"] : YAML::Node();
  std::vector<bool> used(failures.size(), false);
  if (want_f && want_f.IsSequence()) {
    for (const auto& wf : want_f) {
      const std::string code = scalar_or_empty(wf["code"]);
      const std::string reason = scalar_or_empty(wf["reason"]);
      const std::string system = scalar_or_empty(wf["system"]);
      bool hit = false;
      for (size_t i = 0; i < failures.size() && !hit; ++i) {
        if (used[i]) continue;
        if ((code.empty() || failures[i].code == code) &&
            (system.empty() || failures[i].system == system) &&
            (reason.empty() || failures[i].reason.find(reason) != std::string::npos)) {
          used[i] = hit = true;
        }
      }
      if (!hit)
        problems.push_back("expected a failure" + (code.empty() ? "" : " " + code) +
                           (reason.empty() ? "" : " containing '" + reason + "'") +
                           ", there was none");
    }
  }
  for (size_t i = 0; i < failures.size(); ++i)
    if (!used[i])
      problems.push_back("unexpected failure" +
                         (failures[i].code.empty() ? "" : " " + failures[i].code) + ": " +
                         failures[i].reason);
  r.passed = problems.empty();
  return r;
}

}  // namespace

SuiteResult run_files(const std::vector<std::string>& files, const route::RouteSet& routes,
                      const registry::Registry& reg, const runtime::CodecRegistry& codecs,
                      const Options& o) {
  SuiteResult s;
  for (const auto& file : files) {
    ++s.files;
    YAML::Node root = config::load_yaml_file(file, s.diags);
    if (!root) continue;
    Ctx c{file, s.diags};
    if (!root.IsMap()) {
      s.diags.error(file, root.Mark(), "", "a route test file is a map with route: and tests:");
      continue;
    }
    std::string name = scalar_or_empty(root["route"]);
    if (name.empty()) {
      // routes/<name>.test.yaml tests the route loaded from routes/<name>.yaml.
      const std::string base = fs::path(file).filename().string();
      const std::string stem = base.substr(0, base.size() - std::string(".test.yaml").size());
      for (const auto& r : routes.routes)
        if (fs::path(r->file()).stem().string() == stem) name = r->name();
      if (name.empty()) {
        s.diags.error(file, root.Mark(), "route",
                      "say which route this tests (route: NAME); no route file " + stem + ".yaml");
        continue;
      }
    }
    const route::Route* route = routes.find(name);
    if (!route) {
      std::string known;
      for (const auto& r : routes.routes) known += (known.empty() ? "" : ", ") + r->name();
      s.diags.error(file, root["route"] ? root["route"].Mark() : root.Mark(), "route",
                    "unknown route '" + name + "'; routes: " + known);
      continue;
    }
    const YAML::Node tests = root["tests"];
    if (!tests || !tests.IsSequence() || tests.size() == 0) {
      s.diags.error(file, tests ? tests.Mark() : root.Mark(), "tests",
                    "expected a list of tests (name, input or input_inline, expect)");
      continue;
    }
    for (size_t i = 0; i < tests.size(); ++i) {
      const YAML::Node t = tests[i];
      const std::string at = "tests[" + std::to_string(i) + "]";
      if (!t.IsMap() || !t["name"] || (!t["input"] && !t["input_inline"]) || !t["expect"]) {
        s.diags.error(file, t.Mark(), at, "a test needs name, input (or input_inline) and expect");
        continue;
      }
      for (const auto& kv : t) {
        const std::string k = kv.first.Scalar();
        if (k != "name" && k != "input" && k != "input_inline" && k != "expect" &&
            k != "validate" && k != "description" && k != "edits")
          s.diags.error(file, kv.first.Mark(), at + "." + k,
                        "unknown key (use name, description, input, input_inline, edits, "
                        "validate, expect)");
      }
      for (const auto& kv : t["expect"]) {
        const std::string k = kv.first.Scalar();
        if (k != "matched" && k != "deliveries" && k != "only" && k != "failures" &&
            k != "rejected")
          s.diags.error(file, kv.first.Mark(), at + ".expect." + k,
                        "unknown key (use matched, deliveries, only, failures, rejected)");
      }
      s.cases.push_back(run_case(c, *route, t, reg, codecs, o));
    }
  }
  return s;
}

}  // namespace budstikke::routetest
