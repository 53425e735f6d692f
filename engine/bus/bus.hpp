#pragma once
// The engine bus: Budstikke's only way to Kafka, over librdkafka's C API.
//
// Guarantees:
//  - Producer::send() completes (its callback runs) only on Kafka's delivery report; the
//    producer is idempotent (acks=all, enable.idempotence) so retries never duplicate.
//  - Consumer never commits by itself: the caller stores an offset after it has processed
//    the message, and commit() writes what was stored. A crash redelivers, never skips.
//  - TransactionalProducer produces and commits consumer offsets in one Kafka transaction.
//  - Every failure is an Error value classified retriable or permanent.
//
// Threading: Producer is thread-safe; callbacks run on its poll thread and must not block.
// Consumer is used from one thread. Lifetime: destroy a Producer only after flush() (the
// destructor flushes for up to 30 s and logs what it could not deliver).

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "engine/core/result.hpp"

struct rd_kafka_s;
struct rd_kafka_message_s;
struct rd_kafka_consumer_group_metadata_s;

namespace budstikke::bus {

using Millis = std::chrono::milliseconds;

// librdkafka properties for every client: bootstrap.servers, security.protocol, ssl.*,
// sasl.*, client.id, ... Filled from engine.yaml's kafka section.
struct KafkaSettings {
  std::map<std::string, std::string> properties;
  int default_partitions = 4;
  int default_replication = 1;
  int linger_ms = 5;  // producer batching delay (engine.yaml kafka.linger_ms)
  // Codec of every producer's record batches (engine.yaml kafka.compression): none, lz4,
  // zstd, snappy or gzip.
  std::string compression = "lz4";
  // How often a Producer takes librdkafka's statistics for the budstikke_kafka_* metrics
  // (engine.yaml kafka.statistics_interval_ms); 0: never.
  int statistics_interval_ms = 0;
  // How long a transactional producer's librdkafka main thread is paused when it busy-waits
  // for a timer (engine.yaml kafka.busy_wait_pause_us; design note 56); 0: it spins. One
  // value per process: the last transactional producer created sets it.
  int busy_wait_pause_us = 100;
  std::string bootstrap() const;
  // These settings for one long-lived client of the engine: its client.id becomes
  // "<client.id>.<role>" (e.g. budstikke.route.adt-fanout), so that the broker's request
  // logs, metrics and quotas tell the engine's clients apart. Without a client.id, the base
  // is "budstikke".
  KafkaSettings for_role(const std::string& role) const;
};

// What a producer's latest librdkafka statistics report says about its requests: where the
// time between send() and Kafka's acknowledgement goes (waiting in the client's queue, then
// the broker's round trip). Latencies are over the report's interval, in microseconds.
struct ProducerStats {
  struct Broker {
    int32_t id = -1;
    int64_t produce_requests = 0;               // Produce requests sent since the client started
    int64_t in_flight = 0;                      // requests sent and not yet answered
    int64_t queue_samples = 0;                  // records sent in the interval
    double queue_p50_us = 0, queue_p99_us = 0;  // send() until the record went out
    int64_t rtt_samples = 0;                    // requests answered in the interval
    double rtt_p50_us = 0, rtt_p99_us = 0;      // request until the broker's answer
  };
  std::string client;           // librdkafka's name for the client, e.g. budstikke#producer-1
  int64_t queued_messages = 0;  // records in the client not yet acknowledged
  int64_t records_sent = 0;     // records sent to brokers since the client started
  // Since the client started: the records' own bytes (keys, values and headers, before
  // compression) and the bytes of every request it sent (after compression). Their ratio is
  // what kafka.compression saves.
  int64_t record_bytes_sent = 0;
  int64_t bytes_sent = 0;
  std::vector<Broker> brokers;  // brokers the client knows (bootstrap entries left out)
};

// Reads one librdkafka statistics document (its topics section, by far the largest, is
// skipped unread); nullopt when the text is not one.
std::optional<ProducerStats> parse_producer_stats(std::string_view json);

// Classifies a librdkafka error code.
Error kafka_error(int code, std::string_view context);
bool is_retriable_code(int code);
// The error says another client took this one's identity: a producer with the same
// transactional.id, or a consumer with the same group.instance.id in the same group. For an
// engine that means a second engine runs with its kafka.instance.
bool is_fenced(const Error& e);

struct Header {
  std::string key;
  std::string value;
};

struct Record {
  std::string topic;
  std::string key;
  std::string value;
  std::vector<Header> headers;
  int32_t partition = -1;  // -1: partitioner chooses by key
};

struct Delivery {
  std::string topic;
  int32_t partition = -1;
  int64_t offset = -1;
};

using DeliveryCallback = std::function<void(Result<Delivery>)>;

struct ProducerOptions {
  int linger_ms = -1;  // -1: KafkaSettings::linger_ms
  int max_in_flight_messages = 1000000;
  int message_timeout_ms = 300000;  // how long librdkafka retries before a delivery fails
  // Fetch every topic's metadata when created (Producer::warm_metadata), so that the first
  // record to each topic does not wait for librdkafka's once-a-second lookup of unknown
  // topics. Waits at most warm_timeout_ms; a broker not reachable then only costs that.
  bool warm_metadata = true;
  int warm_timeout_ms = 1000;
  // And again this often, from the poll thread: librdkafka drops a topic's metadata from its
  // cache after metadata.max.age.ms (15 min) unless the client writes to that topic, so a
  // topic first written an hour after the start would wait its second again. 0: never.
  int rewarm_interval_ms = 300000;
};

class Producer {
 public:
  static Result<std::unique_ptr<Producer>> create(const KafkaSettings& settings,
                                                  const ProducerOptions& opts = {});
  ~Producer();
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  // Enqueues the record. On success the callback runs exactly once, from the poll thread,
  // with Kafka's verdict. On error (e.g. record too large, producer closed) the callback is
  // not called and the error is returned. Blocks while the local queue is full (backpressure).
  Status send(const Record& r, DeliveryCallback cb);
  // Same, without copying the callback machinery for every message: counts outcomes.
  Result<Delivery> send_sync(const Record& r, Millis timeout = Millis(30000));
  // Waits until every enqueued record has its delivery report.
  Status flush(Millis timeout);
  // Records enqueued but not yet reported.
  int64_t in_flight() const;
  // Fills the client's metadata cache with every topic the cluster has. librdkafka 2.0.2
  // looks up a topic it knows nothing about at most once a second, so without this the
  // first record to each topic waited up to ~1 s for its partition's leader (design note
  // 58). create() calls it; call it again after creating topics this producer will write.
  Status warm_metadata(Millis timeout = Millis(5000));

 private:
  Producer() = default;
  void poll_loop();
  rd_kafka_s* rk_ = nullptr;
  Millis rewarm_{0};  // ProducerOptions::rewarm_interval_ms
  std::thread poller_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> in_flight_{0};
  bool stats_ = false;  // reports statistics to the budstikke_kafka_* metrics
};

// A consumed message; owns librdkafka's buffer (no copy of key or value).
class Message {
 public:
  explicit Message(rd_kafka_message_s* m);
  ~Message();
  Message(Message&& o) noexcept;
  Message& operator=(Message&& o) noexcept;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;

  std::string_view topic() const;
  int32_t partition() const;
  int64_t offset() const;
  std::string_view key() const;
  std::string_view value() const;
  int64_t timestamp_ms() const;
  std::optional<std::string> header(std::string_view name) const;
  // The same without a copy: the view lives as long as the message.
  std::optional<std::string_view> header_view(const char* name) const;
  std::vector<Header> headers() const;

 private:
  rd_kafka_message_s* m_ = nullptr;
};

struct ConsumerOptions {
  std::string auto_offset_reset = "earliest";
  bool read_committed = true;
  int session_timeout_ms = 10000;
  int max_poll_interval_ms = 300000;
  // Transactional consumers commit offsets through TransactionalProducer::send_offsets only;
  // on a rebalance their uncommitted stored offsets are dropped, never committed directly.
  bool transactional = false;
  // How long the broker may hold a fetch when there is nothing new; it answers as soon as
  // there is (also when a transaction commit makes records visible to read_committed).
  // Shorter waits do not make delivery faster, only fetches more frequent: at 20 ms the
  // delivery stage's consumer (~200 partitions) and the route consumers kept the broker at
  // 0.5-0.7 cores with almost no traffic; 500 ms, 0.07 (BENCHMARKS.md, session 8).
  int fetch_wait_max_ms = 500;
  // Static group membership (group.instance.id, KIP-345): a consumer that comes back with
  // the same id (a restarted engine, a stage recreated after an error or a reload) gets its
  // partitions back at once, without a rebalance and without waiting for the old member's
  // session to time out. Its close does not leave the group, so an instance that stops for
  // good hands its partitions on only after session_timeout_ms. A second live consumer with
  // the same id in the same group fences the first (a fatal error, is_fenced). Empty: a
  // dynamic member.
  std::string group_instance_id;
  // partition.assignment.strategy; empty: librdkafka's default (range, then roundrobin).
  // Range gives the first member every single-partition topic; roundrobin spreads them.
  std::string assignment_strategy;
  // Report reaching the end of a partition to on_eof() (enable.partition.eof): librdkafka
  // tells it once per end offset, also for a partition it has never read a record from
  // (its position is unknown to the client until then).
  bool partition_eof = false;
};

struct TopicPartitionOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t offset = 0;  // the next offset to read (last processed + 1)
};

class Consumer {
 public:
  static Result<std::unique_ptr<Consumer>> create(const KafkaSettings& settings,
                                                  const std::string& group_id,
                                                  const std::vector<std::string>& topics,
                                                  const ConsumerOptions& opts = {});
  ~Consumer();
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // The next message, or nullopt when none arrived within the timeout. Partition EOF and
  // transient broker errors are absorbed (logged); a fatal error is returned.
  Result<std::optional<Message>> poll(Millis timeout);
  // Whether the client met a fatal error: it will not read again and must be recreated.
  bool failed() const;
  // Marks the message processed: its offset + 1 will be committed by the next commit().
  Status store(const Message& m);
  // Commits every stored offset. sync waits for the broker's answer.
  Status commit(bool sync = true);
  // Marks everything before `next_offset` of a partition processed (out-of-order completion:
  // the caller passes the lowest offset still outstanding).
  Status store_offset(const std::string& topic, int32_t partition, int64_t next_offset);
  // Stops / restarts fetching from these partitions (backpressure per topic).
  Status pause(const std::vector<std::pair<std::string, int32_t>>& partitions);
  Status resume(const std::vector<std::pair<std::string, int32_t>>& partitions);
  // Called on the polling thread when partitions are taken away (a rebalance), before the
  // stored offsets are committed: the owner stores what it finished and forgets the rest.
  using RevokeHandler = std::function<void(const std::vector<std::pair<std::string, int32_t>>&)>;
  void on_revoke(RevokeHandler h) { on_revoke_ = std::move(h); }
  void call_revoke(const std::vector<std::pair<std::string, int32_t>>& parts) {
    if (on_revoke_) on_revoke_(parts);
  }
  // With ConsumerOptions::partition_eof: called on the polling thread, from poll(), when the
  // consumer has read everything of a partition; `end` is the offset the next record gets.
  using EofHandler = std::function<void(const std::string& topic, int32_t partition, int64_t end)>;
  void on_eof(EofHandler h) { on_eof_ = std::move(h); }
  // The offset the next record of each partition will get (read_committed: the first offset
  // of a transaction still open), asked of the broker in one request; -1 where it answered
  // with an error for that partition. Unlike the rest of a Consumer, callable from any thread
  // (it only asks the broker), e.g. while another thread polls.
  Result<std::vector<int64_t>> end_offsets(
      const std::vector<std::pair<std::string, int32_t>>& partitions, Millis timeout);
  // The partitions currently assigned to this consumer.
  std::vector<std::pair<std::string, int32_t>> assignment() const;
  // Offsets stored since the last commit, per partition (what a transaction must commit).
  std::vector<TopicPartitionOffset> stored_offsets() const;
  void clear_stored();
  // Commits stored offsets and leaves the group.
  Status close();

  rd_kafka_s* handle() const { return rk_; }
  const std::string& group_id() const { return group_; }
  bool transactional() const { return transactional_; }

 private:
  Consumer() = default;
  rd_kafka_s* rk_ = nullptr;
  std::string group_;
  bool transactional_ = false;
  std::map<std::pair<std::string, int32_t>, int64_t> stored_;
  bool closed_ = false;
  RevokeHandler on_revoke_;
  EofHandler on_eof_;
};

// Consume-transform-produce: records and the consumer's offsets in one transaction.
class TransactionalProducer {
 public:
  static Result<std::unique_ptr<TransactionalProducer>> create(const KafkaSettings& settings,
                                                               const std::string& transactional_id,
                                                               Millis init_timeout = Millis(60000),
                                                               bool warm_metadata = true);
  ~TransactionalProducer();
  TransactionalProducer(const TransactionalProducer&) = delete;
  TransactionalProducer& operator=(const TransactionalProducer&) = delete;

  Status begin();
  Status send(const Record& r);
  // Adds the consumer's stored offsets to the transaction.
  Status send_offsets(Consumer& consumer, Millis timeout = Millis(30000));
  // Commits. A retriable error means: abort() and redo the batch; a permanent one means the
  // producer is fenced or broken and must be recreated.
  Status commit(Millis timeout = Millis(60000));
  Status abort(Millis timeout = Millis(60000));
  // Serves the producer's callbacks (error reports, statistics) without waiting; a commit
  // serves them too, so this is for the times between transactions. Every 5 minutes it
  // also fetches every topic's metadata again (ProducerOptions::rewarm_interval_ms), which
  // takes one round trip.
  void poll();

 private:
  TransactionalProducer() = default;
  rd_kafka_s* rk_ = nullptr;
  bool rewarm_ = false;
  std::chrono::steady_clock::time_point next_warm_{};
  bool stats_ = false;  // reports statistics to the budstikke_kafka_* metrics
  std::string delivery_error_;
  std::atomic<int> failed_{0};
  friend void txn_dr_cb(rd_kafka_s*, const rd_kafka_message_s*, void*);
};

struct TopicSpec {
  std::string name;
  int partitions = -1;                        // -1: settings default
  int replication = -1;                       // -1: settings default
  std::map<std::string, std::string> config;  // e.g. cleanup.policy=compact
  // false: a topic the engine writes to but another system owns (a Kafka connector's
  // target); it is created when missing, and an existing one's partition count is not
  // compared with the engine's settings.
  bool counts_are_ours = true;
};

// Creates topics that do not exist yet; existing ones are left as they are. Returns when the
// cluster's metadata shows every one of them, or fails after `timeout` (twice: for the
// answer to the request, then for the metadata). A just-started broker on a busy machine
// took over 30 s for the engine's core topics (session 19), hence two minutes.
Status ensure_topics(const KafkaSettings& settings, const std::vector<TopicSpec>& topics,
                     Millis timeout = Millis(120000));
// Deleting an engine's ~400 topics takes a busy local broker well over 30 s.
Status delete_topics(const KafkaSettings& settings, const std::vector<std::string>& topics,
                     Millis timeout = Millis(60000));
// Names of all topics, or an error when the cluster cannot be reached in time.
Result<std::vector<std::string>> list_topics(const KafkaSettings& settings,
                                             Millis timeout = Millis(10000));
// Names of the topics that begin with `prefix` (an environment's topic_prefix).
Result<std::vector<std::string>> topics_with_prefix(const KafkaSettings& settings,
                                                    const std::string& prefix);
// Ends what an earlier producer with this transactional id left open (a crashed process's
// transaction: InitProducerId aborts it and answers once it is aborted) and fences that
// producer. For a process that no longer writes under the id: until its open transaction
// ends, read_committed readers of every partition it wrote stop there, for up to
// transaction.timeout.ms.
Status end_open_transaction(const KafkaSettings& settings, const std::string& transactional_id);

// Sum over partitions of (high watermark - low watermark).
Result<int64_t> topic_message_count(const KafkaSettings& settings, const std::string& topic,
                                    Millis timeout = Millis(10000));

// Reads every record of the topics (all partitions), read_committed, from the beginning up to
// their end as it was when the call started, without joining a consumer group. `f` is called
// per record in partition order; it returns false to stop early. A topic that does not exist
// is an error. With `since_ms` (epoch ms, > 0) each partition is read from its first record
// stamped at or after that time instead of from the beginning. With `uncommitted` the records
// of open and aborted transactions are read too, and so the scan reaches the high watermark
// even while a transaction is open (read_committed stops at its first record until it ends).
Status scan_topics(const KafkaSettings& settings, const std::vector<std::string>& topics,
                   const std::function<bool(const Message&)>& f, Millis timeout = Millis(60000),
                   int64_t since_ms = 0, bool uncommitted = false);

struct PartitionOffsets {
  std::string topic;
  int32_t partition = 0;
  int64_t low = 0;         // first offset still on the broker
  int64_t high = 0;        // next offset to be written
  int64_t committed = -1;  // the group's committed offset; -1 when it has none
  // Records not yet consumed by the group (from the low watermark when it committed nothing).
  int64_t lag() const { return high - std::max(committed, low); }
};
// Watermarks of every partition of the topics and a consumer group's committed offsets,
// without joining the group. Topics that do not exist are left out.
Result<std::vector<PartitionOffsets>> group_offsets(const KafkaSettings& settings,
                                                    const std::string& group,
                                                    const std::vector<std::string>& topics,
                                                    Millis timeout = Millis(10000));
// Commits offsets for a consumer group without joining it (the group must have no active
// members consuming these partitions).
Status commit_group_offsets(const KafkaSettings& settings, const std::string& group,
                            const std::vector<TopicPartitionOffset>& offsets,
                            Millis timeout = Millis(10000));

}  // namespace budstikke::bus
