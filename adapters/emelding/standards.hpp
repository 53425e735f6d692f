#pragma once
// What Budstikke knows about each KITH / e-helse standard: namespace -> name, version,
// canonical event type, and the AppRec version it prescribes.

#include <string>
#include <string_view>

#include "engine/event/event.hpp"

namespace budstikke::emelding {

struct StandardInfo {
  const char* namespace_uri;
  const char* standard;  // dialogmelding, henvisning, epikrise, rekvisisjon, svarrapport, plo,
                         // apprec, msghead
  const char* version;
  EventType type;
  const char* apprec_version;
};

// nullptr when the namespace is not a supported standard.
const StandardInfo* standard_by_namespace(std::string_view ns);

// nullptr when unknown; e.g. ("dialogmelding", "1.1").
const StandardInfo* standard_by_name(std::string_view standard, std::string_view version);

// Canonical event type for a MsgHead MsgInfo/Type code (code list 8279), given the payload
// standard as a fallback.
EventType type_for_msg_type(std::string_view code, EventType fallback);

// Now as a KITH dateTime: Norwegian local time without a zone, e.g. 2026-11-20T09:12:00.
std::string kith_datetime_now();

// A readable name for a code-system OID (e.g. 2.16.578.1.12.4.1.1.7170 -> ICPC-2).
std::string code_system_name(std::string_view oid);

}  // namespace budstikke::emelding
