// libFuzzer target: the HL7 v2 parser (single messages and streams), path reads, the
// writer with another delimiter set, ACK building and the canonical mapping must never
// crash, hang or leak on any input.

#include <cstdint>
#include <string>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/canonical.hpp"

using namespace budstikke;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  auto r = hl7v2::parse_stream(bytes);
  if (auto* st = std::get_if<hl7v2::Stream>(&r)) {
    for (const auto& m : st->messages) {
      for (const char* p : {"MSH-9-1", "MSH-10", "PID-3(2)-1", "PID-5-1-1", "OBX(2)-5", "ZZZ-1"})
        (void)m.get(p);
      hl7v2::Delimiters other;
      other.field = '#';
      other.component = '!';
      (void)m.encode(other, "\n");
      (void)hl7v2::make_ack(m, {hl7v2::AckCode::kReject, "fuzz", "100", ""});
      hl7v2::Message copy = m;
      (void)copy.set("PID-5-1", std::string(bytes.substr(0, 16)));
    }
    (void)st->get("BTS-1");
  }
  runtime::DecodeContext ctx{"fuzz", "fuzz", true, "fuzz-secret-0123456789"};
  auto d = hl7v2::Hl7Codec().decode(bytes, ctx);
  if (auto* out = std::get_if<runtime::CodecOutput>(&d))
    for (const auto& e : out->events) {
      // The envelope is written without nlohmann: it must give nlohmann's bytes exactly.
      if (to_json_string(e) !=
          to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        __builtin_trap();
    }
  (void)hl7v2::make_nak_for_unparsable(bytes, "fuzz");
  return 0;
}
