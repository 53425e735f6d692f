#pragma once
// Sinks deliver rendered bytes to a connected system (HTTP, MLLP, file, Kafka topic).
// DESIGN.md: send(job) -> DeliveryResult { ok | retriable(reason) | permanent(reason) }, plus
// a health check. The delivery stage retries retriable failures with backoff and sends
// permanent ones to the system's dead-letter topic.

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace budstikke::runtime {

struct DeliveryResult {
  enum class Kind { kOk, kRetriable, kPermanent };
  Kind kind = Kind::kOk;
  std::string reason;    // why it failed, for the DLQ record and the tracking event
  std::string response;  // what the receiver answered (e.g. the ACK), when it answered

  static DeliveryResult ok(std::string response = {}) {
    return {Kind::kOk, {}, std::move(response)};
  }
  static DeliveryResult retriable(std::string why, std::string response = {}) {
    return {Kind::kRetriable, std::move(why), std::move(response)};
  }
  static DeliveryResult permanent(std::string why, std::string response = {}) {
    return {Kind::kPermanent, std::move(why), std::move(response)};
  }
  bool is_ok() const { return kind == Kind::kOk; }
};

struct DeliveryJob {
  std::string payload;          // rendered bytes
  std::string idempotency_key;  // the source message id
  std::string content_type;
  std::string job_id;  // unique per (event, route, system): stable across redeliveries
  std::string event_id;
  std::string format;                                        // e.g. kith/epikrise/1.2
  std::string system;                                        // the destination's registry id
  std::string key;                                           // the event's Kafka key (pseudonymous)
  std::vector<std::pair<std::string, std::string>> headers;  // routing metadata, no patient data
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual DeliveryResult send(const DeliveryJob& job) = 0;
  // A sink made on an event loop (SinkFactories::add_on_loop) sends without a thread of its
  // own: send_async begins the send and returns; `done` is called on a thread running the
  // loop, never inside send_async. `job` must stay valid until then; one send at a time.
  // The default, for sinks that block, sends and then calls `done` inside send_async.
  using Done = std::function<void(DeliveryResult)>;
  // NOLINTNEXTLINE(performance-unnecessary-value-param): the overrides keep `done`.
  virtual void send_async(const DeliveryJob& job, Done done) { done(send(job)); }
  // Whether the system can be reached now (a connector on a loop: whether its connection is
  // open). The delivery stage does not ask it: its circuit breaker counts failed sends.
  virtual bool healthy() = 0;
};

}  // namespace budstikke::runtime
