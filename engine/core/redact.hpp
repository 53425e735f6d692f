#pragma once
// Privacy: a Norwegian national identity number (fødselsnummer, D-number, H-number) is 11
// digits. It must never reach a log line, a Kafka key or header, or a metric label.

#include <string>
#include <string_view>

namespace budstikke {

// Replaces every run of exactly 11 digits (not part of a longer digit run) with
// "***********". Longer runs (e.g. organisation or account numbers glued together) and
// shorter ones (HER-ids, 9-digit organisation numbers) are kept, and so are digit runs inside
// hexadecimal tokens (UUIDs, hashes), which are identifiers of messages, not of people.
std::string redact_identity_numbers(std::string_view text);

// True when the text contains an 11-digit run as above.
bool contains_identity_number(std::string_view text);

// True when the 11 digits carry valid fødselsnummer/D-number check digits (mod 11).
bool is_valid_fodselsnummer(std::string_view digits);

}  // namespace budstikke
