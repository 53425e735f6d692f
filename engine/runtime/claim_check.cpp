#include "engine/runtime/claim_check.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/core/crypto.hpp"

namespace budstikke::runtime {

namespace fs = std::filesystem;

namespace {
constexpr std::string_view kPrefix = "claim-check:sha256:";
}

Result<std::string> ClaimCheckStore::put(std::string_view bytes) {
  const std::string sha = sha256_hex(bytes);
  const fs::path dir = fs::path(dir_) / sha.substr(0, 2);
  const fs::path final_path = dir / sha;
  const std::string ref = std::string(kPrefix) + sha;
  std::error_code ec;
  if (fs::exists(final_path, ec)) return ref;
  fs::create_directories(dir, ec);
  if (ec)
    return Error::transient(ErrorDomain::kIo,
                            "claim-check: cannot create " + dir.string() + ": " + ec.message());
  const fs::path tmp = dir / (sha + ".tmp." + std::to_string(::getpid()));
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0640);
  if (fd < 0)
    return Error::transient(ErrorDomain::kIo,
                            "claim-check: open " + tmp.string() + ": " + std::strerror(errno));
  size_t off = 0;
  while (off < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n <= 0) {
      ::close(fd);
      ::unlink(tmp.c_str());
      return Error::transient(ErrorDomain::kIo,
                              "claim-check: write failed: " + std::string(std::strerror(errno)));
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    ::unlink(tmp.c_str());
    return Error::transient(ErrorDomain::kIo, "claim-check: fsync failed");
  }
  if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    ::unlink(tmp.c_str());
    return Error::transient(ErrorDomain::kIo, "claim-check: rename failed");
  }
  if (const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return ref;
}

Result<std::string> ClaimCheckStore::get(const std::string& reference) const {
  if (reference.rfind(kPrefix, 0) != 0 || reference.size() != kPrefix.size() + 64)
    return Error::permanent(ErrorDomain::kIo, "not a claim-check reference: " + reference);
  const std::string sha = reference.substr(kPrefix.size());
  for (const char c : sha)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
      return Error::permanent(ErrorDomain::kIo, "not a claim-check reference: " + reference);
  const fs::path p = fs::path(dir_) / sha.substr(0, 2) / sha;
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return Error::permanent(ErrorDomain::kIo,
                            "claim-check: " + reference + " not found in " + dir_);
  std::ostringstream o;
  o << in.rdbuf();
  std::string data = o.str();
  if (sha256_hex(data) != sha)
    return Error::permanent(ErrorDomain::kIo, "claim-check: " + reference + " is corrupted");
  return data;
}

Status ClaimCheckStore::offload(Event& e, size_t threshold) {
  auto move = [&](Blob& b) -> Status {
    if (!b.data || b.data->size() <= threshold) return {};
    auto ref = put(*b.data);
    if (!ref) return ref.error();
    b.claim_check = *ref;
    b.data.reset();
    return {};
  };
  for (auto& a : e.attachments)
    if (auto st = move(a); !st) return st;
  if (e.original)
    if (auto st = move(*e.original); !st) return st;
  return {};
}

}  // namespace budstikke::runtime
