// A system's delivery jobs and which one goes next (design notes 46 and 47): per patient a
// patient's jobs go one at a time and in order, also across a retry; with ordering none
// nothing waits for a retried job; jobs waiting for a retry are apart and come back to the
// front when due.

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <gtest/gtest.h>

#include "engine/delivery/job_queue.hpp"

namespace budstikke::delivery {
namespace {

using namespace std::chrono_literals;

struct TestJob {
  std::string name;
  std::string key;
  std::string job_id;
  bool final = false;
  std::chrono::steady_clock::time_point due{};
  std::string_view patient() const { return key; }
  std::string_view id() const { return job_id; }
};
using Queue = JobQueue<TestJob>;
using Clock = Queue::Clock;
constexpr auto kNever = Clock::time_point::max();

std::shared_ptr<TestJob> job(std::string name, std::string patient, std::string id = "") {
  auto j = std::make_shared<TestJob>();
  j->job_id = id.empty() ? name : std::move(id);
  j->name = std::move(name);
  j->key = std::move(patient);
  return j;
}

// A job of `patient` that waits in `q` until `due`.
std::shared_ptr<TestJob> waiting(Queue& q, std::string name, std::string patient,
                                 Clock::time_point due, bool final = false) {
  auto j = job(std::move(name), std::move(patient));
  j->due = due;
  j->final = final;
  q.wait(j);
  return j;
}

// Patient A's jobs a1 and a2 and patient B's b1, in that order.
void push_a1_a2_b1(Queue& q) {
  q.push(job("a1", "A"));
  q.push(job("a2", "A"));
  q.push(job("b1", "B"));
}

// The names of the jobs one pass picks at `now` (at most `max`), each marked as sending.
std::vector<std::string> pass(Queue& q, Clock::time_point now, Clock::time_point* wake = nullptr,
                              size_t max = 100) {
  Queue::Pass p;
  Clock::time_point w = kNever;
  std::vector<std::string> out;
  while (out.size() < max) {
    auto j = q.pick(now, w, p);
    if (!j) break;
    q.sending(*j);
    out.push_back(j->name);
  }
  if (wake) *wake = w;
  return out;
}

TEST(JobQueue, APatientsLaterJobWaitsWhileTheEarlierIsSentOthersGo) {
  Queue q(/*per_patient=*/true);
  const Clock::time_point t0{};
  push_a1_a2_b1(q);
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"a1", "b1"}));
  // a1 delivered: a2 may go.
  q.sent(*job("a1", "A"));
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"a2"}));
  EXPECT_TRUE(pass(q, t0).empty());
}

TEST(JobQueue, ARetriedJobHoldsItsPatientAndComesBackInFrontWhenDue) {
  Queue q(/*per_patient=*/true);
  const Clock::time_point t0{};
  push_a1_a2_b1(q);
  EXPECT_EQ(pass(q, t0, nullptr, 1), (std::vector<std::string>{"a1"}));
  // a1 failed: it waits 200 ms for its retry and holds A's later job back.
  q.sent(*job("a1", "A"));
  waiting(q, "a1", "A", t0 + 200ms);
  Clock::time_point wake = kNever;
  EXPECT_EQ(q.waiting(), 1u);
  EXPECT_EQ(pass(q, t0 + 1ms, &wake), (std::vector<std::string>{"b1"}));
  EXPECT_EQ(wake, t0 + 200ms);
  EXPECT_TRUE(pass(q, t0 + 199ms).empty());
  // Due: a1 goes first, and a2 still waits for it.
  q.push(job("c1", "C"));
  EXPECT_EQ(pass(q, t0 + 200ms, &wake), (std::vector<std::string>{"a1", "c1"}));
  EXPECT_EQ(wake, kNever);
  EXPECT_EQ(q.waiting(), 0u);
}

TEST(JobQueue, WaitingJobsComeBackInTheOrderTheyAreDue) {
  Queue q(/*per_patient=*/true);
  const Clock::time_point t0{};
  for (const auto& [name, ms] : {std::pair{"late", 30}, {"early", 10}, {"middle", 20}})
    waiting(q, name, name, t0 + std::chrono::milliseconds(ms));
  q.push(job("new", "N"));
  Clock::time_point wake = kNever;
  EXPECT_EQ(pass(q, t0 + 20ms, &wake), (std::vector<std::string>{"early", "middle", "new"}));
  EXPECT_EQ(wake, t0 + 30ms);
  EXPECT_EQ(pass(q, t0 + 30ms), (std::vector<std::string>{"late"}));
}

TEST(JobQueue, AFinalJobHoldsNoPatient) {
  Queue q(/*per_patient=*/true);
  const Clock::time_point t0{};
  // Its outcome records were refused: it waits a second to write them again, and A's
  // next job need not wait for that.
  waiting(q, "a1", "A", t0 + 1s, /*final=*/true);
  q.push(job("a2", "A"));
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"a2"}));
  EXPECT_EQ(pass(q, t0 + 1s), (std::vector<std::string>{"a1"}));
}

TEST(JobQueue, WithOrderingNoneNothingWaitsForARetryButAJobIsNotSentTwiceAtOnce) {
  Queue q(/*per_patient=*/false);
  const Clock::time_point t0{};
  waiting(q, "a1", "A", t0 + 200ms);
  q.push(job("a2", "A"));
  q.push(job("x", "X", "job-7"));
  q.push(job("x-again", "X", "job-7"));  // a second record of the same job
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"a2", "x"}));
  // While "x" is being sent its second record waits; then it may go (the stage completes
  // it without sending when the first was delivered).
  EXPECT_TRUE(pass(q, t0).empty());
  auto x = job("x", "X", "job-7");
  q.sent(*x);
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"x-again"}));
}

TEST(JobQueue, APassGoesOnWhereItsLastPickTookAJob) {
  Queue q(/*per_patient=*/true);
  const Clock::time_point t0{};
  push_a1_a2_b1(q);
  Queue::Pass p;
  Clock::time_point wake = kNever;
  auto a1 = q.pick(t0, wake, p);
  q.sending(*a1);
  auto b1 = q.pick(t0, wake, p);
  ASSERT_TRUE(b1);
  EXPECT_EQ(b1->name, "b1");
  // a1 ends within the same pass: the pass does not look back (the next one will).
  q.sent(*a1);
  EXPECT_FALSE(q.pick(t0, wake, p));
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"a2"}));
}

TEST(JobQueue, DroppedJobsGoFromBothPlacesAndLetTheirPatientGo) {
  Queue q(/*per_patient=*/true);
  const Clock::time_point t0{};
  waiting(q, "a1", "A", t0 + 1s);
  q.push(job("b1", "B"));
  q.push(job("a2", "A"));
  // A rebalance takes a1's and b1's partition away.
  const size_t n = q.drop_if([](const TestJob& j) { return j.name != "a2"; });
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(q.waiting(), 0u);
  EXPECT_EQ(pass(q, t0), (std::vector<std::string>{"a2"}));
}

TEST(JobQueue, TakeReadyIfLeavesWaitingJobsAndKeepsTheOrder) {
  Queue q(/*per_patient=*/true);
  push_a1_a2_b1(q);
  waiting(q, "w", "W", Clock::time_point{} + 1s);
  // Jobs moved to another topic: only ready ones go, a waiting one stays with its patient.
  const auto taken =
      q.take_ready_if([](const TestJob& j) { return j.key == "A" || j.name == "w"; });
  ASSERT_EQ(taken.size(), 2u);
  EXPECT_EQ(taken[0]->name, "a1");
  EXPECT_EQ(taken[1]->name, "a2");
  ASSERT_EQ(q.ready().size(), 1u);
  EXPECT_EQ(q.ready().front()->name, "b1");
  EXPECT_EQ(q.waiting(), 1u);
}

}  // namespace
}  // namespace budstikke::delivery
