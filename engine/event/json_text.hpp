#pragma once
// Writing JSON text directly, byte for byte as nlohmann::json's dump() would write the same
// value (members in bytewise key order, strings escaped by append_json_string), without
// building a nlohmann::json first. The canonical envelope and the HL7 v2 body are written
// this way: building them as nlohmann::json cost more than the rest of canonicalisation.

#include <string>
#include <string_view>
#include <vector>

namespace budstikke {

// Appends `s` as a JSON string exactly as nlohmann::json's dump() of the events writes it
// (UTF-8 kept, control characters escaped, invalid UTF-8 replaced by U+FFFD).
void append_json_string(std::string& out, std::string_view s);

// The members of one JSON object, each value JSON text, written to `out` by finish() in
// nlohmann's key order. Keys are views: they must outlive finish() (string literals do).
class JsonObjectText {
 public:
  explicit JsonObjectText(std::string& out) : out_(out) {}
  JsonObjectText(const JsonObjectText&) = delete;
  JsonObjectText& operator=(const JsonObjectText&) = delete;

  // Starts member `key`; its value is what is appended to the returned string until the
  // next member() or finish().
  std::string& member(std::string_view key);
  void str(std::string_view key, std::string_view v) { append_json_string(member(key), v); }
  void str_if(std::string_view key, std::string_view v) {
    if (!v.empty()) str(key, v);
  }
  // A value already written as JSON text (an object or array built separately).
  void raw(std::string_view key, std::string_view json_text) { member(key) += json_text; }
  bool empty() const { return members_.empty(); }
  void finish();

 private:
  struct Member {
    std::string_view key;
    size_t offset;
    size_t length;
  };
  void close() {
    if (!members_.empty()) members_.back().length = buf_.size() - members_.back().offset;
  }
  std::string& out_;
  std::string buf_;
  std::vector<Member> members_;
};

}  // namespace budstikke
