#pragma once
// HL7 v2 acknowledgements (ACK) for received messages, original and enhanced mode.
//
// Original mode (MSH-15 and MSH-16 empty): AA accepted, AE error (try again), AR rejected.
// Enhanced mode: the accept acknowledgement after Kafka has the message is CA / CE / CR,
// sent or not according to MSH-15 (AL always, NE never, ER only on error, SU only on
// success).

#include <optional>
#include <string>

#include "adapters/hl7v2/message.hpp"

namespace budstikke::hl7v2 {

enum class AckCode { kAccept, kError, kReject };

struct AckRequest {
  AckCode code = AckCode::kAccept;
  std::string text;             // MSA-3 / ERR-8: the reason, for humans
  std::string error_code = "";  // HL7 table 0357, e.g. 100 segment sequence, 102 data type,
                                // 200 unsupported message type, 207 application internal error
  std::string error_location;   // ERR-2, e.g. PID^1^3
};

// The acknowledgement to send for `original`, or nullopt when MSH-15 says not to.
// `control_id` is the ACK's own MSH-10 (empty: derived from the original's).
std::optional<std::string> make_ack(const Message& original, const AckRequest& r,
                                    const std::string& control_id = {});

// An acknowledgement for bytes that could not be parsed as a message at all (no usable
// MSH): best effort, with standard delimiters; MSA-2 is what could be read of MSH-10.
std::string make_nak_for_unparsable(std::string_view bytes, const std::string& reason);

// Reads an ACK: MSA-1 (AA/AE/AR/CA/CE/CR) and MSA-2 (the acknowledged control id).
struct AckInfo {
  std::string code;
  std::string acknowledged_id;
  std::string text;
};
std::optional<AckInfo> read_ack(const Message& ack);

// A message's MSH-10 (its control id) as Message::parse reads it from the MSH segment alone;
// empty when that segment cannot be read. An ASCII id without delimiters, the usual case, is
// cut from the text without parsing (an MLLP delivery checks each ACK's MSA-2 against it).
std::string control_id_of(std::string_view message);

}  // namespace budstikke::hl7v2
