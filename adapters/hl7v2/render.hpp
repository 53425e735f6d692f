#pragma once
// Canonical events of any origin as HL7 v2 (see render.cpp): lab results -> ORU^R01,
// admissions/discharges/transfers/updates -> ADT^A01/A03/A02/A08, everything else ->
// MDM^T02 with the original message as an ED attachment. MSH-5 is the destination system,
// MSH-6 its HER-id, MSH-10 the source message id (the idempotency key).

#include <string>
#include <string_view>

#include "engine/core/result.hpp"
#include "engine/event/event.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::hl7v2 {

Result<std::string> render_event(const Event& e, std::string_view original,
                                 const runtime::RenderRequest& r);

}  // namespace budstikke::hl7v2
