#pragma once
// The canonical event: what every inbound message becomes and what routes consume.
// Schema: schemas/canonical-event.schema.json (schema_version 1).
//
// Routing metadata (type, parties, conversation, source) is typed; the type-specific
// clinical content is JSON in `body`, with the patient in `body.patient`. The Kafka key
// is a keyed hash: see kafka_key().

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/core/result.hpp"
#include "engine/core/time.hpp"
#include "engine/event/json_text.hpp"

namespace budstikke {

inline constexpr int kCanonicalSchemaVersion = 1;

enum class EventType {
  kReferral,
  kDischargeSummary,
  kLabRequisition,
  kLabResult,
  kDialog,
  kAdmission,
  kDischarge,
  kTransfer,
  kPatientUpdate,
  kMerge,
  kDocument,
  kAppRec,
  kPlo,
  kOther,
};

std::string_view to_string(EventType t);
std::optional<EventType> event_type_from_string(std::string_view s);

struct Identifier {
  std::string value;
  std::string type;  // e.g. HER, ENH (organisation number), HPR, FNR, DNR, local
  bool operator==(const Identifier&) const = default;
};

struct Organisation {
  std::string name;
  std::string her_id;
  std::string org_number;
  std::vector<Identifier> ids;  // other identifiers
  bool empty() const { return name.empty() && her_id.empty() && org_number.empty() && ids.empty(); }
  bool operator==(const Organisation&) const = default;
};

struct Person {
  std::string name;
  std::string her_id;
  std::string hpr_number;
  std::string role;
  bool empty() const {
    return name.empty() && her_id.empty() && hpr_number.empty() && role.empty();
  }
  bool operator==(const Person&) const = default;
};

struct Party {
  Organisation organisation;
  Organisation department;
  Person person;
  std::string system;  // registry id of the connected system, when known
  bool empty() const {
    return organisation.empty() && department.empty() && person.empty() && system.empty();
  }
  bool operator==(const Party&) const = default;
};

struct Source {
  std::string format;  // kith | hl7v2 | json
  std::string version;
  std::string message_type;
  std::string message_id;
  std::string channel;
  std::optional<bool> validated;
  bool operator==(const Source&) const = default;
};

struct Conversation {
  std::string conversation_ref;
  std::string parent_ref;
  std::string in_reply_to;
  bool empty() const {
    return conversation_ref.empty() && parent_ref.empty() && in_reply_to.empty();
  }
  bool operator==(const Conversation&) const = default;
};

// Bytes that travel either inline or as a claim-check reference with their sha256.
struct Blob {
  std::string id;
  std::string mime;
  std::string description;
  uint64_t size = 0;
  std::string sha256;
  std::optional<std::string> data;  // raw bytes when inline
  std::string claim_check;          // reference into the claim-check store otherwise
  bool operator==(const Blob&) const = default;
};

struct Event {
  std::string event_id;
  EventType type = EventType::kOther;
  std::string occurred_at;  // RFC 3339, may be empty when unknown
  std::string received_at;  // RFC 3339
  Source source;
  Party sender;
  Party receiver;
  std::string key;  // "p:<hmac>", "c:<hmac>" or "e:<hmac>"; see assign_key()
  Conversation conversation;
  nlohmann::json body = nlohmann::json::object();
  std::vector<Blob> attachments;
  std::optional<Blob> original;
  // body.content already serialised as JSON text, or empty. The e-melding decoder writes its
  // generic payload tree (every element of the message) straight to text: building it as
  // nlohmann::json cost more than the rest of canonicalisation. to_json_string() splices it
  // in as body.content and to_json() parses it there, so every serialised or JSON form of
  // the event has one body; set, it takes the place of any "content" in `body` (which must
  // then be an object or null; otherwise it is ignored).
  std::string body_content_json;
  // The whole body already serialised as JSON text (an object), or empty. The HL7 v2 codec
  // writes it so: building the body as nlohmann::json and dumping it was about half of its
  // decode. Set, it takes the place of `body` and body_content_json; in-process readers of a
  // decoded event use full_body() or body_of() (events read from Kafka never have it).
  std::string body_json;
  // With body_json: what patient_identity() would read from its body.patient (empty when
  // none), set by the codec as it writes the text, so that the Kafka key and the tracking
  // record's patient reference do not parse the body again.
  std::string body_json_patient_identity;

  // The body as one nlohmann::json: body_json parsed, or `body` with body_content_json
  // parsed in as "content".
  nlohmann::json full_body() const;
  // The same without a copy when the body is held as nlohmann::json: `body` itself, else
  // full_body() in `scratch`.
  const nlohmann::json& body_of(nlohmann::json& scratch) const;
  // Equal when every field is, comparing full_body() (however content is carried).
  bool operator==(const Event& o) const;
};

// Serialisation: lossless in both directions for valid UTF-8 text (the only kind codecs
// produce); an invalid byte sequence would be written as U+FFFD instead of failing.
nlohmann::json to_json(const Event& e);
std::string to_json_string(const Event& e);
Result<Event> event_from_json(const nlohmann::json& j);
Result<Event> event_from_json_string(std::string_view text);

// The patient identity used for the key: the first identifier in body.patient.ids with a
// value, normalised as "<TYPE>:<value>" (type upper-cased, "ID" when it has none, spaces
// removed from the value).
std::optional<std::string> patient_identity(const Event& e);
// That normalisation of one identifier (`type` absent: "ID"); none when its value is empty
// without spaces.
std::optional<std::string> patient_identity_of(std::string_view value,
                                               std::optional<std::string_view> type);

// The Kafka key: HMAC-SHA-256 under `secret` of the patient identity ("p:"), else of the
// conversation ref ("c:"), else of the event id ("e:"). Never contains the identity itself.
std::string kafka_key(const Event& e, std::string_view secret);
// The patient of an event as a keyed hash of the identity number alone ("pr:<hex>"), the same
// whatever the number's type is called in the message; empty when the event names no
// patient. The audit log stores this, so "who looked at this patient's messages?" can be
// answered from the number without the number being stored.
std::string patient_ref(const Event& e, std::string_view secret);
std::string patient_ref_of_number(std::string_view identity_number, std::string_view secret);
inline void assign_key(Event& e, std::string_view secret) {
  e.key = kafka_key(e, secret);
}

// Kafka headers: routing metadata only, never patient data.
std::vector<std::pair<std::string, std::string>> kafka_headers(const Event& e);
// Two of them: the event's type (to_string) and its source.format, as the event has them.
inline constexpr const char* kTypeHeader = "bs-type";
inline constexpr const char* kSourceFormatHeader = "bs-source-format";

// The topic a canonical event of this type goes to: "canonical.<type>".
std::string canonical_topic(EventType t);

// A party alone, in the event's JSON form (e.g. for a receipt's context).
nlohmann::json party_to_json(const Party& p);
Result<Party> party_from_json(const nlohmann::json& j);

// A Blob holding `bytes` inline with size and sha256 filled in.
Blob make_inline_blob(std::string bytes, std::string mime = {});

}  // namespace budstikke
