#pragma once
// The e-melding codec: KITH XML bytes -> canonical events, and back.
//
// decode() parses with Xerces-C, validates against the shared SchemaSet (unless validation
// is off for the source), recognises type and version, and canonicalises. It never throws
// and never does I/O: bytes in, events or a Rejection out. A Decoder holds a parser and is
// used by one thread at a time; create one per thread (they share the SchemaSet).
//
// Supported: MsgHead v1.2 wrapping Dialogmelding 1.0/1.1, Henvisning 2.0 and the PLO
// messages 1.5/1.6/2.0; stand-alone Message roots Henvisning 1.0/1.1, Epikrise 1.0-1.2,
// Rekvisisjon 1.4-1.6, Svarrapport 1.2-1.4; AppRec 1.0 and 1.1; MsgHead inside NAV's
// EI_fellesformat wrapper.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "adapters/emelding/schema_set.hpp"
#include "engine/event/event.hpp"

namespace budstikke::emelding {

// AppRec error codes, code list 8221 (Helsedirektoratet / KITH).
struct AppRecCode {
  const char* code;
  const char* text;
};
inline constexpr AppRecCode kNotXml{"T01", "Ikke XML / ikke 'well formed'"};
inline constexpr AppRecCode kNotValid{"T02", "XML validerer ikke"};
inline constexpr AppRecCode kUnsupported{"T10", "Støtter ikke meldingsformatet"};
inline constexpr AppRecCode kBadMsgId{"E10", "Ugyldig meldingsidentifikator"};
inline constexpr AppRecCode kReceiverUnknown{"E21", "Mottaker finnes ikke"};
inline constexpr AppRecCode kPatientNotFound{"E35", "Pasienten finnes ikke"};
inline constexpr AppRecCode kOther{"X99", "Annen feil"};

// What we know about a message even when it is rejected: enough to address a negative
// AppRec to its sender and to point back at it.
struct MessageInfo {
  std::string family;  // msghead | message | apprec | fellesformat
  std::string
      standard;  // dialogmelding, henvisning, epikrise, rekvisisjon, svarrapport, plo, apprec
  std::string version;  // e.g. 1.1
  std::string namespace_uri;
  std::string msg_type;     // MsgInfo/Type@V or Type@V, e.g. DIALOG_NOTAT, SVAR
  std::string msg_type_dn;  // its display name
  std::string msg_id;
  std::string gen_date;
  Party sender;
  Party receiver;
  std::string apprec_version;  // the AppRec version this standard prescribes: 1.0 or 1.1
};

struct Rejection {
  AppRecCode code = kOther;
  std::string reason;  // which message, where (line:col, element), why
  int line = 0;
  int column = 0;
  MessageInfo info;  // whatever could be read
  bool sender_known() const {
    const auto& o = info.sender.organisation;
    return (!o.her_id.empty() || !o.org_number.empty()) && !o.name.empty() && !info.msg_id.empty();
  }
};

struct DecodeOptions {
  bool validate = true;              // per source: off for partners known to send invalid XML
  std::string channel;               // e.g. file:inbox
  std::string key_secret;            // HMAC key for the Kafka key
  size_t claim_check_threshold = 0;  // 0: everything inline
  std::string claim_check_dir;       // where large attachments go (empty: inline)
};

struct Decoded {
  std::vector<Event> events;  // the message (first), then nothing else for now
  MessageInfo info;
  bool validated = false;
  std::vector<std::string> warnings;
};

namespace tree {
class Tree;
}

class Decoder {
 public:
  // schemas may be null: validation is then off (and every event says validated=false).
  explicit Decoder(std::shared_ptr<const SchemaSet> schemas);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // bytes -> events, or a rejection. `name` identifies the message in reasons (file name).
  std::variant<Decoded, Rejection> decode(std::string_view bytes, const DecodeOptions& opts,
                                          std::string_view name = {});

  // Validates a document (e.g. one we produced) against the schemas; empty when valid,
  // otherwise the errors with line:col.
  std::vector<std::string> validate(std::string_view bytes);

  // The fast path (native parser and compiled validator; Xerces decides what it declines)
  // is on by default. Off: every message goes through Xerces, as tests comparing the two do.
  void set_fast_path(bool on);
  struct PathStats {
    size_t fast = 0;                      // decoded entirely on the fast path
    size_t xerces = 0;                    // handed to Xerces
    size_t parse_declined = 0;            // ... because the native parser declined
    size_t validate_declined = 0;         // ... because the compiled validator declined
    const char* last_declined = nullptr;  // why, for the last message handed to Xerces
  };
  const PathStats& path_stats() const;
  // The tree of the last decode (for tests that compare the two paths).
  const tree::Tree& last_tree() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Re-rendering. The original bytes of an event, exactly as received.
Result<std::string> encode_original(const Event& e);

// A fresh message of the same type and version for another receiver: new MsgId and
// GenDate, the Receiver replaced, everything else kept. Only for MsgHead and Message roots.
struct Readdress {
  Party receiver;
  std::string new_msg_id;  // empty: a new UUID
  std::string gen_date;    // empty: now
};
Result<std::string> encode_readdressed(const Event& e, const Readdress& r);

}  // namespace budstikke::emelding
