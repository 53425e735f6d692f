#pragma once
// Writing JSON text directly, byte for byte as nlohmann::json's dump() would write the same
// value (members in bytewise key order, strings escaped by append_json_string), without
// building a nlohmann::json first. The canonical envelope and the HL7 v2 body are written
// this way: building them as nlohmann::json cost more than the rest of canonicalisation.

#include <boost/container/small_vector.hpp>

#include <string>
#include <string_view>

namespace budstikke {

// Appends `s` as a JSON string exactly as nlohmann::json's dump() of the events writes it
// (UTF-8 kept, control characters escaped, invalid UTF-8 replaced by U+FFFD).
void append_json_string(std::string& out, std::string_view s);

// Appends `items` as a JSON array, each item written to `out` by `write(out, item)`.
template <class Items, class Write>
void append_json_array(std::string& out, const Items& items, Write write) {
  out += '[';
  bool first = true;
  for (const auto& item : items) {
    if (!first) out += ',';
    first = false;
    write(out, item);
  }
  out += ']';
}

// One JSON object, written straight to `out`, each member's value JSON text. finish() puts
// the members in nlohmann's key order: members written in that order (as the envelope and
// the HL7 body are) cost no copy, others are reordered then. Keys are views: they must
// outlive finish() (string literals do). Members are written one after another: a member's
// value is complete before the next member() or raw().
class JsonObjectText {
 public:
  explicit JsonObjectText(std::string& out) : out_(out), start_(out.size()) { out_ += '{'; }
  JsonObjectText(const JsonObjectText&) = delete;
  JsonObjectText& operator=(const JsonObjectText&) = delete;

  // Starts member `key`; its value is what is appended to the returned string (`out`) until
  // the next member() or finish().
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
    size_t offset;  // of the value in out_
    size_t length;
  };
  void close() {
    if (!members_.empty()) members_.back().length = out_.size() - members_.back().offset;
  }
  std::string& out_;
  size_t start_;
  boost::container::small_vector<Member, 16> members_;
};

}  // namespace budstikke
