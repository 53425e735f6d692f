#include "adapters/hl7v2/message.hpp"

#include "adapters/mllp/framer.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cstdint>
#include <cstring>

namespace budstikke::hl7v2 {

namespace {

bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    // ASCII runs eight bytes at a time.
    while (i + 8 <= s.size()) {
      uint64_t w;
      std::memcpy(&w, s.data() + i, 8);
      if (w & 0x8080808080808080ULL) break;
      i += 8;
    }
    if (i >= s.size()) break;
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n = 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c >> 5) == 6)
      n = 1;
    else if ((c >> 4) == 14)
      n = 2;
    else if ((c >> 3) == 30)
      n = 3;
    else
      return false;
    for (size_t k = 1; k <= n; ++k)
      if (i + k >= s.size() || (static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n + 1;
  }
  return true;
}

std::string latin1_to_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size() + s.size() / 8);
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x80) {
      out.push_back(ch);
    } else {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

// The first \r or \n at or after `from` (npos when none). A plain loop: find_first_of with a
// two-character set calls memchr once per byte.
size_t find_eol(std::string_view s, size_t from) {
  for (size_t i = from; i < s.size(); ++i)
    if (s[i] == '\r' || s[i] == '\n') return i;
  return std::string_view::npos;
}

// True when [b, e) of s holds only spaces and tabs (or nothing).
bool blank_between(std::string_view s, size_t b, size_t e) {
  for (size_t i = b; i < e; ++i)
    if (s[i] != ' ' && s[i] != '\t') return false;
  return true;
}

// The n-th (0-based) piece of `s` split by `sep`, or nullopt when there are fewer pieces.
std::optional<std::string_view> piece(std::string_view s, char sep, size_t n) {
  size_t start = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t p = s.find(sep, start);
    if (p == std::string_view::npos) return std::nullopt;
    start = p + 1;
  }
  const size_t end = s.find(sep, start);
  return s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
}

std::vector<std::string> split(std::string_view s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t p = s.find(sep, start);
    out.emplace_back(
        s.substr(start, p == std::string_view::npos ? std::string_view::npos : p - start));
    if (p == std::string_view::npos) break;
    start = p + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& v, char sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(sep);
    out += v[i];
  }
  return out;
}

void append_hex_bytes(std::string& out, std::string_view hex) {
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    int v = 0;
    const auto r = std::from_chars(hex.data() + i, hex.data() + i + 2, v, 16);
    if (r.ec != std::errc()) return;
    out.push_back(static_cast<char>(v));
  }
}

// Escape sequences unescape() leaves as they are (with Formatting::kKeep).
bool kept_verbatim(std::string_view seq) {
  if (seq == "H" || seq == "N") return true;
  if (seq.size() >= 2 && seq[0] == '.') {
    for (size_t i = 1; i < seq.size(); ++i)
      if (!(std::isalnum(static_cast<unsigned char>(seq[i])) || seq[i] == '+' || seq[i] == '-'))
        return false;
    return true;
  }
  if (seq.size() >= 2 && (seq[0] == 'C' || seq[0] == 'M' || seq[0] == 'Z')) {
    for (size_t i = 1; i < seq.size(); ++i)
      if (!std::isalnum(static_cast<unsigned char>(seq[i]))) return false;
    return true;
  }
  return false;
}

bool same(const Delimiters& a, const Delimiters& b) {
  return a.field == b.field && a.component == b.component && a.repetition == b.repetition &&
         a.escape == b.escape && a.subcomponent == b.subcomponent && a.has_escape == b.has_escape &&
         a.has_subcomponent == b.has_subcomponent && a.truncation == b.truncation;
}

}  // namespace

std::string Delimiters::encoding_characters() const {
  std::string s;
  s.push_back(component);
  s.push_back(repetition);
  if (has_escape) s.push_back(escape);
  if (has_subcomponent) s.push_back(subcomponent);
  if (truncation) s.push_back(truncation);
  return s;
}

std::string ParseError::to_string() const {
  std::string s;
  if (segment > 0) s += "segment " + std::to_string(segment);
  if (!path.empty()) s += (s.empty() ? "" : " ") + path;
  if (segment > 0 || !path.empty()) s += " (byte " + std::to_string(offset) + "): ";
  return s + message;
}

std::optional<Path> Path::parse(std::string_view t) {
  Path p;
  auto number = [](std::string_view s, int& out) {
    if (s.empty()) return false;
    const auto r = std::from_chars(s.data(), s.data() + s.size(), out);
    return r.ec == std::errc() && r.ptr == s.data() + s.size() && out >= 1;
  };
  // SEG or SEG(k) or SEG#k
  size_t i = 0;
  while (i < t.size() && is_alnum(t[i])) ++i;
  if (i != 3) return std::nullopt;
  p.segment = std::string(t.substr(0, 3));
  auto occurrence = [&](char open, char close) {
    if (i < t.size() && t[i] == open) {
      const size_t e = close ? t.find(close, i) : t.find('-', i);
      const size_t end = e == std::string_view::npos ? t.size() : e;
      if (!number(t.substr(i + 1, end - i - 1), p.occurrence)) return false;
      i = close ? end + 1 : end;
    }
    return true;
  };
  if (!occurrence('(', ')') || !occurrence('#', 0) || !occurrence('[', ']')) return std::nullopt;
  if (i == t.size()) return p;
  if (t[i] != '-') return std::nullopt;
  ++i;
  // F, F-C or F-C-S (no allocation: paths are parsed on every field access).
  std::array<std::string_view, 3> parts;
  size_t n_parts = 0;
  size_t start = i;
  while (true) {
    if (n_parts == parts.size()) return std::nullopt;
    const size_t d = t.find('-', start);
    parts[n_parts++] =
        t.substr(start, d == std::string_view::npos ? std::string_view::npos : d - start);
    if (d == std::string_view::npos) break;
    start = d + 1;
  }
  std::string_view f = parts[0];
  // F(r) or F[r]
  if (const size_t o = f.find_first_of("(["); o != std::string_view::npos) {
    const char close = f[o] == '(' ? ')' : ']';
    if (f.back() != close || !number(f.substr(o + 1, f.size() - o - 2), p.repetition))
      return std::nullopt;
    f = f.substr(0, o);
  }
  if (!number(f, p.field)) return std::nullopt;
  if (n_parts > 1 && !number(parts[1], p.component)) return std::nullopt;
  if (n_parts > 2 && !number(parts[2], p.subcomponent)) return std::nullopt;
  return p;
}

std::string unescape(std::string_view raw, const Delimiters& d, Formatting f) {
  if (!d.has_escape || raw.find(d.escape) == std::string_view::npos) return std::string(raw);
  std::string out;
  out.reserve(raw.size());
  size_t i = 0;
  while (i < raw.size()) {
    const char c = raw[i];
    if (c != d.escape) {
      out.push_back(c);
      ++i;
      continue;
    }
    const size_t end = raw.find(d.escape, i + 1);
    if (end == std::string_view::npos) {  // a lone escape character: keep it
      out.append(raw.substr(i));
      break;
    }
    const std::string_view seq = raw.substr(i + 1, end - i - 1);
    const std::string_view whole = raw.substr(i, end - i + 1);
    if (seq == "F")
      out.push_back(d.field);
    else if (seq == "S")
      out.push_back(d.component);
    else if (seq == "T")
      out.push_back(d.subcomponent);
    else if (seq == "R")
      out.push_back(d.repetition);
    else if (seq == "E")
      out.push_back(d.escape);
    else if (seq.size() > 1 && seq[0] == 'X') {
      // \Xhh..\ carries raw bytes; bytes that are not UTF-8 are read as Latin-1, so the
      // value stays valid UTF-8.
      std::string bytes;
      append_hex_bytes(bytes, seq.substr(1));
      out += valid_utf8(bytes) ? bytes : latin1_to_utf8(bytes);
    } else if (seq == ".br") {
      if (f == Formatting::kRender)
        out.push_back('\n');
      else
        out.append(whole);
    } else if (!seq.empty() && (seq[0] == '.' || seq == "H" || seq == "N")) {
      if (f == Formatting::kKeep) out.append(whole);
    } else {
      out.append(whole);  // \Cxxyy\ \Mxxyyzz\ \Zxx\ and unknown: verbatim
    }
    i = end + 1;
  }
  return out;
}

std::string escape(std::string_view value, const Delimiters& d) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    const char c = value[i];
    if (d.has_escape && c == d.escape) {
      // Formatting and character-set escapes survive unescape() verbatim (kKeep), so a value
      // that carries one passes it through unchanged; anything else is escaped.
      const size_t end = value.find(d.escape, i + 1);
      if (end != std::string_view::npos && kept_verbatim(value.substr(i + 1, end - i - 1))) {
        out.append(value.substr(i, end - i + 1));
        i = end;
        continue;
      }
      out += std::string{d.escape, 'E', d.escape};
    } else if (c == d.field)
      out += std::string{d.escape, 'F', d.escape};
    else if (c == d.component)
      out += std::string{d.escape, 'S', d.escape};
    else if (c == d.repetition)
      out += std::string{d.escape, 'R', d.escape};
    else if (d.has_subcomponent && c == d.subcomponent)
      out += std::string{d.escape, 'T', d.escape};
    else if (c == '\r')
      out += std::string{d.escape} + "X0D" + d.escape;
    else if (c == '\n')
      out += std::string{d.escape} + ".br" + d.escape;
    else
      out.push_back(c);
  }
  return out;
}

std::variant<Message, ParseError> Message::parse(std::string_view bytes, const ParseOptions& opts) {
  Message m;
  m.opts_ = opts;
  size_t start = 0;
  while (start < bytes.size() && (bytes[start] == '\r' || bytes[start] == '\n' ||
                                  bytes[start] == ' ' || bytes[start] == '\t'))
    ++start;
  if (bytes.size() - start < 8 || bytes.compare(start, 3, "MSH") != 0)
    return ParseError{"a message must start with an MSH segment of at least 8 bytes", 1, "MSH",
                      start};
  const char fs = bytes[start + 3];
  if (is_alnum(fs) || fs == '\r' || fs == '\n' || fs == ' ')
    return ParseError{"'" + std::string(1, fs) + "' cannot be the field separator (MSH-1)", 1,
                      "MSH-1", start + 3};
  size_t enc_end = start + 4;
  while (enc_end < bytes.size() && bytes[enc_end] != fs && bytes[enc_end] != '\r' &&
         bytes[enc_end] != '\n')
    ++enc_end;
  const std::string_view enc = bytes.substr(start + 4, enc_end - start - 4);
  if (enc.size() < 4 || enc.size() > 5)
    return ParseError{
        "MSH-2 must hold 4 encoding characters (component, repetition, escape, "
        "sub-component; a 5th for truncation), not " +
            std::to_string(enc.size()) + ": '" + std::string(enc) + "'",
        1, "MSH-2", start + 4};
  std::string seen(1, fs);
  for (const char c : enc) {
    if (is_alnum(c) || c == ' ' || seen.find(c) != std::string::npos)
      return ParseError{
          "MSH-2 encoding characters must be distinct non-alphanumeric characters, "
          "and differ from the field separator: '" +
              std::string(enc) + "'",
          1, "MSH-2", start + 4};
    seen.push_back(c);
  }
  m.d_.field = fs;
  m.d_.component = enc[0];
  m.d_.repetition = enc[1];
  m.d_.escape = enc[2];
  m.d_.subcomponent = enc[3];
  if (enc.size() == 5) m.d_.truncation = enc[4];

  // Character set from MSH-18, read off the raw first segment.
  size_t first_end = find_eol(bytes, start);
  if (first_end == std::string_view::npos) first_end = bytes.size();
  const std::string_view msh = bytes.substr(start, first_end - start);
  m.charset_ = std::string(piece(msh, fs, 17).value_or(""));
  if (const auto rep = m.charset_.find(m.d_.repetition); rep != std::string::npos)
    m.charset_.resize(rep);
  const std::string_view body = bytes.substr(start);
  // The bytes win over the declaration: valid UTF-8 stays UTF-8 even when MSH-18 says
  // 8859/1 (a common misconfiguration); bytes that are not UTF-8 are read as Latin-1.
  if (valid_utf8(body))
    m.text_ = std::string(body);
  else
    m.text_ = latin1_to_utf8(body);

  // Segments: any of \r, \n, \r\n ends one; blank lines are skipped.
  const std::string& t = m.text_;
  size_t i = 0;
  bool term_set = false;
  while (i < t.size()) {
    size_t e = find_eol(t, i);
    if (e == std::string::npos) e = t.size();
    const bool blank = blank_between(t, i, e);  // empty or only spaces
    if (e > i && !blank) {
      const std::string_view seg(t.data() + i, e - i);
      const size_t n = m.segs_.size() + 1;
      if (seg.size() < 3 || !is_alnum(seg[0]) || !is_alnum(seg[1]) || !is_alnum(seg[2]) ||
          (seg.size() > 3 && seg[3] != fs)) {
        // A segment must start with a 3-character id followed by the field separator.
        return ParseError{"'" + std::string(seg.substr(0, std::min<size_t>(seg.size(), 20))) +
                              "' does not start with a segment id",
                          static_cast<int>(n), "", start + i};
      }
      m.add_segment(i, e);
    }
    if (e < t.size() && !term_set) {
      m.terminator_ =
          (t[e] == '\r' && e + 1 < t.size() && t[e + 1] == '\n') ? "\r\n" : std::string(1, t[e]);
      term_set = true;
    }
    if (e < t.size() && t[e] == '\r' && e + 1 < t.size() && t[e + 1] == '\n') ++e;
    i = e + 1;
  }
  // A message that states its version (MSH-12) must state its type (MSH-9).
  const std::string_view first_seg = m.segment_raw(0);
  if (piece(first_seg, fs, 11).value_or("").size() > 0 &&
      piece(first_seg, fs, 8).value_or("").empty())
    return ParseError{"MSH-9 (message type) is empty", 1, "MSH-9", start};
  return m;
}

void Message::add_segment(size_t b, size_t e) {
  if (sep_begin_.empty()) sep_begin_.push_back(0);
  segs_.emplace_back(static_cast<uint32_t>(b), static_cast<uint32_t>(e));
  const char fs = d_.field;
  const char* p = text_.data();
  for (size_t k = b; k < e; ++k)
    if (p[k] == fs) seps_.push_back(static_cast<uint32_t>(k));
  sep_begin_.push_back(static_cast<uint32_t>(seps_.size()));
}

std::optional<std::string_view> Message::field_piece(size_t i, size_t n) const {
  const size_t first = sep_begin_[i];
  const size_t count = sep_begin_[i + 1] - first;
  if (n > count) return std::nullopt;
  const size_t b = n == 0 ? segs_[i].first : seps_[first + n - 1] + 1;
  const size_t e = n == count ? segs_[i].second : seps_[first + n];
  return std::string_view(text_).substr(b, e - b);
}

std::string_view Message::segment_raw(size_t i) const {
  return std::string_view(text_).substr(segs_[i].first, segs_[i].second - segs_[i].first);
}

std::string_view Message::segment_id(size_t i) const {
  return segment_raw(i).substr(0, 3);
}

size_t Message::count(std::string_view id) const {
  size_t n = 0;
  for (size_t i = 0; i < segs_.size(); ++i) n += segment_id(i) == id ? 1 : 0;
  return n;
}

std::optional<std::string_view> Message::get_raw(const Path& p) const {
  int seen = 0;
  size_t index = segs_.size();
  for (size_t i = 0; i < segs_.size(); ++i)
    if (segment_id(i) == p.segment && ++seen == p.occurrence) {
      index = i;
      break;
    }
  if (index == segs_.size()) return std::nullopt;
  if (p.field == 0) return segment_raw(index);
  const bool msh = p.segment == "MSH" || p.segment == "FHS" || p.segment == "BHS";
  if (msh && p.field == 1) return segment_raw(index).substr(3, 1);
  // MSH-2 is the piece between the first two separators, as any other MSH field is piece
  // field-1.
  const auto field = field_piece(index, static_cast<size_t>(msh ? p.field - 1 : p.field));
  if (!field || (msh && p.field == 2)) return field;
  auto rep = piece(*field, d_.repetition, static_cast<size_t>(p.repetition - 1));
  if (!rep) return std::nullopt;
  if (p.component == 0) return rep;
  auto comp = piece(*rep, d_.component, static_cast<size_t>(p.component - 1));
  if (!comp) return std::nullopt;
  if (p.subcomponent == 0 || !d_.has_subcomponent) return comp;
  return piece(*comp, d_.subcomponent, static_cast<size_t>(p.subcomponent - 1));
}

std::optional<std::string_view> Message::get_raw(std::string_view path) const {
  auto p = Path::parse(path);
  if (!p) return std::nullopt;
  return get_raw(*p);
}

std::optional<std::string> Message::get(const Path& p) const {
  std::string scratch;
  auto v = get_view(p, scratch);
  if (!v) return std::nullopt;
  return std::string(*v);
}

std::optional<std::string_view> Message::get_view(const Path& p, std::string& scratch) const {
  auto raw = get_raw(p);
  if (!raw || !d_.has_escape || raw->find(d_.escape) == std::string_view::npos) return raw;
  // MSH-1 and MSH-2 are the delimiters themselves, never escaped text.
  if ((p.segment == "MSH" || p.segment == "FHS" || p.segment == "BHS") &&
      (p.field == 1 || p.field == 2))
    return raw;
  scratch = unescape(*raw);
  return std::string_view(scratch);
}

std::optional<std::string> Message::get(std::string_view path) const {
  auto p = Path::parse(path);
  if (!p) return std::nullopt;
  return get(*p);
}

std::string Message::unescape(std::string_view raw) const {
  return hl7v2::unescape(raw, d_, opts_.formatting);
}

size_t Message::repetitions(std::string_view segment_path) const {
  auto p = Path::parse(segment_path);
  return p ? repetitions(*p) : 0;
}

size_t Message::repetitions(const Path& field) const {
  if (field.field <= 0) return 0;
  int seen = 0;
  size_t index = 0;
  for (; index < segs_.size(); ++index)
    if (segment_id(index) == field.segment && ++seen == field.occurrence) break;
  if (index == segs_.size()) return 0;
  const bool msh = field.segment == "MSH";
  const auto f = field_piece(index, static_cast<size_t>(msh ? field.field - 1 : field.field));
  if (!f) return 0;
  return static_cast<size_t>(std::count(f->begin(), f->end(), d_.repetition)) + 1;
}

Status Message::set(std::string_view path, std::string_view value) {
  auto p = Path::parse(path);
  if (!p || p->field == 0)
    return Error::permanent(ErrorDomain::kCodec, "not a field path: '" + std::string(path) + "'");
  const bool msh = p->segment == "MSH";
  if (msh && p->field <= 2)
    return Error::permanent(ErrorDomain::kCodec, "MSH-1 and MSH-2 are set by the delimiters");
  // Locate (or append) the segment.
  int seen = 0;
  size_t index = segs_.size();
  for (size_t i = 0; i < segs_.size(); ++i)
    if (segment_id(i) == p->segment && ++seen == p->occurrence) {
      index = i;
      break;
    }
  const size_t fi = static_cast<size_t>(msh ? p->field - 1 : p->field);
  if (index < segs_.size() && p->subcomponent == 0) {
    // The field, its repetition and the component exist (most sets, MSH-5 of a readdressed
    // copy among them): their text alone is replaced, nothing split and joined again.
    std::optional<std::string_view> span = field_piece(index, fi);
    if (span) span = piece(*span, d_.repetition, static_cast<size_t>(p->repetition - 1));
    if (span && p->component > 0)
      span = piece(*span, d_.component, static_cast<size_t>(p->component - 1));
    if (span) {
      const std::string_view raw = segment_raw(index);
      std::string seg(raw);
      seg.replace(static_cast<size_t>(span->data() - raw.data()), span->size(), escape(value, d_));
      replace_segment(index, seg);
      return {};
    }
  }
  std::string seg_text;
  if (index == segs_.size()) {
    if (seen + 1 != p->occurrence)
      return Error::permanent(ErrorDomain::kCodec, "cannot create " + p->segment + "(" +
                                                       std::to_string(p->occurrence) + ")");
    seg_text = p->segment;
  } else {
    seg_text = std::string(segment_raw(index));
  }
  std::vector<std::string> fields = split(seg_text, d_.field);
  if (fields.size() <= fi) fields.resize(fi + 1);
  std::vector<std::string> reps = split(fields[fi], d_.repetition);
  if (reps.size() < static_cast<size_t>(p->repetition))
    reps.resize(static_cast<size_t>(p->repetition));
  std::string& rep = reps[static_cast<size_t>(p->repetition - 1)];
  const std::string escaped = escape(value, d_);
  if (p->component == 0) {
    rep = escaped;
  } else {
    std::vector<std::string> comps = split(rep, d_.component);
    if (comps.size() < static_cast<size_t>(p->component))
      comps.resize(static_cast<size_t>(p->component));
    std::string& comp = comps[static_cast<size_t>(p->component - 1)];
    if (p->subcomponent == 0) {
      comp = escaped;
    } else {
      std::vector<std::string> subs = split(comp, d_.subcomponent);
      if (subs.size() < static_cast<size_t>(p->subcomponent))
        subs.resize(static_cast<size_t>(p->subcomponent));
      subs[static_cast<size_t>(p->subcomponent - 1)] = escaped;
      comp = join(subs, d_.subcomponent);
    }
    rep = join(comps, d_.component);
  }
  fields[fi] = join(reps, d_.repetition);
  const std::string new_seg = join(fields, d_.field);
  if (index == segs_.size()) {
    text_ += terminator_;
    const size_t b = text_.size();
    text_ += new_seg;
    add_segment(b, text_.size());
  } else {
    replace_segment(index, new_seg);
  }
  return {};
}

// The new text holds no line terminator (values are escaped), so it stays one segment: the
// index is updated in place, only this segment's text scanned (a whole reindex per set was
// most of the cost of readdressing a message for each of its destinations).
void Message::replace_segment(size_t index, std::string_view seg) {
  const size_t b = segs_[index].first;
  const size_t old_len = segs_[index].second - b;
  text_.replace(b, old_len, seg);
  const auto delta = static_cast<uint32_t>(seg.size() - old_len);  // modular: may shrink
  segs_[index].second = static_cast<uint32_t>(b + seg.size());
  for (size_t i = index + 1; i < segs_.size(); ++i) {
    segs_[i].first += delta;
    segs_[i].second += delta;
  }
  std::vector<uint32_t> mine;
  for (size_t k = b; k < b + seg.size(); ++k)
    if (text_[k] == d_.field) mine.push_back(static_cast<uint32_t>(k));
  const auto first = static_cast<std::ptrdiff_t>(sep_begin_[index]);
  const auto last = static_cast<std::ptrdiff_t>(sep_begin_[index + 1]);
  for (auto it = seps_.begin() + last; it != seps_.end(); ++it) *it += delta;
  seps_.erase(seps_.begin() + first, seps_.begin() + last);
  seps_.insert(seps_.begin() + first, mine.begin(), mine.end());
  const auto count_delta = static_cast<uint32_t>(mine.size() - static_cast<size_t>(last - first));
  for (size_t i = index + 1; i < sep_begin_.size(); ++i) sep_begin_[i] += count_delta;
}

std::string Message::encode(const Delimiters& d, std::string_view terminator) const {
  std::string out;
  out.reserve(text_.size() + 16);
  const bool plain = same(d, d_);
  for (size_t s = 0; s < segs_.size(); ++s) {
    if (s) out.append(terminator);
    const std::string_view seg = segment_raw(s);
    if (plain) {
      out.append(seg);
      continue;
    }
    const std::string_view id = seg.substr(0, 3);
    const bool msh = id == "MSH" || id == "FHS" || id == "BHS";
    std::vector<std::string> fields = split(seg, d_.field);
    out.append(id);
    size_t first = 1;
    if (msh) {
      out.push_back(d.field);
      out += d.encoding_characters();
      first = 2;
    }
    for (size_t f = first; f < fields.size(); ++f) {
      out.push_back(d.field);
      const auto reps = split(fields[f], d_.repetition);
      for (size_t r = 0; r < reps.size(); ++r) {
        if (r) out.push_back(d.repetition);
        const auto comps = split(reps[r], d_.component);
        for (size_t c = 0; c < comps.size(); ++c) {
          if (c) out.push_back(d.component);
          const auto subs = d_.has_subcomponent ? split(comps[c], d_.subcomponent)
                                                : std::vector<std::string>{comps[c]};
          for (size_t k = 0; k < subs.size(); ++k) {
            if (k) out.push_back(d.subcomponent);
            out += escape(hl7v2::unescape(subs[k], d_, Formatting::kKeep), d);
          }
        }
      }
    }
  }
  return out;
}

bool looks_like_hl7(std::string_view b) {
  size_t i = 0;
  while (i < b.size() && (b[i] == 0x0B || b[i] == '\r' || b[i] == '\n' || b[i] == ' ')) ++i;
  if (b.size() - i < 4) return false;
  const std::string_view id = b.substr(i, 3);
  return (id == "MSH" || id == "FHS" || id == "BHS") && !is_alnum(b[i + 3]);
}

std::variant<Stream, ParseError> parse_stream(std::string_view bytes, const ParseOptions& opts) {
  Stream st;
  std::vector<std::string> frames;
  std::vector<std::string_view> chunks;
  if (bytes.find(mllp::kStart) != std::string_view::npos) {
    bool incomplete = false;
    frames = mllp::deframe_all(bytes, &incomplete);
    st.frames = frames.size();
    if (incomplete)
      return ParseError{"the MLLP stream ends inside a frame (no 0x1C 0x0D)", 0, "", bytes.size()};
    for (const auto& f : frames) chunks.emplace_back(f);
  } else {
    chunks.push_back(bytes);
  }
  for (const auto chunk : chunks) {
    // Lines; envelope segments aside; a new message at every MSH.
    size_t i = 0;
    size_t msg_start = std::string_view::npos;
    auto flush = [&](size_t end) -> std::optional<ParseError> {
      if (msg_start == std::string_view::npos) return std::nullopt;
      auto m = Message::parse(chunk.substr(msg_start, end - msg_start), opts);
      msg_start = std::string_view::npos;
      if (auto* e = std::get_if<ParseError>(&m)) {
        ParseError err = *e;
        err.message = "message " + std::to_string(st.messages.size() + 1) + ": " + err.message;
        return err;
      }
      st.messages.push_back(std::get<Message>(std::move(m)));
      return std::nullopt;
    };
    while (i < chunk.size()) {
      size_t e = find_eol(chunk, i);
      if (e == std::string_view::npos) e = chunk.size();
      size_t b = i;
      while (b < e && (chunk[b] == ' ' || chunk[b] == '\t')) ++b;
      const std::string_view line = chunk.substr(b, e - b);
      const std::string_view id = line.substr(0, std::min<size_t>(3, line.size()));
      const bool sep = line.size() == 3 || (line.size() > 3 && !is_alnum(line[3]));
      if (sep && (id == "FHS" || id == "BHS" || id == "BTS" || id == "FTS")) {
        if (auto err = flush(i)) return *err;
        st.envelope.emplace_back(line);
      } else if (sep && id == "MSH") {
        if (auto err = flush(i)) return *err;
        msg_start = b;
      }
      i = e + 1;
    }
    if (auto err = flush(chunk.size())) return *err;
  }
  if (st.messages.empty()) return ParseError{"no MSH segment: not an HL7 v2 message", 0, "", 0};
  return st;
}

size_t Stream::batch_count() const {
  size_t bhs = 0;
  size_t bts = 0;
  for (const auto& e : envelope) {
    bhs += e.rfind("BHS", 0) == 0 ? 1 : 0;
    bts += e.rfind("BTS", 0) == 0 ? 1 : 0;
  }
  return std::max(bhs, bts);
}

std::optional<std::string> Stream::get(std::string_view path) const {
  auto p = Path::parse(path);
  if (!p || messages.empty()) return std::nullopt;
  int seen = 0;
  for (const auto& e : envelope) {
    if (e.compare(0, 3, p->segment) != 0 || ++seen != p->occurrence) continue;
    // Envelope headers carry their own MSH-1/MSH-2 style delimiters; use the message's.
    std::string text = "MSH" + e.substr(3);
    Path q = *p;
    q.segment = "MSH";
    q.occurrence = 1;
    if (p->segment != "FHS" && p->segment != "BHS") {
      // A trailer has no MSH-1/MSH-2: give it the message's, and shift its fields by two.
      text = "MSH" + std::string(1, messages[0].delimiters().field) +
             messages[0].delimiters().encoding_characters() + e.substr(3);
      if (q.field >= 1) q.field += 2;
    }
    auto m = Message::parse(text);
    if (!std::holds_alternative<Message>(m)) return std::nullopt;
    return std::get<Message>(m).get(q);
  }
  return std::nullopt;
}

}  // namespace budstikke::hl7v2
