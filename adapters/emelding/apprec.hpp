#pragma once
// AppRec (applikasjonskvittering) 1.0 and 1.1: the receipt every e-melding gets.
// Status 1 = OK, 2 = rejected (avvist), 3 = OK with errors in part of the message.
// Error codes from code list 8221 (see codec.hpp).

#include <string>
#include <vector>

#include "adapters/emelding/codec.hpp"

namespace budstikke::emelding {

struct AppRecError {
  std::string code;    // e.g. T02
  std::string text;    // e.g. "XML validerer ikke"
  std::string detail;  // free text: which element, which line
};

struct AppRecRequest {
  std::string version = "1.0";  // "1.0" or "1.1"
  int status = 1;               // 1 OK, 2 rejected, 3 OK with errors
  std::vector<AppRecError> errors;
  // About the message being answered:
  std::string original_msg_type;     // MsgInfo/Type@V, e.g. DIALOG_NOTAT
  std::string original_msg_type_dn;  // its display name
  std::string original_issue_date;   // GenDate of the original
  std::string original_msg_id;
  // The AppRec goes from the original's receiver to the original's sender: mirrored.
  Party sender;          // us: the receiver of the original
  Party receiver;        // the sender of the original
  std::string id;        // empty: a new UUID
  std::string gen_date;  // empty: now (local time, no zone, as KITH dateTime)
};

// Builds the AppRec XML. Sender and receiver need at least an organisation name and HER-id.
Result<std::string> build_apprec(const AppRecRequest& r);

// The AppRec answering a message that was decoded (status 1) or rejected (status 2),
// sender and receiver mirrored from the original. `us` replaces the sender when the
// original's receiver is unknown.
AppRecRequest apprec_ok(const MessageInfo& original);
AppRecRequest apprec_rejected(const Rejection& rejection);

// Escapes text for XML content and attribute values.
std::string xml_escape(std::string_view s);

}  // namespace budstikke::emelding
