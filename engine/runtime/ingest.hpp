#pragma once
// The ingest stage: bytes from a source -> codec -> records on Kafka -> the source's ack.
//
// For an accepted message: one record per canonical event on canonical.<type>, plus a
// tracking record. For a rejected one: a record on ingest.rejected (reason and raw bytes),
// the negative receipt (AppRec) on apprec.outbound when the sender can be identified, and a
// tracking record. `done` runs once, after Kafka has acknowledged every one of those records
// (kAccepted / kRejected), or when any of them failed (kRetry: the source must keep the
// message and offer it again later). Nothing is acknowledged upstream before that.
//
// Thread-safe: sources call submit() from their own threads.

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "engine/bus/bus.hpp"
#include "engine/runtime/claim_check.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::runtime {

inline constexpr const char* kAppRecOutboundTopic = "apprec.outbound";
// One record per (message, addressee) that was sent an AppRec: the receipts route's memory.
inline constexpr const char* kAppRecSentTopic = "apprec.sent";

// A receipt (AppRec) waiting on apprec.outbound for the party `to` (the sender of the
// message it answers). Every HER-id the party can be reached by (department, organisation,
// person) travels in the bs-receiver-her header, comma-separated, most specific first; the
// receipts route delivers to the first one a registry system answers for. Used by ingest
// (rejections), the route stage (unknown receiver) and the delivery stage (delivered/failed).
bus::Record receipt_record(const std::string& prefix, std::string key, std::string receipt,
                           const std::string& format, const Party& to,
                           const std::string& original_message_id, const std::string& status,
                           const std::string& event_id = {});
// The HER-ids of a receipt record's bs-receiver-her header, in order.
std::vector<std::string> receipt_her_ids(const std::string& header_value);

struct IngestSettings {
  std::string topic_prefix;
  std::string key_secret;
  size_t claim_check_threshold = 1 << 20;
  std::string claim_check_dir;  // empty: no offloading (large records may be refused by Kafka)
  std::string instance;         // kafka.instance, named in the tracking records
};

struct Inbound {
  std::string bytes;
  std::string channel;  // e.g. file:inbox
  std::string name;     // file name / request id, for reasons
  bool validate = true;
  // A stable identity of this input (e.g. path + content hash). When set, event ids are
  // derived from it, so a message offered twice yields the same event ids.
  std::string source_key;
  // The source answers the sender itself (e.g. an MLLP ACK on the connection): the
  // rejection's receipt is not also queued on apprec.outbound.
  bool receipt_inline = false;
};

enum class Outcome { kAccepted, kRejected, kRetry };

struct IngestResult {
  Outcome outcome = Outcome::kRetry;
  std::vector<std::string> event_ids;
  std::string message_id;
  std::string codec;
  CodecRejection rejection;  // when kRejected
  std::string receipt;       // when kAccepted and Inbound::receipt_inline: the positive one
  bool receipt_produced = false;
  std::string error;  // when kRetry
};

struct IngestCounters {
  std::atomic<uint64_t> received{0};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> rejected{0};
  std::atomic<uint64_t> failed{0};
};

class Ingest {
 public:
  Ingest(bus::Producer& producer, const CodecRegistry& codecs, IngestSettings settings);

  void submit(Inbound in, std::function<void(IngestResult)> done);
  // For input a source refuses itself (e.g. too large): records the rejection like a
  // codec's (ingest.rejected, tracking), with whatever bytes `in` carries.
  void reject(Inbound in, CodecRejection rejection, std::function<void(IngestResult)> done);
  IngestResult submit_sync(Inbound in);

  const IngestCounters& counters() const { return counters_; }
  const IngestSettings& settings() const { return settings_; }

 private:
  void publish(Inbound& in, const Codec* codec, DecodeResult decoded,
               std::function<void(IngestResult)> done);
  bus::Producer& producer_;
  const CodecRegistry& codecs_;
  IngestSettings settings_;
  ClaimCheckStore claims_;
  IngestCounters counters_;
};

// A version-4-shaped UUID derived from a hash of `seed` (deterministic event ids).
std::string uuid_from_seed(std::string_view seed);

// Decodes bytes with the codec that recognises them, or rejects them with T10 naming the
// formats there are. `used` (optional) is set to the codec, null when none recognised them.
DecodeResult decode_with(const CodecRegistry& codecs, std::string_view bytes,
                         const DecodeContext& ctx, const Codec** used = nullptr);

// The key used on the tracking topic for a message id: the id itself, unless it could carry
// an identity number, then a keyed hash.
std::string tracking_key(const std::string& message_id, const std::string& secret);

// The "received" tracking record (JSON) of an accepted event: what `track` shows first.
// `engine`: the kafka.instance that took it in (left out when empty).
std::string received_record(const Event& e, const std::string& channel, const std::string& now,
                            const std::string& secret, std::string_view engine = {});

}  // namespace budstikke::runtime
