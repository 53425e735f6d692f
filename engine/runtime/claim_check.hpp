#pragma once
// Claim-check store: bytes too large to travel inside a Kafka record are written to a
// content-addressed store and travel as "claim-check:sha256:<hex>". Writes are atomic
// (temp file, fsync, rename) and idempotent (same bytes, same name).

#include <string>
#include <string_view>

#include "engine/core/result.hpp"
#include "engine/event/event.hpp"

namespace budstikke::runtime {

class ClaimCheckStore {
 public:
  explicit ClaimCheckStore(std::string dir) : dir_(std::move(dir)) {}
  Result<std::string> put(std::string_view bytes);  // returns the reference
  Result<std::string> get(const std::string& reference) const;
  const std::string& dir() const { return dir_; }

  // Moves every inline blob of the event (attachments and original) larger than
  // `threshold` bytes into the store.
  Status offload(Event& e, size_t threshold);

 private:
  std::string dir_;
};

}  // namespace budstikke::runtime
