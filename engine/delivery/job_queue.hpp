#pragma once
// A system's delivery jobs and the rule for which one goes next (design notes 46 and 47).
//
// Jobs that may go now wait in arrival order ("ready"); a job waiting for its next attempt's
// time (a retry's backoff) waits apart, by that time, and goes back to the front when it is
// due. With ordering per patient a patient's jobs go one at a time and in order: a later job
// waits while an earlier one is being sent or waits for its retry. With ordering none the
// only rule is that one job is not sent twice at once (two records of the same job).
//
// Not thread-safe: the delivery stage calls it under its worker's lock. `Job` has `final`
// (its outcome is decided; only its records are still to be written, so it holds no
// patient), `due` (a steady_clock time point), and `patient()` and `id()` (string views).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "engine/core/string_hash.hpp"

namespace budstikke::delivery {

template <typename Job>
class JobQueue {
 public:
  using Clock = std::chrono::steady_clock;
  using Ptr = std::shared_ptr<Job>;

  explicit JobQueue(bool per_patient) : per_patient_(per_patient) {}

  // A new job, behind the others.
  void push(Ptr j) { ready_.push_back(std::move(j)); }

  // A job that waits until its `due` time. Per patient, the patient's later jobs wait too.
  void wait(Ptr j) {
    if (holds_patient(*j)) {
      if (const auto it = waiting_patients_.find(j->patient()); it != waiting_patients_.end())
        ++it->second;
      else
        waiting_patients_.emplace(std::string(j->patient()), 1);
    }
    const auto due = j->due;
    later_.emplace(due, std::move(j));
  }

  // One look over the queue. What a pick skipped stays skipped for the rest of the pass
  // (nothing in between frees a patient), so the next pick of the pass goes on from where
  // the last one took its job. The jobs whose time came go to the front once, as it begins.
  class Pass {
    friend class JobQueue;
    size_t pos_ = 0;
    bool begun_ = false;
  };

  // The first job that may go at `now`, taken out of the queue, or null. `wake` is lowered
  // to the time the first waiting job is due.
  Ptr pick(Clock::time_point now, Clock::time_point& wake, Pass& pass) {
    if (!pass.begun_) {
      pass.begun_ = true;
      release(now);
    }
    if (!later_.empty()) wake = std::min(wake, later_.begin()->first);
    for (size_t i = pass.pos_; i < ready_.size(); ++i) {
      const Job& j = *ready_[i];
      if (holds_patient(j) &&
          (busy(busy_patients_, j.patient()) || busy(waiting_patients_, j.patient())))
        continue;
      if (!j.final && busy(sending_ids_, j.id())) continue;
      Ptr out = std::move(ready_[i]);
      ready_.erase(ready_.begin() + static_cast<std::ptrdiff_t>(i));
      pass.pos_ = i;
      return out;
    }
    pass.pos_ = ready_.size();
    return nullptr;
  }

  // A picked job is being sent: its patient (per patient) or its id (ordering none) is busy
  // until sent().
  void sending(const Job& j) {
    if (per_patient_)
      busy_patients_.emplace(j.patient());
    else
      sending_ids_.emplace(j.id());
  }
  void sent(const Job& j) {
    if (per_patient_)
      erase_one(busy_patients_, j.patient());
    else
      erase_one(sending_ids_, j.id());
  }

  // Takes out the jobs, ready or waiting, for which `drop(job)` is true; returns how many.
  template <typename Pred>
  size_t drop_if(Pred drop) {
    size_t n = take_ready_if(drop).size();
    for (auto it = later_.begin(); it != later_.end();) {
      if (!drop(*it->second)) {
        ++it;
        continue;
      }
      unhold(*it->second);
      it = later_.erase(it);
      ++n;
    }
    return n;
  }

  // Takes out the ready jobs for which `take(job)` is true, in queue order.
  template <typename Pred>
  std::vector<Ptr> take_ready_if(Pred take) {
    std::vector<Ptr> out;
    for (auto it = ready_.begin(); it != ready_.end();) {
      if (take(**it)) {
        out.push_back(std::move(*it));
        it = ready_.erase(it);
      } else {
        ++it;
      }
    }
    return out;
  }

  const std::deque<Ptr>& ready() const { return ready_; }
  size_t waiting() const { return later_.size(); }

 private:
  bool holds_patient(const Job& j) const { return per_patient_ && !j.final; }

  template <typename Set>
  static bool busy(const Set& s, std::string_view k) {
    return !s.empty() && s.find(k) != s.end();
  }
  template <typename Set>
  static void erase_one(Set& s, std::string_view k) {
    if (const auto it = s.find(k); it != s.end()) s.erase(it);
  }

  void unhold(const Job& j) {
    if (!holds_patient(j)) return;
    const auto it = waiting_patients_.find(j.patient());
    if (it != waiting_patients_.end() && --it->second == 0) waiting_patients_.erase(it);
  }

  // The waiting jobs due at `now` go to the front, the one due first in front.
  void release(Clock::time_point now) {
    if (later_.empty() || later_.begin()->first > now) return;
    const auto end = later_.upper_bound(now);
    std::vector<Ptr> due;
    for (auto it = later_.begin(); it != end; ++it) due.push_back(std::move(it->second));
    later_.erase(later_.begin(), end);
    for (auto it = due.rbegin(); it != due.rend(); ++it) {
      unhold(**it);
      ready_.push_front(std::move(*it));
    }
  }

  bool per_patient_;
  std::deque<Ptr> ready_;                        // every job here is due
  std::multimap<Clock::time_point, Ptr> later_;  // by due time
  // Per patient: the patients of the jobs in `later_` that hold them, counted, and of the
  // jobs being sent. Ordering none: the ids of the jobs being sent. Asked with a view of the
  // job's own key.
  std::unordered_map<std::string, int, StringHash, std::equal_to<>> waiting_patients_;
  std::unordered_multiset<std::string, StringHash, std::equal_to<>> busy_patients_;
  std::unordered_multiset<std::string, StringHash, std::equal_to<>> sending_ids_;
};

}  // namespace budstikke::delivery
