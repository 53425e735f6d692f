#include "engine/delivery/delivery.hpp"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <nlohmann/json.hpp>

#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/thread_name.hpp"
#include "engine/core/time.hpp"
#include "engine/delivery/job_queue.hpp"
#include "engine/delivery/recently_delivered.hpp"
#include "engine/event/json_text.hpp"
#include "engine/runtime/engine.hpp"
#include "engine/runtime/ingest.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::delivery {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace asio = boost::asio;

namespace {
constexpr std::string_view kModule = "delivery";
}

std::string deliver_topic(const std::string& prefix, const std::string& system) {
  return prefix + "deliver." + system;
}

std::string dlq_topic(const std::string& prefix, const std::string& system) {
  return prefix + "dlq." + system;
}

std::string route_jobs_topic(const std::string& prefix, const std::string& route) {
  return prefix + "jobs." + route;
}

std::string route_jobs_pattern(const std::string& prefix) {
  std::string out = "^";
  for (const char c : prefix) {
    if (std::strchr(".^$|()[]{}*+?\\", c)) out += '\\';
    out += c;
  }
  return out + "jobs\\..+";
}

std::vector<bus::TopicSpec> delivery_topics(const std::string& prefix,
                                            const registry::Registry& reg,
                                            const std::vector<std::string>& routes,
                                            int job_partitions) {
  std::vector<bus::TopicSpec> out;
  out.reserve(routes.size() + reg.systems().size());
  // Keyed by patient, by default the engine's partition count: several engines share a
  // route's jobs. One engine alone gains from fewer (delivery.job_topic_partitions).
  for (const auto& r : routes)
    out.push_back({route_jobs_topic(prefix, r), job_partitions > 0 ? job_partitions : -1, -1, {}});
  for (const auto& s : reg.systems()) {
    // One partition per system: its per-patient order is kept in process by key, and 200
    // systems x 2 topics stay cheap for a single broker.
    out.push_back({deliver_topic(prefix, s.id), 1, -1, {}});
    out.push_back({dlq_topic(prefix, s.id), 1, -1, {{"retention.ms", "-1"}}});
    if (s.connector.type == "kafka")
      out.push_back({prefix + s.connector.path, -1, -1, {}, /*counts_are_ours=*/false});
  }
  out.push_back({prefix + kRouteFailedTopic, -1, -1, {{"retention.ms", "2592000000"}}});
  return out;
}

std::string outcome_tracking_json(const OutcomeTracking& o, std::string_view at) {
  std::string out;
  out.reserve(320 + o.detail.size());
  JsonObjectText t(out);
  t.str("at", at);
  t.member("attempts") += std::to_string(o.attempts);
  if (!o.detail.empty()) t.str("detail", redact_identity_numbers(o.detail));
  t.str_if("engine", o.engine);
  t.str("event_id", o.event_id);
  t.str("job_id", o.job_id);
  if (o.latency_ms) t.member("latency_ms") += std::to_string(*o.latency_ms);
  t.str_if("message_id", o.message_id);
  t.str("route", o.route);
  t.str("state", o.state);
  t.str("system", o.system);
  t.finish();
  return out;
}

std::string delivered_job_id(std::string_view t) {
  // The record is the stage's own JSON text (outcome_tracking_json): a quote inside a string
  // value is escaped, so these member patterns match members only.
  if (t.find(R"("state":"delivered")") == std::string_view::npos) return {};
  constexpr std::string_view kKey = R"("job_id":")";
  const auto at = t.find(kKey);
  if (at == std::string_view::npos) return {};
  const auto from = at + kKey.size();
  const auto to = t.find('"', from);
  if (to == std::string_view::npos) return {};
  const std::string_view id = t.substr(from, to - from);
  if (id.empty() || id.find('\\') != std::string_view::npos) return {};
  return std::string(id);
}

namespace {

struct Job {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;
  // The record's headers live in dj.headers (one per name, the last of a name kept), all
  // but the receipt context, which is kept apart: it is not sent to the receiver.
  runtime::DeliveryJob dj;
  std::optional<std::string> receipt;  // bs-receipt
  int attempts = 0;
  Clock::time_point due = Clock::now();
  std::string last_error;
  uint64_t generation = 0;  // of its partition's assignment; see on_revoke
  bool final = false;       // outcome decided; its records still to be produced
  bool ok = false;
  bool permanent = false;
  std::string response;
  Clock::time_point read_at = Clock::now();  // taken off its topic
  bool from_route_topic = false;             // read from a jobs.<route> topic
  bool failed_fast = false;                  // its last attempt failed fast (breaker open)
  const std::string* find(std::string_view name) const {
    if (name == header::kReceipt) return receipt ? &*receipt : nullptr;
    for (const auto& [k, v] : dj.headers)
      if (k == name) return &v;
    return nullptr;
  }
  std::string h(std::string_view name) const {
    const std::string* v = find(name);
    return v ? *v : std::string();
  }
  // Every header of the record, the receipt context included.
  std::vector<bus::Header> all_headers() const {
    std::vector<bus::Header> out;
    out.reserve(dj.headers.size() + 1);
    for (const auto& [k, v] : dj.headers) out.push_back({k, v});
    if (receipt) out.push_back({header::kReceipt, *receipt});
    return out;
  }
  // For JobQueue.
  std::string_view patient() const { return dj.key; }
  std::string_view id() const { return dj.job_id; }
};

using JobPtr = std::shared_ptr<Job>;

}  // namespace

struct DeliveryStage::Impl {
  struct Worker;
  DeliverySettings settings;
  std::shared_ptr<const registry::Registry> reg;
  const SinkFactories& sinks;
  bus::Producer& producer;
  const runtime::CodecRegistry& codecs;
  DeliveryCounters counters;

  std::unique_ptr<bus::Consumer> consumer;
  std::thread consumer_thread;
  // Jobs the tracking topic recorded as delivered before this start (see
  // DeliverySettings::skip_delivered_lookback); read by the consumer thread only.
  std::unordered_set<std::string> delivered_before;
  std::unordered_set<std::string> receipts_before;  // keys on apprec.outbound
  metrics::Counter* m_skipped = nullptr;
  metrics::Counter* m_idle_paused = nullptr;  // pause_idle_own_topics
  metrics::Counter* m_idle_woken = nullptr;

  // Jobs this process delivered (note 37): a second record of one is not sent, a replay
  // (bs-replay-of) always is. Made only when skip_delivered_lookback is set.
  std::unique_ptr<RecentlyDelivered> recently_delivered;
  bool remembers() const { return settings.skip_delivered_lookback.count() > 0; }
  // A job another record of which this process delivered (see RecentlyDelivered).
  bool delivered_already(const Job& j) {
    return remembers() && !j.dj.job_id.empty() && !j.find(header::kReplayOf) &&
           recently_delivered->has(j.dj.job_id);
  }
  // Completes such a job: no send, no outcome records (its first record has them).
  void complete_duplicate(Worker& w, const JobPtr& j) {
    w.finished();
    counters.skipped_delivered.fetch_add(1);
    m_skipped->inc();
    const std::lock_guard lock(done_mu);
    done.push_back(j);
  }
  std::atomic<bool> stopping{false};

  // Completions, from workers and producer callbacks to the consumer thread.
  std::mutex done_mu;
  std::vector<JobPtr> done;

  // The event loops of the connectors that send asynchronously, a thread each; a system's
  // sends, timers and pump() all run on one of them (declared before the workers: their
  // sinks and timers go first).
  struct Loop {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::thread thread;
  };
  std::vector<std::unique_ptr<Loop>> loops;

  struct Worker {
    Worker(const registry::System& s, Impl& st)
        : sys(&s), stage(&st), jobs(s.ordering == registry::Ordering::kPerPatient) {}
    const registry::System* sys;
    Impl* stage;
    std::mutex mu;
    std::condition_variable cv;
    // Its jobs: ready ones in order, ones waiting for a retry apart (a system that is down
    // holds hundreds to thousands of them, and a dispatch does not look at them), and which
    // may go next: per patient one at a time and in order; with ordering none, a job's
    // second record waits while the first is being sent and is then not sent when the first
    // was delivered (RecentlyDelivered). Design notes 46 and 47.
    JobQueue<Job> jobs;
    int pending = 0;  // queued + in flight + outcome in flight
    bool paused = false;
    bool stop = false;
    // Circuit breaker.
    int consecutive_failures = 0;
    Clock::time_point open_until{};
    bool trial_in_flight = false;
    // Rate limit.
    Clock::time_point next_slot{};
    std::vector<std::thread> threads;
    std::mt19937_64 rng{std::random_device{}()};
    // Jobs read from a jobs.<route> topic while this system holds max_pending jobs, or
    // after its jobs from there waited over move_after, move to deliver.<system>
    // ("moving"), and keep moving until every moved job has been read back from there: a
    // later job never overtakes an earlier one of its patient. Consumer thread, except the
    // two atomics (producer callbacks).
    bool moving = false;
    int64_t own_read = -1;               // highest offset read from deliver.<system>
    std::atomic<int64_t> moved_end{-1};  // highest offset a moved job got there
    std::atomic<int> moves_in_flight{0};
    // pause_idle_own_topics: deliver.<system> is paused because it was read to its end
    // (`idle_end`, the offset its next record gets); consumer thread.
    bool idle = false;
    int64_t idle_end = -1;
    metrics::Counter* m_moved = nullptr;
    // Metrics of this system (labels: system id only).
    metrics::Counter* m_delivered = nullptr;
    metrics::Counter* m_failed = nullptr;
    metrics::Counter* m_retried = nullptr;
    metrics::Counter* m_dead = nullptr;
    metrics::Counter* m_opened = nullptr;
    metrics::Histogram* m_latency = nullptr;
    metrics::Histogram* m_wait = nullptr;
    void init_metrics() {
      auto& g = metrics::global();
      const metrics::Labels l = {{"system", sys->id}};
      m_delivered = &g.counter("budstikke_delivered_total",
                               "Delivery jobs the receiving system confirmed.", l);
      m_failed = &g.counter("budstikke_delivery_attempts_failed_total",
                            "Delivery attempts that failed (each retry counts).", l);
      m_retried =
          &g.counter("budstikke_retried_total", "Delivery jobs scheduled for another attempt.", l);
      m_dead = &g.counter("budstikke_dead_lettered_total",
                          "Delivery jobs moved to dlq.<system> after the last attempt.", l);
      m_opened = &g.counter("budstikke_delivery_circuit_opened_total",
                            "Times the system's circuit breaker opened (the failure threshold "
                            "reached, or a trial delivery failed): while open, deliveries fail "
                            "fast as retriable without calling the system.",
                            l);
      m_latency = &g.histogram("budstikke_delivery_latency_seconds",
                               "Ingest (canonical event on Kafka) to confirmed delivery.", l);
      m_moved = &g.counter("budstikke_delivery_jobs_moved_total",
                           "Jobs read from a route's jobs.<route> topic and moved to "
                           "deliver.<system>: the system held its maximum of pending jobs, or "
                           "its jobs from there waited over a second.",
                           l);
      m_wait = &g.histogram("budstikke_delivery_queue_wait_seconds",
                            "A job read from deliver.<system> to its first attempt: high values "
                            "mean the system's concurrency or rate limit holds deliveries back.",
                            l);
    }

    void start(int n) {
      if (on_loop) {
        slots.resize(static_cast<size_t>(n));
        timer = std::make_unique<asio::steady_timer>(*loop);
        return;
      }
      for (int i = 0; i < n; ++i)
        threads.emplace_back([this] {
          set_thread_name("d:" + sys->id);
          run();
        });
    }
    // Queues a job; its worker thread is woken by wake() (after a burst of jobs).
    void enqueue(JobPtr j) {
      const std::lock_guard lock(mu);
      jobs.push(std::move(j));
      ++pending;
    }
    // Wakes a thread per job queued since the last wake, up to all of them; on a loop, pump()
    // once.
    void wake(int queued) {
      if (on_loop) {
        asio::post(*loop, [this] { pump(); });
      } else if (queued >= static_cast<int>(threads.size())) {
        cv.notify_all();
      } else {
        for (int i = 0; i < queued; ++i) cv.notify_one();
      }
    }
    int to_wake = 0;  // jobs queued in this burst (consumer thread)
    void requeue(JobPtr j, Clock::time_point due) {
      {
        const std::lock_guard lock(mu);
        j->due = due;
        jobs.wait(std::move(j));
      }
      if (on_loop)
        asio::post(*loop, [this] { pump(); });
      else
        cv.notify_all();
    }
    void finished() {
      const std::lock_guard lock(mu);
      --pending;
    }

    // One attempt to deliver a job, from begin_attempt to end_attempt.
    struct Attempt {
      JobPtr job;
      bool fast_fail = false;  // the breaker is open: no send
      bool trial = false;      // the one send the half-open breaker lets through
      Clock::time_point slot;  // when the rate limit lets it go
    };

    // Under mu, for a job pick() gave that is neither final nor a duplicate: its key or id
    // busy, the breaker's and the rate limit's say.
    Attempt begin_attempt(JobPtr j, Clock::time_point now) {
      Attempt a;
      jobs.sending(*j);
      if (j->attempts == 0)
        m_wait->observe_ms(std::chrono::duration<double, std::milli>(now - j->read_at).count());
      // Circuit breaker: open -> fail fast; after open_ms one trial goes through.
      if (consecutive_failures >= sys->breaker.failure_threshold) {
        if (now < open_until || trial_in_flight) {
          a.fast_fail = true;
        } else {
          a.trial = true;
          trial_in_flight = true;
        }
      }
      // Rate limit: take the next slot.
      a.slot = now;
      if (sys->rate_limit > 0 && !a.fast_fail) {
        a.slot = std::max(now, next_slot);
        next_slot = a.slot + std::chrono::microseconds(1000000 / sys->rate_limit);
      }
      a.job = std::move(j);
      return a;
    }

    runtime::DeliveryResult breaker_open() const {
      return runtime::DeliveryResult::retriable("circuit open after " +
                                                std::to_string(sys->breaker.failure_threshold) +
                                                " consecutive failures");
    }

    // Under mu: the attempt's result. True when the job's outcome is decided (the caller
    // then calls stage->finish without the lock); false when it waits for another attempt.
    bool end_attempt(const Attempt& a, const runtime::DeliveryResult& r) {
      const JobPtr& j = a.job;
      // Remembered before its id is free, so a second record of the job never finds it
      // neither sending nor delivered.
      if (r.is_ok() && stage->remembers()) stage->recently_delivered->add(j->dj.job_id);
      jobs.sent(*j);
      if (a.trial) trial_in_flight = false;
      ++j->attempts;
      if (!a.fast_fail) {
        const int threshold = sys->breaker.failure_threshold;
        if (r.is_ok()) {
          if (consecutive_failures >= threshold)
            log::info(kModule, "circuit closed: a delivery went through", {{"system", sys->id}});
          consecutive_failures = 0;
        } else if (r.kind == runtime::DeliveryResult::Kind::kRetriable) {
          if (++consecutive_failures >= threshold) {
            open_until = Clock::now() + std::chrono::milliseconds(sys->breaker.open_ms);
            // Opened: the threshold reached, or the half-open trial failed. (Sends that were
            // in flight when it opened and fail only push open_until on.)
            if (consecutive_failures == threshold || a.trial) {
              m_opened->inc();
              log::warn(kModule, "circuit open: deliveries fail fast until a trial",
                        {{"system", sys->id},
                         {"consecutive_failures", std::to_string(consecutive_failures)},
                         {"trial_in_ms", std::to_string(sys->breaker.open_ms)},
                         {"last_error", r.reason.substr(0, 200)}});
            }
          }
        }
      }
      if (r.is_ok()) {
        j->final = true;
        j->ok = true;
        j->response = r.response;
        return true;
      }
      stage->counters.failed_attempts.fetch_add(1);
      m_failed->inc();
      j->last_error = r.reason;
      const bool permanent = r.kind == runtime::DeliveryResult::Kind::kPermanent;
      if (!permanent && j->attempts < sys->retry.max_attempts) {
        const int64_t wait = sys->retry.wait_ms(j->attempts + 1, rng);
        stage->counters.retried.fetch_add(1);
        m_retried->inc();
        j->due = Clock::now() + std::chrono::milliseconds(wait);
        // While the breaker is open a job's attempts fail fast, as often as its backoff
        // allows: the first of such a row is tracked, the rest count in the attempts its
        // next tracked outcome carries (a down system's every job wrote one record per
        // attempt, ~1,600 a second at 2,000 routed msg/s; BENCHMARKS.md, session 38).
        if (!a.fast_fail)
          stage->track(*this, *j, "attempt_failed", r.reason);
        else if (!j->failed_fast)
          stage->track(*this, *j, "attempt_failed",
                       r.reason +
                           " (the attempts that fail fast while it stays open are "
                           "tracked once)");
        j->failed_fast = a.fast_fail;
        jobs.wait(j);
        return false;
      }
      j->final = true;
      j->permanent = permanent;
      return true;
    }

    // A worker thread (blocking connectors).
    void run() {
      std::unique_ptr<runtime::Sink> sink;
      std::unique_lock lock(mu);
      for (;;) {
        if (stop) return;
        const auto now = Clock::now();
        // Every change to the queue notifies (enqueue, requeue, a finished job, stop): the
        // timeout is a fallback, not a poll. (At 200 ms, the ~480 worker threads of the
        // example registry woke ~2,400 times a second with nothing to do.)
        auto wake_at = now + std::chrono::seconds(5);
        JobQueue<Job>::Pass pass;  // one pick
        JobPtr j = jobs.pick(now, wake_at, pass);
        if (!j) {
          cv.wait_until(lock, wake_at);
          continue;
        }
        if (j->final) {
          lock.unlock();
          stage->finish(*this, j);
          lock.lock();
          continue;
        }
        if (j->attempts == 0 && stage->delivered_already(*j)) {
          lock.unlock();
          stage->complete_duplicate(*this, j);
          lock.lock();
          continue;
        }
        const Attempt a = begin_attempt(std::move(j), now);
        lock.unlock();
        runtime::DeliveryResult r;
        if (a.fast_fail) {
          r = breaker_open();
        } else {
          if (a.slot > Clock::now()) std::this_thread::sleep_until(a.slot);
          if (!sink) {
            const SinkFactory* f = stage->sinks.find(sys->connector.type);
            if (!f) {
              r = runtime::DeliveryResult::permanent("no connector for '" + sys->connector.type +
                                                     "'");
            } else if (auto created = (*f)(*sys); !created) {
              r = runtime::DeliveryResult::retriable("connector: " + created.error().message);
            } else {
              sink = std::move(*created);
            }
          }
          if (sink) r = sink->send(a.job->dj);
        }
        lock.lock();
        if (!end_attempt(a, r)) {
          cv.notify_one();  // another worker may take what this one does not
          continue;
        }
        lock.unlock();
        stage->finish(*this, a.job);
        lock.lock();
        // Its key is free: at most one job more can run now, and this thread picks one
        // itself; one more worker is enough (all of them woken were a thundering herd).
        cv.notify_one();
      }
    }

    // On the stage's loop (connectors added with add_on_loop): `concurrency` sinks and no
    // threads. Every change to the queue (a job queued or requeued, an attempt's end) and
    // the timer (the next retry's or rate slot's time) runs pump(), which starts as many
    // sends as there are free sinks.
    bool on_loop = false;
    asio::io_context* loop = nullptr;
    struct Slot {
      std::unique_ptr<runtime::Sink> sink;
      bool busy = false;
    };
    std::vector<Slot> slots;
    int in_flight = 0;  // slots busy
    std::unique_ptr<asio::steady_timer> timer;
    Clock::time_point timer_at = Clock::time_point::max();

    // Under mu: pump() again at `at` unless it runs sooner anyway.
    void arm(Clock::time_point at) {
      if (at >= timer_at) return;
      timer_at = at;
      timer->expires_at(at);
      timer->async_wait([this](boost::system::error_code ec) {
        if (ec) return;  // re-armed or stopped
        {
          const std::lock_guard lock(mu);
          timer_at = Clock::time_point::max();
        }
        pump();
      });
    }

    void pump() {
      for (;;) {
        std::vector<JobPtr> finals;
        std::vector<JobPtr> duplicates;
        std::vector<Attempt> fast_fails;
        std::vector<std::pair<Attempt, size_t>> sends;
        {
          const std::lock_guard lock(mu);
          if (stop) return;
          const auto now = Clock::now();
          auto wake_at = Clock::time_point::max();
          size_t free_slot = 0;
          JobQueue<Job>::Pass pass;
          while (in_flight < static_cast<int>(slots.size())) {
            JobPtr j = jobs.pick(now, wake_at, pass);
            if (!j) break;
            if (j->final) {
              finals.push_back(std::move(j));
            } else if (j->attempts == 0 && stage->delivered_already(*j)) {
              duplicates.push_back(std::move(j));
            } else if (Attempt a = begin_attempt(std::move(j), now); a.fast_fail) {
              fast_fails.push_back(std::move(a));
            } else {
              while (slots[free_slot].busy) ++free_slot;
              slots[free_slot].busy = true;
              ++in_flight;
              sends.emplace_back(std::move(a), free_slot);
            }
          }
          if (wake_at != Clock::time_point::max()) arm(wake_at);
        }
        for (auto& j : finals) stage->finish(*this, j);
        for (auto& j : duplicates) stage->complete_duplicate(*this, j);
        for (auto& [a, slot] : sends) {
          if (a.slot <= Clock::now()) {
            send(std::move(a), slot);
            continue;
          }
          // The rate limit's slot: the send waits for it holding its connection, as a worker
          // thread would sleep.
          auto t = std::make_shared<asio::steady_timer>(*loop, a.slot);
          t->async_wait([this, a = std::move(a), slot = slot, t](boost::system::error_code) {
            send(a, slot);
          });
        }
        // A fast failure ends at once and may let a job behind it (a later one of the same
        // patient) go: look again, in this loop rather than by recursion.
        if (fast_fails.empty()) return;
        for (auto& a : fast_fails) attempt_ended(a, std::nullopt, breaker_open());
      }
    }

    void send(Attempt a, size_t slot) {
      Slot& s = slots[slot];  // busy: this attempt's alone
      if (!s.sink) {
        const LoopSinkFactory* f = stage->sinks.find_on_loop(sys->connector.type);
        auto created = (*f)(*sys, *loop);
        if (!created) {
          attempt_ended(
              a, slot, runtime::DeliveryResult::retriable("connector: " + created.error().message));
          asio::post(*loop, [this] { pump(); });
          return;
        }
        s.sink = std::move(*created);
      }
      const runtime::DeliveryJob& job = a.job->dj;
      s.sink->send_async(job, [this, a = std::move(a), slot](const runtime::DeliveryResult& r) {
        attempt_ended(a, slot, r);
        pump();
      });
    }

    // An attempt ended (on the loop): its result, its slot free again.
    void attempt_ended(const Attempt& a, std::optional<size_t> slot,
                       const runtime::DeliveryResult& r) {
      bool final = false;
      {
        const std::lock_guard lock(mu);
        final = end_attempt(a, r);
        if (slot) {
          slots[*slot].busy = false;
          if (--in_flight == 0 && stop) cv.notify_all();
        }
      }
      if (final) stage->finish(*this, a.job);
    }
  };

  std::map<std::string, std::unique_ptr<Worker>> workers;  // by deliver topic

  // The stages running in this process, for `budstikke_delivery_jobs` (computed when
  // scraped; a reload can have two, whose figures add up).
  struct Live {
    std::mutex mu;
    std::set<const Impl*> stages;
  };
  static Live& live() {
    static Live l;
    return l;
  }
  static void register_jobs_gauge() {
    static std::once_flag once;
    std::call_once(once, [] {
      metrics::global().gauge(
          "budstikke_delivery_jobs",
          "Delivery jobs a system holds in this engine, not yet sent: state=\"ready\" may go "
          "when a connection is free (and its patient's earlier job is done), state=\"retry\" "
          "waits for its next attempt's time. Many in retry: the system fails, and its "
          "jobs are on their way to dlq.<system>.",
          [] {
            std::map<std::string, std::pair<size_t, size_t>> per;  // system -> ready, retry
            {
              auto& l = live();
              const std::lock_guard lock(l.mu);
              for (const Impl* im : l.stages)
                for (const auto& [t, w] : im->workers) {
                  const std::lock_guard wl(w->mu);
                  auto& v = per[w->sys->id];
                  v.first += w->jobs.ready().size();
                  v.second += w->jobs.waiting();
                }
            }
            std::vector<metrics::GaugeSample> out;
            for (const auto& [id, v] : per) {
              out.push_back({{{"system", id}, {"state", "ready"}}, static_cast<double>(v.first)});
              out.push_back({{{"system", id}, {"state", "retry"}}, static_cast<double>(v.second)});
            }
            return out;
          });
    });
  }
  void set_live(bool on) {
    auto& l = live();
    const std::lock_guard lock(l.mu);
    if (on)
      l.stages.insert(this);
    else
      l.stages.erase(this);
  }

  Impl(DeliverySettings s, std::shared_ptr<const registry::Registry> r, const SinkFactories& sf,
       bus::Producer& p, const runtime::CodecRegistry& c)
      : settings(std::move(s)), reg(std::move(r)), sinks(sf), producer(p), codecs(c) {
    if (remembers())
      recently_delivered = std::make_unique<RecentlyDelivered>(settings.skip_delivered_lookback);
  }

  std::string tracking_json(const Job& j, const char* state, std::string_view detail) const {
    OutcomeTracking o;
    o.state = state;
    o.attempts = j.attempts;
    o.detail = detail;
    o.event_id = j.dj.event_id;
    o.job_id = j.dj.job_id;
    if (const auto* route = j.find(header::kRoute)) o.route = *route;
    o.message_id = j.dj.idempotency_key;
    o.system = j.dj.system;
    o.engine = settings.instance;
    // Ingest (the canonical record's time) to this outcome.
    const int64_t now = now_epoch_ms();
    if (const auto* received = j.find(header::kReceivedMs); received && !received->empty()) {
      char* end = nullptr;
      const long long ms = std::strtoll(received->c_str(), &end, 10);
      if (end && *end == '\0' && ms > 0) o.latency_ms = now - ms;
    }
    return outcome_tracking_json(o, rfc3339_from_ms(now));
  }

  // A tracking record that nothing waits for (attempt failures).
  void track(Worker&, const Job& j, const char* state, const std::string& detail) {
    bus::Record rec{settings.topic_prefix + runtime::kTrackingTopic,
                    j.h(header::kTrackingKey),
                    tracking_json(j, state, detail),
                    {{"bs-state", state}, {"bs-system", j.dj.system}},
                    -1};
    (void)producer.send(rec, [](const Result<bus::Delivery>&) {});
  }

  // Produces the outcome records; the job completes when Kafka has all of them.
  void finish(Worker& w, const JobPtr& j) {
    std::vector<bus::Record> recs;
    const std::string prefix = settings.topic_prefix;
    std::string receipt_detail;
    if (j->ok) {
      recs.push_back({prefix + runtime::kTrackingTopic,
                      j->h(header::kTrackingKey),
                      tracking_json(*j, "delivered", std::string_view(j->response).substr(0, 200)),
                      {{"bs-state", "delivered"}, {"bs-system", j->dj.system}},
                      -1});
    } else {
      const std::string reason =
          (j->permanent ? "rejected by the receiver: "
                        : "gave up after " + std::to_string(j->attempts) + " attempts: ") +
          j->last_error;
      receipt_detail = reason;
      bus::Record dlq;
      dlq.topic = dlq_topic(prefix, j->dj.system);
      dlq.key = j->dj.key;
      dlq.value = j->dj.payload;
      for (auto& hd : j->all_headers())
        if (hd.key != header::kAttempts && hd.key != header::kReason)
          dlq.headers.push_back(std::move(hd));
      dlq.headers.push_back({header::kAttempts, std::to_string(j->attempts)});
      dlq.headers.push_back({header::kReason, redact_identity_numbers(reason)});
      dlq.headers.push_back({"bs-failed-at", now_rfc3339()});
      recs.push_back(std::move(dlq));
      recs.push_back({prefix + runtime::kTrackingTopic,
                      j->h(header::kTrackingKey),
                      tracking_json(*j, "dead_lettered", reason),
                      {{"bs-state", "dead_lettered"}, {"bs-system", j->dj.system}},
                      -1});
    }
    // A receipt for the sender: positive when the receiver confirmed, negative when the
    // message could not be delivered.
    const std::string codec_name = j->h(header::kReceiptCodec);
    if (!codec_name.empty()) {
      const runtime::Codec* codec = codecs.find(codec_name);
      const json ctx = json::parse(j->h(header::kReceipt), nullptr, false);
      if (codec && !ctx.is_discarded()) {
        runtime::ReceiptOutcome o;
        o.ok = j->ok;
        if (!j->ok) {
          o.code = "X99";
          o.text = "Annen feil";
          o.detail = "Meldingen kunne ikke leveres til mottakeren (" + j->dj.system + ")";
        }
        std::string format;
        auto receipt = codec->build_receipt(ctx, o, format);
        if (receipt) {
          auto to = party_from_json(ctx.value("sender", json::object()));
          recs.push_back(runtime::receipt_record(prefix, "a:" + sha256_hex(j->dj.job_id),
                                                 std::move(*receipt), format, to ? *to : Party{},
                                                 j->h(header::kIdempotencyKey),
                                                 j->ok ? "ok" : "rejected", j->dj.event_id));
          counters.receipts.fetch_add(1);
        } else {
          log::warn(kModule, "receipt not built",
                    {{"system", j->dj.system}, {"error", receipt.error().message}});
        }
      }
    }
    struct Pending {
      std::atomic<int> left{0};
      std::atomic<bool> failed{false};
    };
    auto p = std::make_shared<Pending>();
    p->left = static_cast<int>(recs.size());
    Worker* wp = &w;
    auto on_all = [this, wp, j, p]() {
      if (p->failed) {
        log::warn(kModule, "outcome records not confirmed by Kafka; will retry",
                  {{"system", j->dj.system}});
        wp->requeue(j, Clock::now() + std::chrono::seconds(1));
        return;
      }
      if (j->ok) {
        counters.delivered.fetch_add(1);
        wp->m_delivered->inc();
        const std::string received = j->h(header::kReceivedMs);
        char* end = nullptr;
        const long long ms = std::strtoll(received.c_str(), &end, 10);
        if (!received.empty() && end && *end == '\0' && ms > 0)
          wp->m_latency->observe_ms(static_cast<double>(now_epoch_ms() - ms));
      } else {
        counters.dead_lettered.fetch_add(1);
        wp->m_dead->inc();
      }
      wp->finished();
      const std::lock_guard lock(done_mu);
      done.push_back(j);
    };
    for (auto& r : recs) {
      auto st = producer.send(r, [p, on_all](const Result<bus::Delivery>& d) {
        if (!d) p->failed = true;
        if (--p->left == 0) on_all();
      });
      if (!st) {
        p->failed = true;
        if (--p->left == 0) on_all();
      }
    }
  }

  // Per partition: offsets handed out and not yet completed, and the generation of its
  // assignment (a job from an earlier one no longer moves the commit point).
  struct PartitionState {
    std::set<int64_t> outstanding;
    int64_t highest = -1;
    uint64_t generation = 0;
  };
  std::map<std::pair<std::string, int32_t>, PartitionState> partitions;

  // Completions -> stored offsets (consumer thread).
  bool store_completions() {
    std::vector<JobPtr> finished;
    {
      const std::lock_guard lock(done_mu);
      finished.swap(done);
    }
    for (const auto& j : finished) {
      auto& ps = partitions[{j->topic, j->partition}];
      if (j->generation != ps.generation) continue;
      ps.outstanding.erase(j->offset);
      const int64_t next = ps.outstanding.empty() ? ps.highest + 1 : *ps.outstanding.begin();
      (void)consumer->store_offset(j->topic, j->partition, next);
    }
    return !finished.empty();
  }

  // A rebalance takes partitions away: store what finished (the consumer commits it next),
  // and drop the queued jobs of those partitions; whoever gets the partitions reads them
  // again from the committed offset. Jobs in flight finish, but no longer move offsets.
  void on_revoke(const std::vector<std::pair<std::string, int32_t>>& parts) {
    store_completions();
    for (const auto& tp : parts) {
      auto& ps = partitions[tp];
      ps.outstanding.clear();
      ps.highest = -1;
      ++ps.generation;
      const auto drop = [&tp](Worker& w) {
        const std::lock_guard lock(w.mu);
        w.pending -= static_cast<int>(w.jobs.drop_if([&tp](const Job& j) {
          return j.topic == tp.first && j.partition == tp.second && !j.final;
        }));
      };
      const auto wit = workers.find(tp.first);
      if (wit == workers.end()) {
        // A jobs.<route> partition: its jobs are queued at every system's worker.
        for (auto& [t, w] : workers) drop(*w);
        continue;
      }
      Worker& w = *wit->second;
      drop(w);
      // Whoever reads deliver.<system> next starts at its committed offset; until this
      // consumer reads from it again, moved jobs count as not read back.
      w.own_read = -1;
      bool was_paused = false;
      {
        const std::lock_guard lock(w.mu);
        was_paused = w.paused;
        w.paused = false;
      }
      // Resumed while still assigned, so that it is fetched when assigned here again.
      if (was_paused || w.idle) (void)consumer->resume({tp});
      w.idle = false;
    }
    log::info(kModule, "partitions revoked", {{"count", std::to_string(parts.size())}});
  }

  // A record taken off a partition: outstanding there until its job completes.
  JobPtr take(const bus::Message& msg, const std::string& topic) {
    auto j = std::make_shared<Job>();
    j->topic = topic;
    j->partition = msg.partition();
    j->offset = msg.offset();
    auto& ps = partitions[{topic, j->partition}];
    ps.outstanding.insert(j->offset);
    ps.highest = std::max(ps.highest, j->offset);
    j->generation = ps.generation;
    return j;
  }

  static void fill(Job& j, const bus::Message& msg, const Worker& w) {
    // The headers moved in once, in the record's order (a route writes each name once; a
    // repeated name keeps its last value, as a lookup by name on the record would).
    auto& hs = j.dj.headers;
    for (auto& hd : msg.headers()) {
      if (hd.key == header::kReceipt) {
        j.receipt = std::move(hd.value);
        continue;
      }
      const auto same =
          std::find_if(hs.begin(), hs.end(), [&](const auto& kv) { return kv.first == hd.key; });
      if (same != hs.end())
        same->second = std::move(hd.value);
      else
        hs.emplace_back(std::move(hd.key), std::move(hd.value));
    }
    j.dj.payload = std::string(msg.value());
    j.dj.key = std::string(msg.key());
    j.dj.job_id = j.h(header::kJobId);
    j.dj.event_id = j.h(header::kEventId);
    j.dj.format = j.h(header::kFormat);
    j.dj.content_type = j.h(header::kContentType);
    j.dj.idempotency_key = j.h(header::kIdempotencyKey);
    j.dj.system = w.sys->id;
  }

  // Moves: a job record re-written to another topic; its own record completes when Kafka
  // has the copy. A failed copy is tried again a second later (the system stays moving).
  struct Move {
    JobPtr job;
    std::shared_ptr<bus::Record> record;
    Worker* worker = nullptr;  // null: not a system's job (route.failed)
    Clock::time_point due;
  };
  std::mutex moves_mu;
  std::vector<Move> failed_moves;
  std::string jobs_prefix;      // <prefix>jobs.
  bool any_route_jobs = false;  // consumer thread
  std::set<std::string> known_systems;

  void send_move(const Move& mv) {
    auto cb = [this, mv](const Result<bus::Delivery>& d) {
      if (!d) {
        log::warn(kModule, "moving a job failed; will retry",
                  {{"topic", mv.record->topic}, {"error", d.error().message}});
        Move again = mv;
        again.due = Clock::now() + std::chrono::seconds(1);
        const std::lock_guard lock(moves_mu);
        failed_moves.push_back(std::move(again));
        return;
      }
      if (mv.worker) {
        auto& end = mv.worker->moved_end;
        for (int64_t cur = end.load();
             d->offset > cur && !end.compare_exchange_weak(cur, d->offset);) {
        }
        mv.worker->m_moved->inc();
        counters.moved.fetch_add(1);
        mv.worker->moves_in_flight.fetch_sub(1);
      }
      const std::lock_guard lock(done_mu);
      done.push_back(mv.job);
    };
    if (auto st = producer.send(*mv.record, cb); !st) cb(st.error());
  }

  void retry_moves() {
    std::vector<Move> due;
    {
      const std::lock_guard lock(moves_mu);
      if (failed_moves.empty()) return;
      const auto now = Clock::now();
      for (auto it = failed_moves.begin(); it != failed_moves.end();) {
        if (it->due <= now) {
          due.push_back(std::move(*it));
          it = failed_moves.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (const auto& mv : due) send_move(mv);
  }

  // Moves a job to deliver.<system>; `w` is the system's worker here (null when the system
  // is disabled here), which stays moving until the copy is on Kafka and read back.
  void move_to_own_topic(const JobPtr& j, Worker* w, const std::string& system, bus::Record rec) {
    if (w) wake_idle(*w);
    rec.topic = deliver_topic(settings.topic_prefix, system);
    if (w) w->moves_in_flight.fetch_add(1);
    send_move({j, std::make_shared<bus::Record>(std::move(rec)), w, Clock::now()});
  }

  // A job read again after a restart that was delivered before it: complete, not sent
  // again. One that asks for a receipt only when its receipt is on Kafka too (finish()
  // produces the two records side by side, so a crash can come between them).
  bool skip_delivered(const JobPtr& j, const bus::Message& msg) {
    if (delivered_before.empty()) return false;
    const auto id = msg.header(header::kJobId);
    if (!id || delivered_before.count(*id) == 0) return false;
    if (msg.header(header::kReceiptCodec) && receipts_before.count("a:" + sha256_hex(*id)) == 0)
      return false;
    counters.skipped_delivered.fetch_add(1);
    m_skipped->inc();
    const std::lock_guard lock(done_mu);
    done.push_back(j);
    return true;
  }

  // At start, after an unclean stop: which jobs still to be read were delivered already.
  // The scans read uncommitted records: the records looked for are written outside
  // transactions, and a route transaction the crash left open would otherwise stop a
  // read_committed scan at its first record until the route stage aborts it.
  void load_delivered_before(const std::vector<std::string>& job_topics) {
    const auto lookback = settings.skip_delivered_lookback;
    if (lookback.count() <= 0) return;
    const std::string group = settings.topic_prefix + "budstikke-delivery";
    auto parts = bus::group_offsets(settings.kafka, group, job_topics);
    if (!parts) {
      log::warn(kModule,
                "could not read the delivery group's offsets; jobs read again are sent again",
                {{"error", parts.error().message}});
      return;
    }
    int64_t left = 0;
    for (const auto& p : *parts) left += std::max<int64_t>(p.lag(), 0);
    if (left == 0) return;  // every job read and committed: a clean stop
    const auto t0 = Clock::now();
    const int64_t since =
        now_epoch_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(lookback).count();
    size_t records = 0;
    int64_t newest = 0;  // the newest tracking record read (its timestamp)
    auto st = bus::scan_topics(
        settings.kafka, {settings.topic_prefix + runtime::kTrackingTopic},
        [&](const bus::Message& m) {
          ++records;
          newest = std::max(newest, m.timestamp_ms());
          if (m.header("bs-state").value_or("") != "delivered")
            return true;  // as finish() writes it
          if (auto id = delivered_job_id(m.value()); !id.empty())
            delivered_before.insert(std::move(id));
          return true;
        },
        std::chrono::milliseconds(60000), since, true);
    if (!st)
      log::warn(kModule, "tracking topic not read to its end; jobs not found there are sent again",
                {{"error", st.error().message}});
    st = bus::scan_topics(
        settings.kafka, {settings.topic_prefix + runtime::kAppRecOutboundTopic},
        [&](const bus::Message& m) {
          ++records;
          if (m.key().substr(0, 2) == "a:") receipts_before.emplace(m.key());
          return true;
        },
        std::chrono::milliseconds(60000), since, true);
    if (!st)
      log::warn(kModule,
                "receipt topic not read to its end; jobs with receipts not found there are sent "
                "again",
                {{"error", st.error().message}});
    log::info(
        kModule, "jobs delivered before this start read from the tracking topic",
        {{"uncommitted_jobs", std::to_string(left)},
         {"receipts", std::to_string(receipts_before.size())},
         {"records", std::to_string(records)},
         {"delivered_jobs", std::to_string(delivered_before.size())},
         // How far before this start the newest record read was written: a scan that
         // ended early shows here (seconds where a crash just happened).
         {"newest_record_age_ms", newest > 0 ? std::to_string(now_epoch_ms() - newest) : "none"},
         {"ms",
          std::to_string(
              std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count())}});
  }

  // A job from a route's jobs.<route> topic: to its system's queue, or, while the system
  // holds its maximum of pending jobs (or has moved jobs not yet read back), to
  // deliver.<system> behind the jobs moved before it.
  void route_job(const bus::Message& msg, const std::string& topic,
                 std::vector<Worker*>& moving_workers) {
    any_route_jobs = true;
    auto j = take(msg, topic);
    if (skip_delivered(j, msg)) return;
    const std::string system = msg.header(header::kSystem).value_or("");
    const auto wit = workers.find(deliver_topic(settings.topic_prefix, system));
    Worker* w = wit == workers.end() ? nullptr : wit->second.get();
    if (w && !w->moving) {
      const std::lock_guard lock(w->mu);
      if (w->paused || w->pending >= settings.max_pending_per_system) w->moving = true;
      if (w->moving) moving_workers.push_back(w);
    }
    if (w && !w->moving) {
      fill(*j, msg, *w);
      j->from_route_topic = true;
      w->enqueue(j);
      defer_wake(*w);
      return;
    }
    if (w || known_systems.count(system)) {
      // Moving, or a system that is disabled here: its own topic keeps the job for it.
      move_to_own_topic(j, w, system,
                        {"", std::string(msg.key()), std::string(msg.value()), msg.headers(), -1});
      return;
    }
    auto rec = std::make_shared<bus::Record>();
    // No system here can take it: a record on route.failed as the route stage writes one
    // for an event it cannot route, with the job in it.
    const std::string reason = system.empty() ? "job without a bs-system header"
                                              : "job for '" + system + "', not in the registry";
    const auto hv = [&msg](const char* name) { return msg.header(name).value_or(""); };
    const json fj = {{"at", now_rfc3339()},
                     {"event_id", hv(header::kEventId)},
                     {"job", std::string(msg.value())},
                     {"job_id", hv(header::kJobId)},
                     {"message_id", hv(header::kIdempotencyKey)},
                     {"offset", msg.offset()},
                     {"reason", reason},
                     {"route", hv(header::kRoute)},
                     {"system", system},
                     {"topic", topic}};
    rec->topic = settings.topic_prefix + kRouteFailedTopic;
    rec->value = fj.dump();
    rec->headers = {{header::kRoute, hv(header::kRoute)},
                    {header::kEventId, hv(header::kEventId)},
                    {header::kReason, reason}};
    log::warn(kModule, "job for no known system moved to route.failed",
              {{"topic", topic}, {"system", system}});
    send_move({j, rec, nullptr, Clock::now()});
  }

  // A job from a jobs.<route> topic holds that partition's commit point (for every system
  // of the route) until it completes. So a system whose oldest such job has waited longer
  // than move_after gives up its waiting jobs from there (those never attempted) to
  // deliver.<system>, in queue order, and moves the ones after them too until all are read
  // back. Jobs waiting for a retry stay: they keep their patients' later jobs behind them.
  void sweep_route_jobs(std::vector<Worker*>& moving_workers) {
    const auto now = Clock::now();
    for (auto& [t, wp] : workers) {
      Worker& w = *wp;
      std::vector<JobPtr> evicted;
      {
        const std::lock_guard lock(w.mu);
        const auto movable = [](const Job& j) {
          return j.from_route_topic && j.attempts == 0 && !j.final;
        };
        bool old = false;
        for (const auto& j : w.jobs.ready())
          if (movable(*j)) {
            old = now - j->read_at > settings.move_after;
            break;
          }
        if (!old) continue;
        evicted = w.jobs.take_ready_if(movable);
        w.pending -= static_cast<int>(evicted.size());
      }
      if (!w.moving) {
        w.moving = true;
        moving_workers.push_back(&w);
      }
      for (auto& j : evicted) {
        std::vector<bus::Header> headers = j->all_headers();
        move_to_own_topic(j, &w, w.sys->id,
                          {"", j->dj.key, std::move(j->dj.payload), std::move(headers), -1});
      }
    }
  }

  // Workers with jobs queued in this burst, woken once it ends (consumer thread): with a
  // topic per route, one system's jobs come interleaved with those of every other system
  // of the route, and waking a worker per job cost a context switch per delivery.
  std::vector<Worker*> waking;
  void defer_wake(Worker& w) {
    if (w.to_wake++ == 0) waking.push_back(&w);
  }
  void wake_deferred() {
    for (Worker* w : waking) {
      w->wake(w->to_wake);
      w->to_wake = 0;
    }
    waking.clear();
  }

  // pause_idle_own_topics (consumer thread). A deliver.<system> partition read to `end`
  // stops being fetched, unless jobs are moving there or it is paused for backpressure.
  void try_idle(Worker& w, int64_t end) {
    if (!settings.pause_idle_own_topics || w.idle || w.moving || w.moves_in_flight.load() > 0)
      return;
    {
      const std::lock_guard lock(w.mu);
      if (w.paused) return;
    }
    if (auto st = consumer->pause({{deliver_topic(settings.topic_prefix, w.sys->id), 0}}); !st)
      return;
    w.idle = true;
    w.idle_end = end;
    m_idle_paused->inc();
  }
  void wake_idle(Worker& w) {
    if (!w.idle) return;
    w.idle = false;
    (void)consumer->resume({{deliver_topic(settings.topic_prefix, w.sys->id), 0}});
    m_idle_woken->inc();
  }
  void on_eof(const std::string& topic, int32_t partition, int64_t end) {
    const auto wit = workers.find(topic);
    if (wit == workers.end() || partition != 0) return;  // a jobs.<route> partition
    try_idle(*wit->second, end);
  }
  // Records written to an idle partition by anyone else (another engine moving jobs, a
  // replay): one request for the end offsets of all idle partitions, asked on a thread of its
  // own (the broker may take a while; the consumer thread reads jobs meanwhile) and applied
  // on the consumer thread. When the broker does not answer, every idle partition is fetched
  // again (EOF pauses them again).
  struct IdleCheck {
    std::mutex mu;
    std::condition_variable cv;
    bool stop = false;
    bool in_flight = false;  // asked of the checker thread, its answer not applied yet
    std::vector<std::pair<std::string, int32_t>> parts;  // the question
    std::vector<Worker*> workers;                        // whose partitions those are
    std::optional<Result<std::vector<int64_t>>> answer;
    std::thread thread;
  };
  IdleCheck idle_check;

  void idle_checker() {
    std::unique_lock lock(idle_check.mu);
    for (;;) {
      idle_check.cv.wait(
          lock, [this] { return idle_check.stop || (idle_check.in_flight && !idle_check.answer); });
      if (idle_check.stop) return;
      const auto parts = idle_check.parts;
      lock.unlock();
      auto ends = consumer->end_offsets(parts, std::chrono::milliseconds(2000));
      lock.lock();
      idle_check.answer = std::move(ends);
    }
  }

  // Consumer thread: applies an answer that came, and asks again when it is time.
  void check_idle(bool ask) {
    {
      const std::lock_guard lock(idle_check.mu);
      if (idle_check.in_flight && idle_check.answer) {
        const auto& ends = *idle_check.answer;
        if (!ends)
          log::warn(kModule, "could not read the end offsets of idle deliver topics; fetching them",
                    {{"error", ends.error().message}});
        for (size_t i = 0; i < idle_check.workers.size(); ++i) {
          Worker& w = *idle_check.workers[i];
          // Still idle since the question (a partition woken and paused again meanwhile
          // has a newer end, which the answer is compared with).
          if (w.idle && (!ends || (*ends)[i] < 0 || (*ends)[i] > w.idle_end)) wake_idle(w);
        }
        idle_check.in_flight = false;
        idle_check.answer.reset();
      }
      if (!ask || idle_check.in_flight) return;
      idle_check.parts.clear();
      idle_check.workers.clear();
      for (auto& [t, w] : workers)
        if (w->idle) {
          idle_check.workers.push_back(w.get());
          idle_check.parts.emplace_back(t, 0);
        }
      if (idle_check.workers.empty()) return;
      idle_check.in_flight = true;
    }
    idle_check.cv.notify_all();
  }

  void consume_loop() {
    std::vector<Worker*> paused_workers;  // of the consumer thread
    std::vector<Worker*> moving_workers;  // of the consumer thread
    auto last_commit = Clock::now();
    auto last_sweep = Clock::now();
    auto last_idle_check = Clock::now();
    bool dirty = false;
    while (!stopping.load()) {
      // A burst: what the consumer has ready (up to 256 records) is queued, then each
      // worker that got jobs is woken once.
      for (int n = 0; n < 256; ++n) {
        auto m = consumer->poll(std::chrono::milliseconds(n == 0 ? 50 : 0));
        if (!m) {
          log::error(kModule, "consumer failed", {{"error", m.error().message}});
          if (bus::is_fenced(m.error())) {
            // A second engine joined the delivery group with this kafka.instance: the one
            // that came last keeps the work; this one stops (and exits with 1).
            runtime::request_engine_stop(runtime::instance_taken(settings.instance, "delivery"));
          } else if (consumer->failed()) {
            // Any other fatal error: this consumer never reads again. The engine stops (exit
            // 1) so that its supervisor starts it afresh from the committed offsets, rather
            // than run on without delivering.
            runtime::request_engine_stop("the delivery stage's consumer failed for good: " +
                                         m.error().message);
          }
          std::this_thread::sleep_for(std::chrono::seconds(1));
          break;
        }
        if (!*m) break;
        bus::Message& msg = **m;
        const std::string topic(msg.topic());
        auto wit = workers.find(topic);
        if (wit == workers.end() && topic.rfind(jobs_prefix, 0) == 0) {
          route_job(msg, topic, moving_workers);
        } else if (wit == workers.end()) {
          dirty = true;  // not ours (any more): skip
          (void)consumer->store(msg);
        } else {
          Worker& w = *wit->second;
          auto j = take(msg, topic);
          w.own_read = std::max(w.own_read, j->offset);
          if (skip_delivered(j, msg)) continue;
          fill(*j, msg, w);
          w.enqueue(j);
          defer_wake(w);
          bool pause = false;
          {
            const std::lock_guard lock(w.mu);
            pause = !w.paused && w.pending >= settings.max_pending_per_system;
            if (pause) w.paused = true;
          }
          if (pause) {
            (void)consumer->pause({{topic, j->partition}});
            paused_workers.push_back(&w);
          }
        }
      }
      wake_deferred();
      retry_moves();
      if (any_route_jobs && Clock::now() - last_sweep > std::chrono::milliseconds(200)) {
        sweep_route_jobs(moving_workers);
        last_sweep = Clock::now();
      }
      // Systems whose jobs move: back to their queue once every moved job was read back.
      for (size_t i = 0; i < moving_workers.size();) {
        Worker* w = moving_workers[i];
        bool done_moving = w->moves_in_flight.load() == 0 && w->own_read >= w->moved_end.load();
        if (done_moving) {
          const std::lock_guard lock(w->mu);
          done_moving = !w->paused && w->pending < settings.max_pending_per_system / 2;
        }
        if (done_moving) {
          w->moving = false;
          // Its EOF came while it was moving; everything moved has been read back.
          if (w->own_read >= 0) try_idle(*w, w->own_read + 1);
          moving_workers[i] = moving_workers.back();
          moving_workers.pop_back();
        } else {
          ++i;
        }
      }
      if (settings.pause_idle_own_topics) {
        const bool ask = Clock::now() - last_idle_check >= settings.idle_check;
        check_idle(ask);
        if (ask) last_idle_check = Clock::now();
      }
      if (store_completions()) dirty = true;
      // Resume paused systems that drained (only those: looking at every system's queue
      // after every job cost ~200 lock round trips per job). A revoke unpauses a system.
      for (size_t i = 0; i < paused_workers.size();) {
        Worker* w = paused_workers[i];
        bool resume = false;
        bool still = true;
        {
          const std::lock_guard lock(w->mu);
          resume = w->paused && w->pending < settings.max_pending_per_system / 2;
          if (resume) w->paused = false;
          still = w->paused;
        }
        if (resume) (void)consumer->resume({{deliver_topic(settings.topic_prefix, w->sys->id), 0}});
        if (still) {
          ++i;
        } else {
          paused_workers[i] = paused_workers.back();
          paused_workers.pop_back();
        }
      }
      if (dirty && Clock::now() - last_commit > std::chrono::milliseconds(100)) {
        if (auto st = consumer->commit(false); !st)
          log::warn(kModule, "commit failed", {{"error", st.error().message}});
        last_commit = Clock::now();
        dirty = false;
      }
    }
  }
};

DeliveryStage::DeliveryStage(DeliverySettings settings,
                             std::shared_ptr<const registry::Registry> reg,
                             const SinkFactories& sinks, bus::Producer& producer,
                             const runtime::CodecRegistry& codecs)
    : impl_(std::make_unique<Impl>(std::move(settings), std::move(reg), sinks, producer, codecs)) {}

DeliveryStage::~DeliveryStage() {
  stop();
}

const DeliveryCounters& DeliveryStage::counters() const {
  return impl_->counters;
}

Status DeliveryStage::start() {
  auto& im = *impl_;
  std::vector<std::string> topics;
  for (const auto& s : im.reg->systems()) {
    if (!s.enabled) continue;
    auto w = std::make_unique<Impl::Worker>(s, im);
    w->init_metrics();
    const std::string t = deliver_topic(im.settings.topic_prefix, s.id);
    topics.push_back(t);
    im.workers[t] = std::move(w);
  }
  if (topics.empty()) return {};
  for (const auto& s : im.reg->systems()) im.known_systems.insert(s.id);
  im.jobs_prefix = route_jobs_topic(im.settings.topic_prefix, "");
  {
    std::vector<std::string> job_topics = topics;
    if (im.settings.read_route_jobs)
      if (auto all = bus::list_topics(im.settings.kafka))
        for (auto& t : *all)
          if (t.rfind(im.jobs_prefix, 0) == 0) job_topics.push_back(std::move(t));
    im.m_skipped = &metrics::global().counter(
        "budstikke_delivery_jobs_skipped_total",
        "Jobs completed without being sent because they were delivered already: read again "
        "after a restart and recorded as delivered on the tracking topic, or a second record "
        "of a job this process delivered (a message ingested twice).");
    im.load_delivered_before(job_topics);
  }
  im.m_idle_paused = &metrics::global().counter(
      "budstikke_delivery_idle_topics_paused_total",
      "deliver.<system> partitions read to their end and then not fetched (delivery.job_topics "
      "route, where jobs reach them only when moved or replayed there).");
  im.m_idle_woken = &metrics::global().counter(
      "budstikke_delivery_idle_topics_woken_total",
      "Idle deliver.<system> partitions fetched again: this engine moved a job there, or their "
      "end offset grew (another engine's move, a replay).");
  if (im.settings.read_route_jobs) topics.push_back(route_jobs_pattern(im.settings.topic_prefix));
  bus::ConsumerOptions co;
  if (im.settings.static_membership) co.group_instance_id = im.settings.instance;
  // deliver.<system> topics have one partition each: with range assignment the first engine
  // of several would get every one of them; round robin gives each engine its share of the
  // systems (one system's jobs still go through one engine, in order).
  co.assignment_strategy = "roundrobin,range";
  co.partition_eof = im.settings.pause_idle_own_topics;
  auto c = bus::Consumer::create(im.settings.kafka.for_role("delivery"),
                                 im.settings.topic_prefix + "budstikke-delivery", topics, co);
  if (!c) return c.error();
  im.consumer = std::move(*c);
  im.consumer->on_revoke([&im](const auto& parts) { im.on_revoke(parts); });
  im.consumer->on_eof(
      [&im](const std::string& t, int32_t p, int64_t end) { im.on_eof(t, p, end); });
  for (int i = 0; i < std::max(1, im.settings.loop_threads); ++i) {
    im.loops.push_back(std::make_unique<Impl::Loop>());
    Impl::Loop* l = im.loops.back().get();
    l->thread = std::thread([l] {
      set_thread_name("bs-deliver-io");
      l->io.run();
    });
  }
  size_t next_loop = 0;
  for (auto& [t, w] : im.workers) {
    if (im.sinks.find_on_loop(w->sys->connector.type)) {
      w->on_loop = true;
      w->loop = &im.loops[next_loop++ % im.loops.size()]->io;
    }
    w->start(w->sys->concurrency);
  }
  if (im.settings.pause_idle_own_topics)
    im.idle_check.thread = std::thread([&im] {
      set_thread_name("bs-deliver-idle");
      im.idle_checker();
    });
  im.consumer_thread = std::thread([&im] {
    set_thread_name("bs-deliver-in");
    im.consume_loop();
  });
  Impl::register_jobs_gauge();
  im.set_live(true);
  log::info(kModule, "delivery stage running", {{"systems", std::to_string(im.workers.size())}});
  return {};
}

void DeliveryStage::stop() {
  auto& im = *impl_;
  im.set_live(false);
  if (!im.consumer) return;
  im.stopping = true;
  if (im.consumer_thread.joinable()) im.consumer_thread.join();
  {
    const std::lock_guard lock(im.idle_check.mu);
    im.idle_check.stop = true;
  }
  im.idle_check.cv.notify_all();
  if (im.idle_check.thread.joinable()) im.idle_check.thread.join();
  for (auto& [t, w] : im.workers) {
    {
      const std::lock_guard lock(w->mu);
      w->stop = true;
    }
    w->cv.notify_all();
  }
  for (auto& [t, w] : im.workers)
    for (auto& th : w->threads)
      if (th.joinable()) th.join();
  // Sends on the loop finish (within their connectors' timeouts), then the loop stops.
  for (auto& [t, w] : im.workers) {
    std::unique_lock lock(w->mu);
    w->cv.wait(lock, [&w = *w] { return w.in_flight == 0; });
  }
  for (auto& l : im.loops) {
    l->work.reset();
    l->io.stop();
    if (l->thread.joinable()) l->thread.join();
  }
  (void)im.producer.flush(std::chrono::seconds(30));
  // Completions that arrived while stopping.
  im.store_completions();
  (void)im.consumer->close();
  im.consumer.reset();
}

}  // namespace budstikke::delivery
