#include "adapters/hl7v2/ack.hpp"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <string_view>
#include <variant>

namespace budstikke::hl7v2 {

namespace {

std::string hl7_now() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  return {buf, std::strftime(buf, sizeof buf, "%Y%m%d%H%M%S", &tm)};
}

}  // namespace

std::optional<std::string> make_ack(const Message& m, const AckRequest& r,
                                    const std::string& control_id) {
  const Delimiters& d = m.delimiters();
  const std::string accept_type = m.get(Path{"MSH", 1, 15, 1, 0, 0}).value_or("");
  const std::string app_type = m.get(Path{"MSH", 1, 16, 1, 0, 0}).value_or("");
  const bool enhanced = !accept_type.empty() || !app_type.empty();
  if (enhanced) {
    if (accept_type == "NE") return std::nullopt;
    if (accept_type == "ER" && r.code == AckCode::kAccept) return std::nullopt;
    if (accept_type == "SU" && r.code != AckCode::kAccept) return std::nullopt;
  }
  const char* code = nullptr;
  switch (r.code) {
    case AckCode::kAccept:
      code = enhanced ? "CA" : "AA";
      break;
    case AckCode::kError:
      code = enhanced ? "CE" : "AE";
      break;
    case AckCode::kReject:
      code = enhanced ? "CR" : "AR";
      break;
  }
  const std::string f(1, d.field);
  const std::string original_id = m.get(Path{"MSH", 1, 10, 1, 0, 0}).value_or("");
  // Appended piece by piece (one ACK per accepted message: the concatenated temporaries
  // showed in the MLLP ingest profile).
  std::string ack;
  ack.reserve(160 + original_id.size() * 2 + r.text.size());
  const auto raw = [&](int field) {
    ack += d.field;
    ack += m.get_raw(Path{"MSH", 1, field, 1, 0, 0}).value_or("");
  };
  ack += "MSH";
  ack += d.field;
  ack += d.encoding_characters();
  raw(5);
  raw(6);
  raw(3);
  raw(4);
  ack += d.field;
  ack += hl7_now();
  ack += d.field;
  ack += d.field;
  ack += "ACK";
  ack += d.component;
  ack += m.get(Path{"MSH", 1, 9, 1, 2, 0}).value_or("");
  ack += d.component;
  ack += "ACK";
  ack += d.field;
  ack += escape(control_id.empty() ? "ACK" + original_id : control_id, d);
  raw(11);
  raw(12);
  ack += "\rMSA" + f + code + f + escape(original_id, d);
  if (!r.text.empty()) ack += f + escape(r.text.substr(0, 500), d);
  if (r.code != AckCode::kAccept) {
    const std::string c(1, d.component);
    // ERR (v2.5): ERR-2 location, ERR-3 HL7 error code (table 0357), ERR-4 severity,
    // ERR-8 user message.
    ack += "\rERR" + f + f + escape(r.error_location, d) + f +
           escape(r.error_code.empty() ? "207" : r.error_code, d) + c +
           escape(r.error_code == "100"   ? "Segment sequence error"
                  : r.error_code == "102" ? "Data type error"
                  : r.error_code == "200" ? "Unsupported message type"
                  : r.error_code == "203" ? "Unsupported version id"
                                          : "Application internal error",
                  d) +
           c + "HL70357" + f + "E" + f + f + f + f + escape(r.text.substr(0, 500), d);
  }
  return ack + "\r";
}

std::string make_nak_for_unparsable(std::string_view bytes, const std::string& reason) {
  // What can be read of MSH-10 with the standard field separator, if anything.
  std::string control;
  if (bytes.substr(0, 3) == "MSH" && bytes.size() > 4) {
    const char fs = bytes[3];
    size_t pos = 0;
    for (int i = 0; i < 9 && pos != std::string_view::npos; ++i) pos = bytes.find(fs, pos + 1);
    if (pos != std::string_view::npos) {
      const size_t end = bytes.find_first_of(std::string(1, fs) + "\r\n", pos + 1);
      control =
          std::string(bytes.substr(pos + 1, end == std::string_view::npos ? 32 : end - pos - 1));
      if (control.size() > 64) control.resize(64);
    }
  }
  Delimiters d;
  return "MSH|^~\\&|||||" + hl7_now() + "||ACK|NAK" + escape(control, d) + "|P|2.5\rMSA|AR|" +
         escape(control, d) + "|" + escape(reason.substr(0, 500), d) +
         "\rERR|||100^Segment sequence error^HL70357|E||||" + escape(reason.substr(0, 500), d) +
         "\r";
}

std::optional<AckInfo> read_ack(const Message& ack) {
  // Read for every message delivered over MLLP: the paths are taken apart once.
  static const Path kMsa1 = *Path::parse("MSA-1");
  static const Path kMsa2 = *Path::parse("MSA-2");
  static const Path kMsa3 = *Path::parse("MSA-3");
  auto code = ack.get(kMsa1);
  if (!code || code->empty()) return std::nullopt;
  return AckInfo{*code, ack.get(kMsa2).value_or(""), ack.get(kMsa3).value_or("")};
}

std::string control_id_of(std::string_view message) {
  constexpr auto kNpos = std::string_view::npos;
  const auto plain = [](char c) {
    return static_cast<unsigned char>(c) >= 0x20 && static_cast<unsigned char>(c) < 0x7f;
  };
  const auto alnum = [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  };
  const std::string_view msh = message.substr(0, message.find_first_of("\r\n"));
  // Cut from the text only where the parser takes the segment as it stands: MSH first, a
  // valid field separator and four or five distinct encoding characters, MSH-9 given, and an
  // id of printable ASCII without delimiters. Anything else is parsed.
  if (msh.size() >= 8 && msh.substr(0, 3) == "MSH") {
    const char fs = msh[3];
    const size_t enc_end = msh.find(fs, 4);
    const std::string_view enc = msh.substr(4, enc_end == kNpos ? kNpos : enc_end - 4);  // MSH-2
    bool usable = !alnum(fs) && fs != ' ' && enc_end != kNpos && enc.size() >= 4 && enc.size() <= 5;
    for (size_t i = 0; usable && i < enc.size(); ++i)
      usable =
          plain(enc[i]) && !alnum(enc[i]) && enc[i] != ' ' && enc[i] != fs && enc.find(enc[i]) == i;
    // enc_end is the separator before MSH-3; the sixth after it is the one before MSH-9.
    size_t pos = enc_end;
    for (int i = 0; usable && i < 6; ++i) usable = (pos = msh.find(fs, pos + 1)) != kNpos;
    const size_t type_end = usable ? msh.find(fs, pos + 1) : kNpos;
    if (usable && type_end != kNpos && type_end > pos + 1) {
      const size_t end = msh.find(fs, type_end + 1);
      const std::string_view id =
          msh.substr(type_end + 1, end == kNpos ? kNpos : end - type_end - 1);
      if (std::all_of(id.begin(), id.end(), plain) && id.find_first_of(enc) == kNpos)
        return std::string(id);
    }
  }
  auto parsed = Message::parse(msh);
  if (!std::holds_alternative<Message>(parsed)) return {};
  return std::get<Message>(parsed).get("MSH-10").value_or("");
}

}  // namespace budstikke::hl7v2
