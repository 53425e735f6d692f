#pragma once
// HL7 v2 ER7 ("pipe and hat") messages: parse, read and write by path, re-encode.
//
// A Message owns its text (converted to UTF-8 from the MSH-18 character set) and an index of
// segment boundaries; fields, repetitions, components and sub-components are found on demand
// as views into that text (no copies until a value is unescaped). Encoding characters come
// from MSH-1/MSH-2 (any legal set). Segment terminators \r, \n and \r\n are all accepted.
//
// Paths: SEG(k)-F(r)-C-S, e.g. PID-5-1, PID-3(2)-1, OBX(3)-5-2. (k) picks the k-th segment
// of that id and (r) the r-th repetition, both from 1 (default 1). MSH-1 is the field
// separator, MSH-2 the encoding characters. Component 1 of a field without components is the
// whole field. get() returns unescaped text; get_raw() the wire text.

#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/core/result.hpp"

namespace budstikke::hl7v2 {

struct Delimiters {
  char field = '|';
  char component = '^';
  char repetition = '~';
  char escape = '\\';
  char subcomponent = '&';
  char truncation = 0;  // v2.7+, optional
  bool has_escape = true;
  bool has_subcomponent = true;
  std::string encoding_characters() const;  // MSH-2
};

struct ParseError {
  std::string message;
  int segment = 0;   // 1-based; 0 when not about a segment
  std::string path;  // e.g. MSH-2
  size_t offset = 0;
  std::string to_string() const;
};

enum class Formatting { kKeep, kRender };

struct ParseOptions {
  // Formatting escapes (\.br\ \.sp\ \H\ \N\ ...): keep them verbatim in unescaped values,
  // or render \.br\ as a line break and drop the others.
  Formatting formatting = Formatting::kKeep;
};

struct Path {
  std::string segment;
  int occurrence = 1;  // (k)
  int field = 0;       // 0: the whole segment
  int repetition = 1;  // (r)
  int component = 0;   // 0: whole field/repetition
  int subcomponent = 0;
  static std::optional<Path> parse(std::string_view text);
};

class Message {
 public:
  static std::variant<Message, ParseError> parse(std::string_view bytes,
                                                 const ParseOptions& opts = {});

  const Delimiters& delimiters() const { return d_; }
  const std::string& text() const { return text_; }  // UTF-8, segments joined by terminator_
  const std::string& charset() const { return charset_; }
  size_t segment_count() const { return segs_.size(); }
  std::string_view segment_id(size_t i) const;  // 0-based index
  std::string_view segment_raw(size_t i) const;
  size_t count(std::string_view segment_id) const;

  std::optional<std::string_view> get_raw(std::string_view path) const;
  std::optional<std::string> get(std::string_view path) const;
  std::optional<std::string_view> get_raw(const Path& p) const;
  std::optional<std::string> get(const Path& p) const;
  // get() as a view: into the message's text when the wire text holds no escape character
  // (most values), else into `scratch`, which it overwrites.
  std::optional<std::string_view> get_view(const Path& p, std::string& scratch) const;
  // Number of repetitions of a field (0 when absent).
  size_t repetitions(std::string_view segment_path) const;
  size_t repetitions(const Path& field) const;  // only segment, occurrence and field count

  // Sets a value (escaped as needed), creating fields/components as necessary.
  Status set(std::string_view path, std::string_view value);

  // The message as ER7 with these delimiters and segment terminator.
  std::string encode(const Delimiters& d, std::string_view terminator = "\r") const;
  // As received (original delimiters and the first terminator seen).
  std::string encode() const { return encode(d_, terminator_); }

  std::string unescape(std::string_view raw) const;

 private:
  std::string text_;
  std::vector<std::pair<uint32_t, uint32_t>> segs_;  // [begin, end) into text_
  // Field index, built with the segment index in one pass over the text: the positions of
  // segment i's field separators are seps_[sep_begin_[i] .. sep_begin_[i + 1]).
  std::vector<uint32_t> seps_;
  std::vector<uint32_t> sep_begin_;
  // The n-th piece (0: the segment id) of segment i split at the field separator.
  std::optional<std::string_view> field_piece(size_t i, size_t n) const;
  // Adds the segment [b, e) of text_ to both indexes.
  void add_segment(size_t b, size_t e);
  Delimiters d_;
  std::string charset_;
  std::string terminator_ = "\r";
  ParseOptions opts_;
  // Replaces segment `index`'s text with `seg` (one segment, no terminator in it).
  void replace_segment(size_t index, std::string_view seg);
};

// Escaping with a given delimiter set.
std::string escape(std::string_view value, const Delimiters& d);
std::string unescape(std::string_view raw, const Delimiters& d, Formatting f = Formatting::kKeep);

// A byte stream that may hold several messages: MLLP frames (0x0B ... 0x1C 0x0D), batch and
// file envelopes (FHS/BHS/BTS/FTS), or plain concatenated messages.
struct Stream {
  std::vector<Message> messages;
  std::vector<std::string> envelope;  // FHS/BHS/BTS/FTS segments, raw
  size_t frames = 0;                  // MLLP frames found
  size_t batch_count() const;
  // A value of an envelope segment, e.g. "BHS-4", "BTS(2)-1", "FTS-1".
  std::optional<std::string> get(std::string_view path) const;
};
std::variant<Stream, ParseError> parse_stream(std::string_view bytes,
                                              const ParseOptions& opts = {});

// True when the bytes look like HL7 v2 (MSH/FHS/BHS at the start, optionally MLLP framed).
bool looks_like_hl7(std::string_view bytes);

}  // namespace budstikke::hl7v2
