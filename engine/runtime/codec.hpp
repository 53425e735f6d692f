#pragma once
// The codec interface the engine sees: bytes -> canonical events, or a precise rejection
// with the receipt (negative AppRec or HL7 NAK) the sender should get. Codecs are pure (no
// I/O) and thread-safe. Adapters implement it; the CLI registers them in a CodecRegistry.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "engine/core/result.hpp"
#include "engine/event/event.hpp"

namespace budstikke::runtime {

struct DecodeContext {
  std::string channel;     // e.g. file:inbox, http:/ingest
  std::string name;        // file name or request id, used in reasons
  bool validate = true;    // per-source schema validation switch
  std::string key_secret;  // HMAC key for event keys
  // The source answers the sender itself (e.g. an MLLP ACK): the codec builds the positive
  // receipt now, from the message it has parsed anyway (CodecOutput::receipt).
  bool receipt_inline = false;
};

struct CodecRejection {
  std::string code;       // e.g. T02 (AppRec 8221) or AR/AE (HL7)
  std::string code_text;  // e.g. "XML validerer ikke"
  std::string reason;     // which message, where, why
  int line = 0;
  int column = 0;
  std::string message_id;      // when it could be read
  Party sender;                // when it could be read
  std::string receipt;         // negative receipt for the sender; empty when none can be made
  std::string receipt_format;  // e.g. kith/apprec/1.0
};

struct CodecOutput {
  std::vector<Event> events;
  std::vector<std::string> warnings;
  std::string receipt;  // the positive receipt when DecodeContext::receipt_inline asked
};

using DecodeResult = std::variant<CodecOutput, CodecRejection>;

// What a codec made of one event's original while rendering it for one destination, kept
// for the event's next destination (the HL7 codec keeps the parsed message: an ADT fanned
// out to twenty systems is parsed once, not twenty times).
class RenderMemo {
 public:
  virtual ~RenderMemo() = default;
};

// What a route asks a codec to render for one destination.
struct RenderRequest {
  std::string format;      // the target: "kith/epikrise/1.2", "hl7v2/2.5"
  Party receiver;          // the destination as an addressee (readdressed copies)
  std::string system_id;   // the destination's registry id (e.g. MSH-5)
  std::string message_id;  // id of a re-rendered message (deterministic per destination)
  bool readdress = true;   // false: the destination is the original addressee
  // The caller's slot for a RenderMemo: the same slot for all destinations of one event
  // (with the same `original`), a fresh one for the next event; null, none is kept.
  std::unique_ptr<RenderMemo>* memo = nullptr;
};

// The outcome a receipt reports (AppRec status 1 or 2 with a code list 8221 code).
struct ReceiptOutcome {
  bool ok = true;
  std::string code;    // e.g. X99, E21
  std::string text;    // the code's text
  std::string detail;  // free text: why
};

class Codec {
 public:
  virtual ~Codec() = default;
  virtual std::string_view name() const = 0;  // kith, hl7v2
  // Whether these bytes look like this codec's format (cheap sniffing).
  virtual bool detect(std::string_view bytes) const = 0;
  virtual DecodeResult decode(std::string_view bytes, const DecodeContext& ctx) const = 0;

  // The format string of an event this codec decoded, e.g. kith/dialogmelding/1.1.
  virtual std::string format_of(const Event& e) const {
    return e.source.format + "/" + e.source.version;
  }
  // Renders an event for a destination. `original` holds the event's original bytes
  // (resolved from the claim-check store when needed).
  virtual Result<std::string> render(const Event& /*e*/, std::string_view /*original*/,
                                     const RenderRequest& r) const {
    return Error::permanent(ErrorDomain::kCodec,
                            std::string(name()) + " cannot render " + r.format);
  }
  // What a receipt for this event needs (sender, receiver, ids, AppRec version), as JSON
  // that can travel in a delivery job's header; nullopt when the format has no receipts.
  virtual std::optional<nlohmann::json> receipt_context(const Event& /*e*/) const {
    return std::nullopt;
  }
  // Builds the receipt (e.g. an AppRec) from a receipt_context(); its format in `format`.
  virtual Result<std::string> build_receipt(const nlohmann::json& /*context*/,
                                            const ReceiptOutcome& /*outcome*/,
                                            std::string& /*format*/) const {
    return Error::permanent(ErrorDomain::kCodec, std::string(name()) + " has no receipts");
  }
};

// The codecs known to the engine, tried in registration order by detect().
class CodecRegistry {
 public:
  void add(std::shared_ptr<const Codec> c) { codecs_.push_back(std::move(c)); }
  const Codec* find(std::string_view name) const {
    for (const auto& c : codecs_)
      if (c->name() == name) return c.get();
    return nullptr;
  }
  const Codec* detect(std::string_view bytes) const {
    for (const auto& c : codecs_)
      if (c->detect(bytes)) return c.get();
    return nullptr;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> n;
    for (const auto& c : codecs_) n.emplace_back(c->name());
    return n;
  }

 private:
  std::vector<std::shared_ptr<const Codec>> codecs_;
};

}  // namespace budstikke::runtime
