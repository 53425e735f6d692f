#pragma once
// The delivery stage: one consumer group reads every deliver.<system> topic (and every
// jobs.<route> topic, see route_jobs_topic) and hands each job to its system's worker. Per
// system: `concurrency` sinks (connections, reused). A connector that can send
// asynchronously (HTTP, MLLP) sends on one of the stage's event loops (loop_threads, a thread
// each, shared by all systems); any other (file, Kafka) has a thread per sink that blocks in send.
// Retries with exponential backoff and jitter kept in memory (a waiting job blocks neither other
// systems nor, with ordering none, other jobs of its system; with ordering per_patient, only later
// jobs of the same patient); a circuit breaker; a rate limit. After the last attempt, or on
// a permanent failure, the job goes to dlq.<system>.
//
// Every outcome is a tracking record; receipts (AppRecs) for the sender go to
// apprec.outbound when the job asks for one. A job's offset is committed only after its
// outcome records are on Kafka, and offsets are committed in order per partition (the
// lowest outstanding job holds the commit point): a crash redelivers, never loses.
//
// Threading: one consumer thread; the event loop's threads; worker threads per system of a
// blocking connector; outcome records are produced asynchronously and completions flow back
// to the consumer thread.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "engine/bus/bus.hpp"
#include "engine/registry/registry.hpp"
#include "engine/runtime/codec.hpp"
#include "engine/runtime/sink.hpp"

namespace boost::asio {
class io_context;
}

namespace budstikke::delivery {

// Creates a sink for a system; one per worker thread.
using SinkFactory =
    std::function<Result<std::unique_ptr<runtime::Sink>>(const registry::System& system)>;
// Creates a sink on the delivery stage's event loop: its send_async runs there, and the
// system needs no threads of its own (one sink per concurrent send).
using LoopSinkFactory = std::function<Result<std::unique_ptr<runtime::Sink>>(
    const registry::System& system, boost::asio::io_context& loop)>;

class SinkFactories {
 public:
  void add(const std::string& connector_type, SinkFactory f) { f_[connector_type] = std::move(f); }
  const SinkFactory* find(const std::string& type) const {
    const auto it = f_.find(type);
    return it == f_.end() ? nullptr : &it->second;
  }
  // A connector that can send on the stage's loop; the stage prefers it to one added with
  // add() for the same type.
  void add_on_loop(const std::string& connector_type, LoopSinkFactory f) {
    loop_[connector_type] = std::move(f);
  }
  const LoopSinkFactory* find_on_loop(const std::string& type) const {
    const auto it = loop_.find(type);
    return it == loop_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::string, SinkFactory> f_;
  std::map<std::string, LoopSinkFactory> loop_;
};

struct DeliverySettings {
  std::string topic_prefix;
  std::string instance = "0";
  bool static_membership = false;  // the consumer joins as group.instance.id = instance
  // Jobs a system holds in memory (queued, waiting for a retry, being delivered). At this
  // many its deliver.<system> partition is paused, and jobs for it read from a route's
  // jobs.<route> topic move to deliver.<system> instead (see route_jobs_topic).
  int max_pending_per_system = 2000;
  // Also read every jobs.<route> topic (a regex subscription, so the topics of routes that
  // were removed are still drained).
  bool read_route_jobs = true;
  // A system whose oldest job from a jobs.<route> topic has waited this long moves its
  // waiting jobs from there to deliver.<system> (that job holds the route partition's
  // commit point, and so how much a crash delivers again to every system of the route).
  std::chrono::milliseconds move_after{1000};
  // With job_topics route a deliver.<system> partition gets records only when jobs move
  // there (or a replay writes there), yet every fetch of the consumer named it: ~200 idle
  // partitions in every fetch cost the broker 10-20% of its CPU (design note 41). With this
  // set, a deliver.<system> partition read to its end is paused; it is resumed at once when
  // this engine moves a job there, and when a check of the partitions' end offsets (every
  // idle_check, asked on a thread of its own) finds records written by anyone else.
  bool pause_idle_own_topics = false;
  std::chrono::milliseconds idle_check{1000};
  // After a crash the stage reads again every job after its committed offsets, and some of
  // them were delivered already (their outcome reached Kafka, their offset did not). At
  // start, when its group has jobs left to read, it reads the tracking topic's records of
  // this long before the start: a job recorded there as delivered, that asks for no receipt,
  // completes without being sent again. 0: everything is sent again (at least once either
  // way; this only takes repeats away).
  std::chrono::seconds skip_delivered_lookback{300};
  // Event loops (a thread each) the asynchronous connectors send on; a system's
  // connections all live on one of them (delivery.io_threads).
  int loop_threads = 4;
  bus::KafkaSettings kafka;
};

// The job id of a tracking record that says its job was delivered (state "delivered", the
// record as the delivery stage writes it), or empty.
std::string delivered_job_id(std::string_view tracking_json);

struct DeliveryCounters {
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> failed_attempts{0};
  std::atomic<uint64_t> retried{0};
  std::atomic<uint64_t> dead_lettered{0};
  std::atomic<uint64_t> receipts{0};
  std::atomic<uint64_t> moved{0};  // jobs moved from jobs.<route> to deliver.<system>
  // Jobs read again after a restart that the tracking topic records as delivered.
  std::atomic<uint64_t> skipped_delivered{0};
};

// Topic names.
std::string deliver_topic(const std::string& prefix, const std::string& system);
std::string dlq_topic(const std::string& prefix, const std::string& system);
inline constexpr const char* kRouteFailedTopic = "route.failed";
// With `delivery.job_topics: route` a route writes all of its jobs to one topic,
// jobs.<route> (keyed by patient, the engine's partition count), instead of one topic per
// receiving system: a transaction then touches a few partitions instead of one per system
// (an ADT fan-out: ~6 with the tracking topic and the offsets, instead of ~22), which is
// what a route's commit costs. The delivery stage hands each job to its system (header
// bs-system); a system that holds max_pending_per_system jobs, or whose jobs from there
// waited over move_after, gets them moved to deliver.<system> and read back from there in
// order, so one slow system does not hold up the others of its route. A job for no known
// system goes to route.failed.
std::string route_jobs_topic(const std::string& prefix, const std::string& route);
// The regex that subscribes to every jobs.<route> topic under a prefix.
std::string route_jobs_pattern(const std::string& prefix);

// The topics the stage needs for a registry (deliver.*, dlq.*, kafka connector targets),
// and a jobs.<route> topic for each route named, with job_partitions partitions (<= 0: the
// engine's kafka.partitions).
std::vector<bus::TopicSpec> delivery_topics(const std::string& prefix,
                                            const registry::Registry& reg,
                                            const std::vector<std::string>& routes = {},
                                            int job_partitions = 0);

// Header names of a delivery job record.
namespace header {
inline constexpr const char* kJobId = "bs-job-id";
inline constexpr const char* kEventId = "bs-event-id";
inline constexpr const char* kRoute = "bs-route";
inline constexpr const char* kSystem = "bs-system";
inline constexpr const char* kFormat = "bs-format";
inline constexpr const char* kContentType = "bs-content-type";
inline constexpr const char* kIdempotencyKey = "bs-idempotency-key";
inline constexpr const char* kTrackingKey = "bs-tracking-key";
inline constexpr const char* kReceivedAt = "bs-received-at";  // ingest time (RFC 3339)
inline constexpr const char* kReceivedMs = "bs-received-ms";  // ingest time (epoch ms)
inline constexpr const char* kReceiptCodec = "bs-receipt-codec";
inline constexpr const char* kReceipt = "bs-receipt";  // receipt context (JSON)
inline constexpr const char* kAttempts = "bs-attempts";
inline constexpr const char* kReason = "bs-reason";
inline constexpr const char* kReceiverHer = "bs-receiver-her";
// The patient as a keyed hash (patient_ref()): who a job concerns, for the audit log.
inline constexpr const char* kPatientRef = "bs-patient-ref";
inline constexpr const char* kReplayOf = "bs-replay-of";  // dlq.<system>:partition:offset
inline constexpr const char* kReplayedBy = "bs-replayed-by";
}  // namespace header

// The tracking record of a delivery attempt's or a job's outcome (state "delivered",
// "dead_lettered", "attempt_failed", ...), written as JSON text: the same bytes nlohmann's
// dump() gives. `detail` (the receiver's answer or the failure) is redacted of identity
// numbers; latency_ms is ingest to this outcome.
struct OutcomeTracking {
  std::string_view state;
  std::string_view event_id;
  std::string_view job_id;
  std::string_view route;
  std::string_view system;
  std::string_view message_id;  // left out when empty
  std::string_view detail;      // left out when empty
  std::string_view engine;      // the kafka.instance that delivered; left out when empty
  int attempts = 0;
  std::optional<int64_t> latency_ms;
};
std::string outcome_tracking_json(const OutcomeTracking& o, std::string_view at);

class DeliveryStage {
 public:
  DeliveryStage(DeliverySettings settings, std::shared_ptr<const registry::Registry> reg,
                const SinkFactories& sinks, bus::Producer& producer,
                const runtime::CodecRegistry& codecs);
  ~DeliveryStage();
  DeliveryStage(const DeliveryStage&) = delete;
  DeliveryStage& operator=(const DeliveryStage&) = delete;

  Status start();
  // Stops consuming, lets in-flight sends finish, commits what is done. Jobs waiting for a
  // retry are not committed: they are redelivered after a restart.
  void stop();
  const DeliveryCounters& counters() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace budstikke::delivery
