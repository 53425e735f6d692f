#include "engine/core/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <random>

namespace budstikke {
namespace {

std::string to_hex(const unsigned char* data, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(n * 2, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kDigits[data[i] >> 4];
    out[2 * i + 1] = kDigits[data[i] & 0xf];
  }
  return out;
}

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

}  // namespace

namespace {

// SHA-256 with the algorithm fetched once and a context per thread: OpenSSL 3's one-shot
// EVP_Digest(EVP_sha256()) fetches the implementation and allocates a context on every call
// (EVP_MD_fetch showed in the ingest profile: one digest per message, of its original).
class Sha256 {
 public:
  ~Sha256() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  bool compute(std::string_view bytes, unsigned char* out, unsigned int* len) {
    if (!md_) md_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (!ctx_) ctx_ = EVP_MD_CTX_new();
    return md_ && ctx_ && EVP_DigestInit_ex2(ctx_, md_, nullptr) == 1 &&
           EVP_DigestUpdate(ctx_, bytes.data(), bytes.size()) == 1 &&
           EVP_DigestFinal_ex(ctx_, out, len) == 1;
  }

 private:
  EVP_MD* md_ = nullptr;
  EVP_MD_CTX* ctx_ = nullptr;
};

}  // namespace

std::string sha256_hex(std::string_view bytes) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  thread_local Sha256 sha;
  if (!sha.compute(bytes, md.data(), &len))  // the one-shot path, should that be refused
    EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr);
  return to_hex(md.data(), len);
}

namespace {

// One keyed HMAC-SHA-256 context per thread, re-initialised per message with the key it
// already holds: OpenSSL 3's one-shot HMAC() fetches the algorithm and sets the key up on
// every call, which showed in the ingest profile (two HMACs per event).
class KeyedHmac {
 public:
  ~KeyedHmac() {
    EVP_MAC_CTX_free(ctx_);
    EVP_MAC_free(mac_);
  }
  bool compute(std::string_view key, std::string_view message, unsigned char* md, size_t* len) {
    if (!mac_) mac_ = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (!mac_) return false;
    const auto* msg = reinterpret_cast<const unsigned char*>(message.data());
    if (!ctx_ || key != key_) {
      EVP_MAC_CTX_free(ctx_);
      ctx_ = EVP_MAC_CTX_new(mac_);
      key_.assign(key.data(), key.size());
      char digest[] = "SHA256";
      const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                                   OSSL_PARAM_construct_end()};
      if (!ctx_ || EVP_MAC_init(ctx_, reinterpret_cast<const unsigned char*>(key_.data()),
                                key_.size(), params) != 1) {
        EVP_MAC_CTX_free(ctx_);
        ctx_ = nullptr;
        return false;
      }
    } else if (EVP_MAC_init(ctx_, nullptr, 0, nullptr) != 1) {  // same key, fresh state
      return false;
    }
    return EVP_MAC_update(ctx_, msg, message.size()) == 1 &&
           EVP_MAC_final(ctx_, md, len, EVP_MAX_MD_SIZE) == 1;
  }

 private:
  EVP_MAC* mac_ = nullptr;
  EVP_MAC_CTX* ctx_ = nullptr;
  std::string key_;
};

}  // namespace

std::string hmac_sha256_hex(std::string_view key, std::string_view message) {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  thread_local KeyedHmac keyed;
  size_t len = 0;
  if (!keyed.compute(key, message, md.data(), &len)) {
    unsigned int n = 0;  // the one-shot path, should the provider refuse the cached one
    HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
         reinterpret_cast<const unsigned char*>(message.data()), message.size(), md.data(), &n);
    len = n;
  }
  return to_hex(md.data(), len);
}

void append_base64(std::string& out, std::string_view in) {
  // Sized once and written through a pointer: push_back per character was most of the cost.
  const size_t at = out.size();
  out.resize(at + (in.size() + 2) / 3 * 4);
  char* o = out.data() + at;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    *o++ = kB64[(v >> 18) & 63];
    *o++ = kB64[(v >> 12) & 63];
    *o++ = kB64[(v >> 6) & 63];
    *o++ = kB64[v & 63];
  }
  if (i + 1 == in.size()) {
    const uint32_t v = uint32_t{p[i]} << 16;
    *o++ = kB64[(v >> 18) & 63];
    *o++ = kB64[(v >> 12) & 63];
    *o++ = '=';
    *o++ = '=';
  } else if (i + 2 == in.size()) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8);
    *o++ = kB64[(v >> 18) & 63];
    *o++ = kB64[(v >> 12) & 63];
    *o++ = kB64[(v >> 6) & 63];
    *o++ = '=';
  }
}

std::string base64_encode(std::string_view in) {
  std::string out;
  append_base64(out, in);
  return out;
}

std::optional<std::string> base64_decode(std::string_view in) {
  static const std::array<int8_t, 256> kTable = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 64; ++i) t[static_cast<unsigned char>(kB64[i])] = static_cast<int8_t>(i);
    return t;
  }();
  std::string out;
  out.reserve(in.size() / 4 * 3);
  uint32_t acc = 0;
  int bits = 0;
  int pad = 0;
  size_t symbols = 0;
  for (const char ch : in) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      ++pad;
      ++symbols;
      continue;
    }
    if (pad > 0 || kTable[c] < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(kTable[c]);
    bits += 6;
    ++symbols;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  if (symbols % 4 != 0 || pad > 2) return std::nullopt;
  return out;
}

std::string uuid_v4() {
  std::array<unsigned char, 16> b{};
  // Random bytes from OpenSSL's DRBG, fetched 4 KB at a time per thread (one call per 256
  // ids instead of one each: the call takes locks).
  thread_local std::array<unsigned char, 4096> pool{};
  thread_local size_t used = pool.size();
  if (used + b.size() > pool.size()) {
    if (RAND_bytes(pool.data(), static_cast<int>(pool.size())) == 1) {
      used = 0;
    } else {
      thread_local std::mt19937_64 rng{std::random_device{}()};
      for (auto& x : pool) x = static_cast<unsigned char>(rng());
      used = 0;
    }
  }
  std::copy_n(pool.begin() + static_cast<std::ptrdiff_t>(used), b.size(), b.begin());
  std::fill_n(pool.begin() + static_cast<std::ptrdiff_t>(used), b.size(), 0);
  used += b.size();
  b[6] = static_cast<unsigned char>((b[6] & 0x0f) | 0x40);
  b[8] = static_cast<unsigned char>((b[8] & 0x3f) | 0x80);
  const std::string h = to_hex(b.data(), b.size());
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

}  // namespace budstikke
