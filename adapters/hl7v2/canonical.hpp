#pragma once
// HL7 v2 -> canonical events, and the engine-facing codec.
//
// ADT A01/A04 admission, A02 transfer, A03 discharge, A08/A31 patient update, A11/A13
// cancellations (cancelled=true), A18/A30/A34/A40 merges; ORM^O01 and OML^O21 lab
// requisitions; ORU^R01 lab results; REF^I12 referrals; MDM^T02 documents (embedded ED
// documents become attachments); ACK acknowledgements.

#include "adapters/hl7v2/message.hpp"
#include "engine/event/event.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::hl7v2 {

// The canonical event for a parsed message.
Event to_event(const Message& m, std::string_view original_bytes,
               const runtime::DecodeContext& ctx);

// HL7 time stamp (YYYY[MM[DD[HH[MM[SS[.S+]]]]]][+/-ZZZZ]) -> RFC 3339 when it has a zone
// and at least minutes; "YYYY-MM-DD" for dates; empty otherwise.
std::string hl7_time_to_rfc3339(std::string_view ts);
std::string hl7_date(std::string_view ts);

class Hl7Codec final : public runtime::Codec {
 public:
  std::string_view name() const override { return "hl7v2"; }
  bool detect(std::string_view bytes) const override { return looks_like_hl7(bytes); }
  runtime::DecodeResult decode(std::string_view bytes,
                               const runtime::DecodeContext& ctx) const override;
  // Routes: an HL7 event readdressed to the destination (MSH-5 receiving application =
  // system id, MSH-6 receiving facility = its HER-id), everything else kept, MSH-10 too
  // (it is the idempotency key receivers use). Events of other origins are built from the
  // canonical event (render.hpp).
  Result<std::string> render(const Event& e, std::string_view original,
                             const runtime::RenderRequest& r) const override;
};

}  // namespace budstikke::hl7v2
