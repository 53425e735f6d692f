#pragma once
// Hashing and encoding helpers built on OpenSSL's libcrypto.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace budstikke {

// Lower-case hex SHA-256 of the bytes.
std::string sha256_hex(std::string_view bytes);

// Lower-case hex HMAC-SHA-256 of the message under the key.
std::string hmac_sha256_hex(std::string_view key, std::string_view message);

std::string base64_encode(std::string_view bytes);
void append_base64(std::string& out, std::string_view bytes);  // base64_encode, appended
// Decodes standard base64; whitespace (as found in XML payloads) is skipped.
// Returns nullopt on any other invalid character or a bad length.
std::optional<std::string> base64_decode(std::string_view text);

// A random version-4 UUID in canonical text form.
std::string uuid_v4();

}  // namespace budstikke
