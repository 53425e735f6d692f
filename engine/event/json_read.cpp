#include "engine/event/json_read.hpp"

#include <cstdint>
#include <cstring>
#include <iterator>
#include <string>
#include <utility>

#include "engine/event/utf8.hpp"

namespace budstikke {

namespace {

using json = nlohmann::json;

constexpr int kMaxDepth = 128;

class FastReader {
 public:
  explicit FastReader(std::string_view t) : p_(t.data()), end_(t.data() + t.size()) {}

  bool document(json& out) {
    ws();
    if (!value(out, 0)) return false;
    ws();
    return p_ == end_;
  }

 private:
  const char* p_;
  const char* end_;

  void ws() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  bool value(json& out, int depth) {
    if (p_ == end_) return false;
    switch (*p_) {
      case '{':
        return object(out, depth);
      case '[':
        return array(out, depth);
      case '"': {
        std::string s;
        if (!string(s)) return false;
        out = std::move(s);
        return true;
      }
      case 't':
        return literal("true", json(true), out);
      case 'f':
        return literal("false", json(false), out);
      case 'n':
        return literal("null", json(nullptr), out);
      default:
        return number(out);
    }
  }

  bool literal(std::string_view word, json v, json& out) {
    if (static_cast<size_t>(end_ - p_) < word.size() ||
        std::memcmp(p_, word.data(), word.size()) != 0)
      return false;
    p_ += word.size();
    out = std::move(v);
    return true;
  }

  bool object(json& out, int depth) {
    if (depth >= kMaxDepth) return false;
    out = json::object();
    auto& members = out.get_ref<json::object_t&>();
    if (opens_empty('}')) return true;
    for (bool done = false; !done;) {
      if (p_ == end_ || *p_ != '"') return false;
      std::string key;
      if (!string(key)) return false;
      ws();
      if (p_ == end_ || *p_ != ':') return false;
      ++p_;
      ws();
      json v;
      if (!value(v, depth + 1)) return false;
      // Members in key order (as the engine writes them) go in at the end without a search;
      // a repeated key keeps its last value, as nlohmann's parser does.
      if (members.empty() || std::prev(members.end())->first < key)
        members.emplace_hint(members.end(), std::move(key), std::move(v));
      else
        members[std::move(key)] = std::move(v);
      if (!next('}', done)) return false;
    }
    return true;
  }

  bool array(json& out, int depth) {
    if (depth >= kMaxDepth) return false;
    out = json::array();
    auto& items = out.get_ref<json::array_t&>();
    if (opens_empty(']')) return true;
    for (bool done = false; !done;) {
      items.emplace_back();
      if (!value(items.back(), depth + 1)) return false;
      if (!next(']', done)) return false;
    }
    return true;
  }

  // Past an opening bracket and the whitespace after it: true when `close` follows at once
  // (and is passed too).
  bool opens_empty(char close) {
    ++p_;
    ws();
    if (p_ == end_ || *p_ != close) return false;
    ++p_;
    return true;
  }

  // After a member or an item: a comma (and the whitespace after it), or `close`, which sets
  // `done`; false for anything else.
  bool next(char close, bool& done) {
    ws();
    if (p_ == end_) return false;
    if (*p_ == ',') {
      ++p_;
      ws();
      return true;
    }
    if (*p_ != close) return false;
    ++p_;
    done = true;
    return true;
  }

  // One UTF-8 sequence of 2-4 bytes at p_, checked as nlohmann's lexer checks it (utf8.hpp),
  // appended to `s`.
  bool utf8(std::string& s) {
    const size_t n = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p_),
                                          static_cast<size_t>(end_ - p_));
    if (n == 0) return false;
    s.append(p_, n);
    p_ += n;
    return true;
  }

  bool string(std::string& s) {
    ++p_;
    while (true) {
      const char* q = p_;
      while (q < end_) {
        const auto c = static_cast<unsigned char>(*q);
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\') break;
        ++q;
      }
      s.append(p_, q);
      p_ = q;
      if (p_ == end_) return false;
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return false;
      if (c >= 0x80) {
        if (!utf8(s)) return false;
        continue;
      }
      if (++p_ == end_) return false;
      switch (*p_++) {
        case '"':
          s += '"';
          break;
        case '\\':
          s += '\\';
          break;
        case '/':
          s += '/';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'n':
          s += '\n';
          break;
        case 'r':
          s += '\r';
          break;
        case 't':
          s += '\t';
          break;
        default:
          return false;  // \u and anything else: nlohmann's
      }
    }
  }

  // Integers of at most 18 digits (every one fits both int64 and uint64): unsigned when not
  // negative, signed when negative, as nlohmann stores them. Anything else is declined.
  bool number(json& out) {
    const bool negative = *p_ == '-';
    const char* q = negative ? p_ + 1 : p_;
    const char* digits = q;
    uint64_t v = 0;
    while (q < end_ && *q >= '0' && *q <= '9') v = v * 10 + static_cast<uint64_t>(*q++ - '0');
    const auto n = q - digits;
    if (n == 0 || n > 18) return false;
    if (*digits == '0' && n > 1) return false;  // a leading zero: not JSON
    if (q < end_ && (*q == '.' || *q == 'e' || *q == 'E')) return false;
    p_ = q;
    if (negative)
      out = -static_cast<int64_t>(v);
    else
      out = v;
    return true;
  }
};

}  // namespace

std::optional<json> read_json_fast(std::string_view text) {
  json out;
  if (!FastReader(text).document(out)) return std::nullopt;
  return out;
}

json read_json(std::string_view text) {
  if (auto fast = read_json_fast(text)) return std::move(*fast);
  return json::parse(text, nullptr, false);
}

}  // namespace budstikke
