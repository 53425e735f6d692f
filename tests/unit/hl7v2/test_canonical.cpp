// HL7 v2 -> canonical events, acknowledgements in original and enhanced mode.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/canonical.hpp"
#include "engine/core/crypto.hpp"
#include "engine/core/redact.hpp"
#include "engine/runtime/ingest.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace budstikke::hl7v2;

namespace {

runtime::DecodeContext ctx() {
  return {"test", "msg", true, "hl7-test-secret-012345"};
}

Event one(const std::string& text) {
  auto r = Hl7Codec().decode(text, ctx());
  if (auto* rej = std::get_if<runtime::CodecRejection>(&r)) {
    ADD_FAILURE() << rej->reason;
    return {};
  }
  auto& out = std::get<runtime::CodecOutput>(r);
  EXPECT_EQ(out.events.size(), 1u);
  return out.events.at(0);
}

const std::string kMsh =
    "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|LABSYS|FJORDLAB^8300001^HER|20261120101500+0100||";

}  // namespace

TEST(Hl7Canonical, AdmissionTransferDischargeUpdateMerge) {
  const std::string pid =
      "\rEVN|A01|20261120101500+0100\rPID|1||A55^^^NORDVIK^PI~12837512393^^^NOR^FNR||Fjellheim^"
      "Kari||19750312|F\r"
      "PV1|1|I|MED^201^1^NORDVIK||||8100011^Lindqvist^Mari|||MED|||||||||V123||||||||||||||||||||||"
      "|||20261120100000\r";
  struct Case {
    const char* trigger;
    EventType type;
    bool cancelled;
  };
  for (const Case c :
       {Case{"A01", EventType::kAdmission, false}, Case{"A02", EventType::kTransfer, false},
        Case{"A03", EventType::kDischarge, false}, Case{"A04", EventType::kAdmission, false},
        Case{"A08", EventType::kPatientUpdate, false}, Case{"A11", EventType::kAdmission, true},
        Case{"A13", EventType::kDischarge, true}, Case{"A40", EventType::kMerge, false}}) {
    const Event e = one(kMsh + "ADT^" + c.trigger + "|M" + c.trigger + "|P|2.5" + pid);
    const nlohmann::json body = e.full_body();
    EXPECT_EQ(e.type, c.type) << c.trigger;
    EXPECT_EQ(body.value("cancelled", false), c.cancelled) << c.trigger;
    EXPECT_EQ(e.source.message_type, std::string("ADT^") + c.trigger);
    EXPECT_EQ(e.source.message_id, std::string("M") + c.trigger);
    EXPECT_EQ(e.sender.organisation.her_id, "8200001");
    EXPECT_EQ(e.sender.system, "DIPS");
    EXPECT_EQ(e.receiver.organisation.her_id, "8300001");
    EXPECT_EQ(e.occurred_at, "2026-11-20T10:15:00+01:00");
    // The national id comes first and keys the event; it never appears in the key.
    EXPECT_EQ(body.at("patient").at("ids").at(0).value("type", ""), "FNR");
    EXPECT_EQ(body.at("patient").value("birth_date", ""), "1975-03-12");
    EXPECT_EQ(e.key.substr(0, 2), "p:");
    EXPECT_FALSE(contains_identity_number(e.key.substr(2)) &&
                 e.key.find("12837512393") != std::string::npos);
    EXPECT_EQ(body.at("visit").at("location").value("point_of_care", ""), "MED");
    EXPECT_EQ(body.at("visit").value("visit_number", ""), "V123");
  }
}

TEST(Hl7Canonical, LabResultWithEmbeddedPdf) {
  const std::string pdf = "%PDF-1.4 fictional report";
  const std::string msg = kMsh +
                          "ORU^R01^ORU_R01|R1|P|2.5\rPID|1||12837512393^^^NOR^FNR||Fjellheim^Kari\r"
                          "OBR|1|P1|F1|NPU03230^P-Kalium^NPU|||20261120081500\r"
                          "OBX|1|NM|NPU03230^P-Kalium^NPU||4.1|mmol/L|3.5-5.0|N|||F\r"
                          "OBX|2|NM|NPU03429^P-Natrium^NPU||148|mmol/L|137-145|H|||F\r"
                          "OBX|3|ED|PDF^Rapport^L||^application^PDF^Base64^" +
                          base64_encode(pdf) + "||||||F\r";
  const Event e = one(msg);
  EXPECT_EQ(e.type, EventType::kLabResult);
  const nlohmann::json body = e.full_body();
  const auto& obs = body["observations"];
  ASSERT_EQ(obs.size(), 3u);
  EXPECT_EQ(obs[1]["observation"]["code"], "NPU03429");
  EXPECT_EQ(obs[1]["value"], "148");
  EXPECT_EQ(obs[1]["unit"], "mmol/L");
  EXPECT_EQ(obs[1]["reference_range"], "137-145");
  EXPECT_EQ(obs[1]["flag"], "H");
  EXPECT_EQ(obs[1]["status"], "F");
  ASSERT_EQ(e.attachments.size(), 1u);
  EXPECT_EQ(e.attachments[0].mime, "application/pdf");
  EXPECT_EQ(*e.attachments[0].data, pdf);
  EXPECT_EQ(e.attachments[0].sha256, sha256_hex(pdf));
  EXPECT_EQ(obs[2]["attachment"], e.attachments[0].id);
  EXPECT_EQ(body["orders"][0]["service"]["code"], "NPU03230");
}

TEST(Hl7Canonical, RequisitionReferralDocument) {
  EXPECT_EQ(
      one(kMsh + "OML^O21|O1|P|2.5\rPID|1||1^^^X^PI\rORC|NW|P1\rOBR|1|P1||NPU03230^P-Kalium\r")
          .type,
      EventType::kLabRequisition);
  EXPECT_EQ(one(kMsh + "ORM^O01|O2|P|2.3\rPID|1||1^^^X^PI\rORC|NW|P2\r").type,
            EventType::kLabRequisition);
  const Event ref = one(kMsh +
                        "REF^I12|F1|P|2.5\rRF1|A^Accepted|R^Routine|MED^Medisin||O|REF123\r"
                        "PID|1||1^^^X^PI\rDG1|1||I10^Essensiell hypertensjon^ICD10\r");
  EXPECT_EQ(ref.type, EventType::kReferral);
  EXPECT_EQ(ref.full_body()["referral"]["referral_id"], "REF123");
  EXPECT_EQ(ref.full_body()["diagnoses"][0]["code"], "I10");
  EXPECT_EQ(ref.full_body()["diagnoses"][0]["system"], "ICD10");
  const Event doc =
      one(kMsh +
          "MDM^T02|D1|P|2.5\rPID|1||1^^^X^PI\rTXA|1|DS^Epikrise|TX|||||||||DOC77||||||AU\r"
          "OBX|1|ED|DS^Epikrise||^application^PDF^Base64^" +
          base64_encode("pdf") + "\r");
  EXPECT_EQ(doc.type, EventType::kDocument);
  EXPECT_EQ(doc.full_body()["document"]["unique_id"], "DOC77");
  EXPECT_EQ(doc.attachments.size(), 1u);
}

TEST(Hl7Canonical, RejectionsCarryANak) {
  auto r = Hl7Codec().decode("MSH|^~\\&|A|B|C|D|2026||ADT^A01||P|2.5\rPID|1\r", ctx());
  ASSERT_TRUE(std::holds_alternative<runtime::CodecRejection>(r));
  const auto& rej = std::get<runtime::CodecRejection>(r);
  EXPECT_EQ(rej.code, "AR");
  EXPECT_NE(rej.reason.find("MSH-10"), std::string::npos);
  auto nak = Message::parse(rej.receipt);
  ASSERT_TRUE(std::holds_alternative<Message>(nak));
  EXPECT_EQ(std::get<Message>(nak).get("MSA-1"), "AR");
  EXPECT_TRUE(std::get<Message>(nak).get("ERR-3-1").has_value());

  auto g = Hl7Codec().decode("MSH|^~|broken", ctx());
  ASSERT_TRUE(std::holds_alternative<runtime::CodecRejection>(g));
  auto nak2 = Message::parse(std::get<runtime::CodecRejection>(g).receipt);
  ASSERT_TRUE(std::holds_alternative<Message>(nak2));
  EXPECT_EQ(std::get<Message>(nak2).get("MSA-1"), "AR");
}

TEST(Hl7Ack, OriginalAndEnhancedModes) {
  auto parse = [](const std::string& s) { return std::get<Message>(Message::parse(s)); };
  const Message original = parse(kMsh + "ADT^A01|C42|P|2.5\rPID|1\r");
  auto ack = make_ack(original, {AckCode::kAccept, "", "", ""});
  ASSERT_TRUE(ack.has_value());
  const Message a = parse(*ack);
  EXPECT_EQ(a.get("MSA-1"), "AA");
  EXPECT_EQ(a.get("MSA-2"), "C42");
  EXPECT_EQ(a.get("MSH-3"), "LABSYS");  // sender and receiver swapped
  EXPECT_EQ(a.get("MSH-5"), "DIPS");
  EXPECT_EQ(a.get("MSH-9-1"), "ACK");
  EXPECT_EQ(a.get("MSH-9-2"), "A01");
  const Message e = parse(*make_ack(original, {AckCode::kError, "Kafka unavailable", "207", ""}));
  EXPECT_EQ(e.get("MSA-1"), "AE");
  EXPECT_EQ(e.get("ERR-8"), "Kafka unavailable");
  // Enhanced mode: CA/CE/CR, and MSH-15 decides whether an accept ACK is sent at all.
  const Message al = parse(kMsh + "ADT^A01|C43|P|2.5|||AL|NE\rPID|1\r");
  EXPECT_EQ(parse(*make_ack(al, {AckCode::kAccept, "", "", ""})).get("MSA-1"), "CA");
  EXPECT_EQ(parse(*make_ack(al, {AckCode::kReject, "bad", "100", ""})).get("MSA-1"), "CR");
  const Message ne = parse(kMsh + "ADT^A01|C44|P|2.5|||NE|AL\rPID|1\r");
  EXPECT_FALSE(make_ack(ne, {AckCode::kAccept, "", "", ""}).has_value());
  const Message er = parse(kMsh + "ADT^A01|C45|P|2.5|||ER|AL\rPID|1\r");
  EXPECT_FALSE(make_ack(er, {AckCode::kAccept, "", "", ""}).has_value());
  EXPECT_TRUE(make_ack(er, {AckCode::kError, "x", "207", ""}).has_value());
  const auto info = read_ack(a);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->code, "AA");
  EXPECT_EQ(info->acknowledged_id, "C42");
}

// An MLLP delivery checks each ACK's MSA-2 against the control id it sent, cut from the text
// without a parse where that gives what the parser reads.
TEST(Hl7Ack, ControlIdOfAMessageIsWhatTheParserReads) {
  const auto parser = [](std::string_view m) {
    auto p = Message::parse(m.substr(0, m.find_first_of("\r\n")));
    return std::holds_alternative<Message>(p) ? std::get<Message>(p).get("MSH-10").value_or("")
                                              : std::string();
  };
  const std::vector<std::string> cases = {
      kMsh + "ADT^A01|C42|P|2.5\rPID|1\r",
      kMsh + "ADT^A01|C42",               // MSH-10 the last field, no terminator
      kMsh + "ADT^A01||P|2.5\r",          // empty
      kMsh + "ADT^A01|C\\T\\42|P|2.5\r",  // an escape in it: parsed
      kMsh + "ADT^A01|C42^X|P|2.5\r",     // a component: parsed
      kMsh +
          "ADT^A01|C\xc3\xa5"
          "42|P|2.5\r",                                  // not ASCII: parsed
      "MSH#^~\\&#A#B#C#D#20261120##ADT^A01#X7#P#2.5\r",  // another field separator
      "MSH|^~\\&|A|B|C|D\rPID|1\r",                      // too few fields
      "PID|1\r",                                         // no MSH
      "",
  };
  for (const auto& c : cases) EXPECT_EQ(control_id_of(c), parser(c)) << c;
  EXPECT_EQ(control_id_of(kMsh + "ADT^A01|C42|P|2.5\rPID|1\r"), "C42");
  EXPECT_EQ(control_id_of("MSH#^~\\&#A#B#C#D#20261120##ADT^A01#X7#P#2.5\r"), "X7");
  EXPECT_EQ(control_id_of("PID|1\r"), "");
  // Every message of the HL7 corpus.
  const auto dir = testenv::corpora_dir() / "hl7v2";
  int n = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() != ".hl7") continue;
    std::ifstream in(f.path(), std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto at = text.find("MSH");
    if (at == std::string::npos) continue;
    EXPECT_EQ(control_id_of(text.substr(at)), parser(text.substr(at))) << f.path();
    ++n;
  }
  EXPECT_GE(n, 100);
}

TEST(Hl7Time, Conversions) {
  EXPECT_EQ(hl7_time_to_rfc3339("20261120101500+0100"), "2026-11-20T10:15:00+01:00");
  EXPECT_EQ(hl7_time_to_rfc3339("202611201015-0500"), "2026-11-20T10:15:00-05:00");
  EXPECT_EQ(hl7_time_to_rfc3339("20261120101500"), "");  // no zone: not guessed
  EXPECT_EQ(hl7_date("19750312"), "1975-03-12");
  EXPECT_EQ(hl7_date("1975"), "");
}

TEST(Hl7Canonical, FuzzFoundInvalidUtf8NeverThrowsOnSerialisation) {
  // Raw bytes that are neither UTF-8 nor meant as text still give a serialisable event.
  const std::string msg = kMsh + "ADT^A08|U1|P|2.5\rPID|1||1^^^X^PI||A\\XFFFE\\B\r";
  const Event e = one(msg);
  EXPECT_NO_THROW((void)to_json_string(e));
}

// The "received" tracking record is written as text; it must be the JSON object the
// tracking readers expect, byte for byte as nlohmann::json writes that object.
TEST(TrackingRecord, ReceivedRecordIsTheJsonObjectTrackReads) {
  using nlohmann::json;
  const std::string secret = "unit-secret-0123456789abcdef";
  const std::string text =
      "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|RIS|NORDVIK|20261120101500+0100||ADT^A01|MSG7|P|2.5\r"
      "PID|1||13116900216^^^NOR^FNR||Nordmann^\xc3\x85se||19691113|F\r";
  runtime::DecodeContext ctx{"mllp:test", "t", true, secret, false};
  auto d = Hl7Codec().decode(text, ctx);
  ASSERT_TRUE(std::holds_alternative<runtime::CodecOutput>(d));
  Event e = std::get<runtime::CodecOutput>(d).events.at(0);
  auto expected = [&](const Event& ev) {
    json t = {{"message_id", ev.source.message_id},
              {"event_id", ev.event_id},
              {"state", "received"},
              {"at", "2026-12-01T10:00:00Z"},
              {"channel", "mllp:test"},
              {"type", std::string(to_string(ev.type))},
              {"format", ev.source.format},
              {"validated", ev.source.validated.value_or(false)}};
    if (const auto pr = patient_ref(ev, secret); !pr.empty()) t["patient_ref"] = pr;
    if (!ev.conversation.conversation_ref.empty())
      t["conversation_ref"] = ev.conversation.conversation_ref;
    if (!ev.conversation.in_reply_to.empty()) {
      t["in_reply_to"] = ev.conversation.in_reply_to;
      const json body = ev.full_body();
      if (const auto st = body.find("status"); st != body.end() && st->is_object()) {
        t["receipt_status"] = st->value("code", "");
        if (const auto er = body.find("errors"); er != body.end() && er->is_array())
          for (const auto& x : *er) t["receipt_errors"].push_back(x.value("code", ""));
      }
    }
    return t.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  const std::string got = runtime::received_record(e, "mllp:test", "2026-12-01T10:00:00Z", secret);
  EXPECT_EQ(got, expected(e));
  // An HL7 ACK answers a message; its body is text as every HL7 event's is.
  auto ack = Hl7Codec().decode(
      "MSH|^~\\&|RIS|NORDVIK|DIPS|NORDVIK|20261120101600+0100||ACK^A01|ACK7|P|2.5\r"
      "MSA|AA|MSG7\r",
      ctx);
  ASSERT_TRUE(std::holds_alternative<runtime::CodecOutput>(ack));
  const Event a = std::get<runtime::CodecOutput>(ack).events.at(0);
  ASSERT_FALSE(a.body_json.empty());
  EXPECT_EQ(a.conversation.in_reply_to, "MSG7");
  EXPECT_EQ(runtime::received_record(a, "mllp:test", "2026-12-01T10:00:00Z", secret), expected(a));
  EXPECT_NE(got.find("\"patient_ref\""), std::string::npos);
  EXPECT_EQ(got.find("13116900216"), std::string::npos);  // no identity number in tracking

  // A receipt: conversation, the message it answers, its status and error codes (the body
  // as nlohmann::json, as events read from Kafka hold it).
  e.body = e.full_body();
  e.body_json.clear();
  e.conversation.conversation_ref = "conv-1";
  e.conversation.in_reply_to = "MSG6";
  e.body["status"] = {{"code", "AVVIST"}};
  e.body["errors"] = json::array({{{"code", "E10"}}, {{"code", "T10"}}});
  e.source.validated = true;
  EXPECT_EQ(runtime::received_record(e, "mllp:test", "2026-12-01T10:00:00Z", secret), expected(e));
  e.body["errors"] = json::array();  // no codes: no receipt_errors member
  EXPECT_EQ(runtime::received_record(e, "mllp:test", "2026-12-01T10:00:00Z", secret), expected(e));
  // The engine that took it in (kafka.instance), when named.
  json with_engine = json::parse(expected(e));
  with_engine["engine"] = "bs-1";
  EXPECT_EQ(runtime::received_record(e, "mllp:test", "2026-12-01T10:00:00Z", secret, "bs-1"),
            with_engine.dump(-1, ' ', false, json::error_handler_t::replace));
}

// The HL7 body is written as JSON text (Event::body_json). For every corpus message and a
// few written for the cases the corpus lacks (escapes, identifiers in either order, blanks
// in a number, no patient, explicit nulls), it must be what nlohmann::json writes for the
// same value, survive a round trip through JSON, and give the patient identity, Kafka key
// and patient reference that reading the body as JSON gives.
TEST(Hl7Canonical, TextBodyIsExactlyTheJsonOfItsValue) {
  using nlohmann::json;
  std::vector<std::string> inputs = {
      kMsh +
          "ADT^A01|T1|P|2.5\rPID|1||A55^^^NORDVIK^PI~1283 7512393^^^NOR^FNR~9^^^X^XX||"
          "Fjell\\T\\heim^K\\S\\ari^\"\"||19750312|F\rPV1|1|I|\"\"^2\\F\\1\r",
      kMsh + "ADT^A08|T2|P|2.5\rPID|1||   ^^^X^PI~77^^^X\r",
      kMsh + "ADT^A40|T3|P|2.5\rPID|1||5^^^X^PI\rMRG|4^^^X^PI\r",
      kMsh +
          "ORU^R01|T4|P|2.5\rOBR|1|P1\rOBX|1|TX|C^T||a~b~~c||||||F\r"
          "OBX|2|ED|D^Doc||^application^PDF^Base64^!!notbase64\r",
      kMsh + "ACK^A01|T5|P|2.5\rMSA|AE|M9\r",
  };
  const std::filesystem::path dir = testenv::corpora_dir() / "hl7v2";
  for (const auto& f : std::filesystem::directory_iterator(dir))
    if (f.path().extension() == ".hl7") inputs.push_back(testenv::read_file(f.path()));
  ASSERT_GT(inputs.size(), 100u) << dir;
  const std::string secret = "text-body-secret-0123456789";
  const runtime::DecodeContext c{"test", "msg", true, secret};
  size_t events = 0;
  for (const auto& in : inputs) {
    auto r = Hl7Codec().decode(in, c);
    auto* out = std::get_if<runtime::CodecOutput>(&r);
    if (!out) continue;
    for (const Event& e : out->events) {
      ++events;
      ASSERT_FALSE(e.body_json.empty());
      const std::string text = to_json_string(e);
      EXPECT_EQ(text, to_json(e).dump(-1, ' ', false, json::error_handler_t::replace)) << in;
      auto back = event_from_json_string(text);
      ASSERT_TRUE(back.ok()) << back.error().message;
      EXPECT_TRUE(back.value() == e) << in;
      EXPECT_TRUE(back.value().body_json.empty());
      EXPECT_EQ(patient_identity(back.value()), patient_identity(e)) << in;
      EXPECT_EQ(kafka_key(back.value(), secret), e.key) << in;
      EXPECT_EQ(patient_ref(back.value(), secret), patient_ref(e, secret)) << in;
    }
  }
  EXPECT_GT(events, 100u);
}
