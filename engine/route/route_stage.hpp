#pragma once
// The route stage: one consumer group and one transactional producer per route. A batch of
// canonical events is filtered, mapped and rendered; the delivery jobs (deliver.<system>),
// failures (route.failed), receipts for unknown receivers (apprec.outbound) and tracking
// records are produced in the same Kafka transaction as the batch's offsets: exactly once
// inside Kafka. The job key is the event key, so one patient's jobs stay in order.
//
// A built-in `receipts` route moves AppRecs waiting on apprec.outbound to the system that
// answers for their receiver's HER-id, when that system takes receipts.
//
// Transactional ids are stable per route and instance, so a restarted engine fences its
// crashed predecessor at once instead of waiting for its transactions to time out.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/bus/bus.hpp"
#include "engine/registry/registry.hpp"
#include "engine/route/route.hpp"

namespace budstikke::route {

// How long a route batch whose first event Kafka stamped at `written_ms` (epoch ms) may
// still wait for more, at `now_ms`: `window` minus the time the event has waited already,
// never below zero; the whole window when the timestamp is missing or ahead of this clock.
std::chrono::milliseconds batch_window_left(std::chrono::milliseconds window, int64_t written_ms,
                                            int64_t now_ms);

// The tracking record a route writes for one event (state "routed" or "unrouted"): the jobs
// it made (destinations), the systems it could not route to and why (failures), disabled
// systems it skipped. Written as JSON text, the same bytes nlohmann's dump() gives.
std::string route_tracking(const RouteResult& r, std::string_view state, std::string_view now,
                           std::string_view route, std::string_view event_id,
                           std::string_view message_id, std::string_view engine = {});

// What every delivery job of one event from one route carries besides its own delivery.
struct JobMeta {
  std::string_view route;
  std::string_view event_id;
  std::string_view idempotency_key;  // the tracking key of the source message id, or empty
  std::string_view tracking_key;
  std::string_view received_at;
  std::string_view received_ms;
  std::string_view patient_ref;
  // The receipt the addressee's job carries (the sender's AppRec after delivery): set when
  // the route answers the sender; null: no job carries one.
  std::string_view receipt_codec;
  const nlohmann::json* receipt_context = nullptr;
};

// The delivery job for one destination, as the route stage produces it (and `budstikke
// replay --route-failed` for an event routed again): the job's strings are moved in.
bus::Record job_record(std::string topic, std::string key, RoutedDelivery&& d, const JobMeta& m);

// The route.failed record for one failure of an event: the whole event in it (a replay
// routes it again), and `delivered_to`, the systems the same pass made jobs for (a replay
// does not send them a second copy).
bus::Record route_failed_record(const std::string& prefix, std::string_view route, const Event& e,
                                std::string_view message_id, const RouteFailure& f,
                                std::string_view now, const std::vector<std::string>& delivered_to);

struct RouteStageSettings {
  std::string topic_prefix;
  std::string instance = "0";
  bool static_membership = false;  // consumers join as group.instance.id = instance
  std::string key_secret;          // for tracking keys
  bus::KafkaSettings kafka;
  int batch_max = 500;
  int batch_ms = 15;  // delivery.route_batch_ms
  // delivery.job_topics: route: every job of a route goes to jobs.<route>, not to
  // deliver.<system> (delivery::route_jobs_topic).
  bool jobs_per_route = false;
  // A batch the route lets nothing through has its offsets committed at most this often
  // (and when the stage stops; the next batch with records commits them along with its
  // own, in its transaction or after its acknowledgements): a route that filters out a
  // busy topic's events would otherwise commit once per batch.
  std::chrono::milliseconds idle_commit_interval{1000};
  // delivery.route_commit: after_ack: a batch's records go through an idempotent producer
  // and its offsets are committed once Kafka has acknowledged all of them (at least once;
  // the jobs' ids let the delivery stage drop a batch written twice). The receipts route
  // keeps its transaction either way.
  bool commit_after_ack = false;
};

struct RouteCounters {
  std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> matched{0};
  std::atomic<uint64_t> jobs{0};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> aborted_batches{0};
};

class RouteStage {
 public:
  RouteStage(RouteStageSettings s, RouteSet routes, std::shared_ptr<const registry::Registry> reg,
             const runtime::CodecRegistry& codecs, const runtime::ClaimCheckStore* claims);
  ~RouteStage();
  RouteStage(const RouteStage&) = delete;
  RouteStage& operator=(const RouteStage&) = delete;

  Status start();
  void stop();
  const RouteCounters& counters() const { return counters_; }

 private:
  void run_route(const Route* route);
  void run_receipts();
  RouteStageSettings s_;
  RouteSet routes_;
  std::shared_ptr<const registry::Registry> reg_;
  const runtime::CodecRegistry& codecs_;
  const runtime::ClaimCheckStore* claims_;
  RouteCounters counters_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

}  // namespace budstikke::route
