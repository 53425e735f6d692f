#pragma once
// Reads ../shared/standards/MANIFEST.md: one row per example file with xmllint's verdict.

#include <fstream>
#include <regex>
#include <string>
#include <vector>

namespace budstikke::testenv {

struct ManifestRow {
  std::string file;     // examples/...
  std::string folder;   // dialogmelding, plo, ...
  std::string verdict;  // valid | INVALID | NOT WELL-FORMED | n/a
  std::string notes;
  int line = 0;         // xmllint's line for INVALID / NOT WELL-FORMED
  std::string element;  // xmllint's element for INVALID
};

inline std::vector<ManifestRow> read_manifest(const std::string& path) {
  std::vector<ManifestRow> rows;
  std::ifstream in(path);
  const std::regex verdict_re(
      "xmllint: (valid|INVALID|NOT WELL-FORMED|n/a)(: line ([0-9]+)(: element "
      "([A-Za-z0-9_:.-]+))?)?");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("| examples/", 0) != 0) continue;
    // Split on '|' not preceded by a backslash.
    std::vector<std::string> cells;
    std::string cur;
    for (size_t i = 1; i < line.size(); ++i) {
      if (line[i] == '|' && line[i - 1] != '\\') {
        cells.push_back(cur);
        cur.clear();
      } else {
        cur.push_back(line[i]);
      }
    }
    if (cells.size() < 6) continue;
    auto trim = [](std::string s) {
      const auto b = s.find_first_not_of(' ');
      const auto e = s.find_last_not_of(' ');
      return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
    };
    ManifestRow r;
    r.file = trim(cells[0]);
    r.notes = trim(cells.back());
    std::smatch m;
    if (!std::regex_search(r.notes, m, verdict_re)) continue;
    r.verdict = m[1];
    if (m[3].matched) r.line = std::stoi(m[3]);
    if (m[5].matched) {
      r.element = m[5];
      while (!r.element.empty() && r.element.back() == ':') r.element.pop_back();
    }
    const auto a = r.file.find('/');
    const auto b = r.file.find('/', a + 1);
    r.folder = r.file.substr(a + 1, b - a - 1);
    rows.push_back(std::move(r));
  }
  return rows;
}

}  // namespace budstikke::testenv
