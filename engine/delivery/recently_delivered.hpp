#pragma once
// Jobs this process delivered, by job id, for as long as `keep` and at most `cap` of them: a
// second record of a job already delivered completes without being sent (design note 37).
// Such records come from a message ingested twice with the same event id (a file the folder
// source read again after a crash: Kafka had its event, its journal did not yet) and from a
// partition read again after a rebalance; a route's job ids are derived from the event id,
// the route and the system.
//
// Every job's duplicate check looks here under one lock, so nothing under it grows: the
// table is sized for `cap` ids when made (growing would rehash every id, 10-24 ms at 85,000-
// 170,000 ids), and the oldest id is let go by a view, without building a string.

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "engine/core/string_hash.hpp"

namespace budstikke::delivery {

class RecentlyDelivered {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kDefaultCap = 200000;

  explicit RecentlyDelivered(Clock::duration keep, size_t cap = kDefaultCap)
      : keep_(keep), cap_(cap == 0 ? 1 : cap) {
    ids_.reserve(cap_);
  }

  // Remembers `id` as delivered at `now`; lets go of ids older than `keep`, and of the
  // oldest while `cap` are held.
  void add(std::string_view id, Clock::time_point now = Clock::now()) {
    const std::lock_guard lock(mu_);
    while (!order_.empty() && (order_.size() >= cap_ || order_.front().first + keep_ < now)) {
      // The view is of the key this erases: find it first, then let it go.
      if (const auto it = ids_.find(order_.front().second); it != ids_.end()) ids_.erase(it);
      order_.pop_front();
    }
    if (const auto [it, added] = ids_.emplace(id, now); added) order_.emplace_back(now, it->first);
  }

  // True when `id` was delivered no longer than `keep` before `now`.
  bool has(std::string_view id, Clock::time_point now = Clock::now()) const {
    const std::lock_guard lock(mu_);
    const auto it = ids_.find(id);
    return it != ids_.end() && it->second + keep_ >= now;
  }

  size_t size() const {
    const std::lock_guard lock(mu_);
    return ids_.size();
  }

 private:
  const Clock::duration keep_;
  const size_t cap_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Clock::time_point, StringHash, std::equal_to<>>
      ids_;  // delivered
  // Oldest first; the views are of the map's own keys (a node's element does not move).
  std::deque<std::pair<Clock::time_point, std::string_view>> order_;
};

}  // namespace budstikke::delivery
