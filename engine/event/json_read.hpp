#pragma once
// Reading JSON text into nlohmann::json, faster than nlohmann's own parser for the text the
// engine writes itself (canonical events: ASCII or UTF-8 strings, integers, key-ordered
// members). Each route loop parses every event it reads; nlohmann's lexer was the largest
// user-space cost of those loops (BENCHMARKS.md, session 36).
//
// The result is always what json::parse(text, nullptr, false) gives: the fast reader takes
// the common forms only and hands anything else (numbers with a fraction or an exponent, or
// of more than 18 digits, \u escapes, nesting deeper than 128, and every error) to nlohmann.

#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace budstikke {

// The fast reader alone: the value, or nullopt where it declines (see above).
std::optional<nlohmann::json> read_json_fast(std::string_view text);

// `text` as json::parse(text, nullptr, false) reads it: a discarded value when it is not JSON.
nlohmann::json read_json(std::string_view text);

}  // namespace budstikke
