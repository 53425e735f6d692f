// Canonical events of KITH origin rendered as HL7 v2 for systems that only take HL7, then
// read back with the HL7 codec: the values survive, MSH-5/6 address the destination and
// MSH-10 keeps the source message id.
#include <gtest/gtest.h>

#include "adapters/emelding/emelding_codec.hpp"
#include "adapters/hl7v2/canonical.hpp"
#include "adapters/hl7v2/message.hpp"
#include "engine/core/crypto.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;

namespace {

Event decode(const runtime::Codec& c, const std::string& bytes) {
  runtime::DecodeContext ctx{"test", "x", false, "k"};
  auto r = c.decode(bytes, ctx);
  auto* out = std::get_if<runtime::CodecOutput>(&r);
  EXPECT_TRUE(out) << std::get<runtime::CodecRejection>(r).reason;
  return out ? out->events.at(0) : Event{};
}

runtime::RenderRequest to_lab() {
  runtime::RenderRequest r;
  r.format = "hl7v2/2.5";
  r.system_id = "nordvik-lab";
  r.receiver.organisation.her_id = "8200020";
  r.receiver.organisation.name = "Nordvik lab";
  return r;
}

hl7v2::Message parse(const std::string& er7) {
  auto p = hl7v2::Message::parse(er7);
  EXPECT_TRUE(std::holds_alternative<hl7v2::Message>(p))
      << std::get<hl7v2::ParseError>(p).to_string();
  return std::get<hl7v2::Message>(std::move(p));
}

}  // namespace

TEST(Render, SvarrapportBecomesOruR01AndReadsBack) {
  emelding::EmeldingCodec kith(nullptr);
  hl7v2::Hl7Codec hl7;
  const std::string xml =
      testenv::read_file(testenv::source_dir() / "examples/messages/svarrapport-lab-result.xml");
  const Event e = decode(kith, xml);
  auto er7 = hl7.render(e, xml, to_lab());
  ASSERT_TRUE(er7.ok()) << er7.error().message;
  const auto m = parse(*er7);
  EXPECT_EQ(m.get("MSH-9-1"), "ORU");
  EXPECT_EQ(m.get("MSH-5"), "nordvik-lab");
  EXPECT_EQ(m.get("MSH-6"), "8200020");
  EXPECT_EQ(m.get("MSH-10"), e.source.message_id);
  EXPECT_EQ(m.get("PID-3-1"), "12837512393");
  EXPECT_EQ(m.get("PID-5-1"), "Fjellheim");
  EXPECT_EQ(m.get("OBX(1)-3-1"), "NPU03230");
  EXPECT_EQ(m.get("OBX(1)-5"), "4.1");
  EXPECT_EQ(m.get("OBX(1)-6"), "mmol/L");
  EXPECT_EQ(m.get("OBX(2)-5"), "148");
  EXPECT_EQ(m.get("OBX(2)-8"), "H");  // DevResultInd 1: above the upper limit
  EXPECT_EQ(m.get("OBX(2)-11"), "F");
  // Read back as a canonical lab result: the observations carry the same values.
  const Event back = decode(hl7, *er7);
  EXPECT_EQ(back.type, EventType::kLabResult);
  const nlohmann::json body = back.full_body();
  const auto& obs = body.at("observations");
  ASSERT_EQ(obs.size(), 2u);
  EXPECT_EQ(obs[1].value("value", ""), "148");
  EXPECT_EQ(obs[1].value("flag", ""), "H");
}

TEST(Render, PloAdmissionBecomesAdtA01) {
  emelding::EmeldingCodec kith(nullptr);
  hl7v2::Hl7Codec hl7;
  const std::string xml =
      testenv::read_file(testenv::standards_dir() /
                         "examples/plo/testcases/Testcase-mottak-Innleggelsesrapport-v1_5/"
                         "Case1-12-Innleggelsesrapport-v1_5.xml");
  const Event e = decode(kith, xml);
  ASSERT_EQ(e.type, EventType::kAdmission);
  auto er7 = hl7.render(e, xml, to_lab());
  ASSERT_TRUE(er7.ok()) << er7.error().message;
  const auto m = parse(*er7);
  EXPECT_EQ(m.get("MSH-9-1"), "ADT");
  EXPECT_EQ(m.get("MSH-9-2"), "A01");
  EXPECT_FALSE(m.get("PID-5-1").value_or("").empty());
  EXPECT_EQ(decode(hl7, *er7).type, EventType::kAdmission);
}

TEST(Render, OtherKindsTravelAsAnMdmDocumentWithTheOriginal) {
  emelding::EmeldingCodec kith(nullptr);
  hl7v2::Hl7Codec hl7;
  const std::string xml = testenv::read_file(testenv::source_dir() /
                                             "examples/messages/dialog-notat-gp-to-hospital.xml");
  const Event e = decode(kith, xml);
  auto er7 = hl7.render(e, xml, to_lab());
  ASSERT_TRUE(er7.ok()) << er7.error().message;
  const auto m = parse(*er7);
  EXPECT_EQ(m.get("MSH-9-1"), "MDM");
  EXPECT_EQ(m.get("OBX-2"), "ED");
  EXPECT_EQ(m.get("OBX-5-4"), "Base64");
  EXPECT_EQ(base64_decode(m.get("OBX-5-5").value_or("")).value_or(""), xml);
  EXPECT_EQ(m.get("TXA-12"), e.source.message_id);
}

TEST(Render, RekvisisjonBecomesOmlO21WithAnOrderPerAnalysis) {
  emelding::EmeldingCodec kith(nullptr);
  hl7v2::Hl7Codec hl7;
  const std::string xml = testenv::read_file(testenv::source_dir() /
                                             "examples/messages/rekvisisjon-lab-requisition.xml");
  const Event e = decode(kith, xml);
  ASSERT_EQ(e.type, EventType::kLabRequisition);
  ASSERT_EQ(e.body.at("analyses").size(), 2u);
  EXPECT_EQ(e.body.at("analyses")[0].value("specimen", ""), "Plasma");
  auto er7 = hl7.render(e, xml, to_lab());
  ASSERT_TRUE(er7.ok()) << er7.error().message;
  const auto m = parse(*er7);
  EXPECT_EQ(m.get("MSH-9-1"), "OML");
  EXPECT_EQ(m.get("MSH-9-2"), "O21");
  EXPECT_EQ(m.get("MSH-10"), e.source.message_id);
  EXPECT_EQ(m.get("PID-3-1"), "12837512393");
  EXPECT_EQ(m.get("ORC-1"), "NW");
  EXPECT_EQ(m.get("ORC-2"), "c4e2b8d3-2f55-4a1f-8b4c-6d7e8f9a0b12");
  EXPECT_EQ(m.get("ORC-12-1"), "8100011");
  EXPECT_EQ(m.get("ORC-12-2"), "Lindqvist");
  EXPECT_EQ(m.get("ORC-21-10"), "8100001");
  EXPECT_EQ(m.count("OBR"), 2u);
  EXPECT_EQ(m.get("OBR(1)-4-1"), "NPU03230");
  EXPECT_EQ(m.get("OBR(1)-4-2"), "P-Kalium");
  EXPECT_EQ(m.get("OBR(2)-4-1"), "NPU03429");
  EXPECT_EQ(m.get("OBR(2)-15"), "Plasma");
  // Read back: a lab requisition with both orders.
  const Event back = decode(hl7, *er7);
  EXPECT_EQ(back.type, EventType::kLabRequisition);
  EXPECT_EQ(back.full_body().at("orders").size(), 2u) << back.full_body().dump();
}

TEST(Render, HenvisningBecomesRefI12WithDiagnosesAndReasons) {
  emelding::EmeldingCodec kith(nullptr);
  hl7v2::Hl7Codec hl7;
  const std::string xml =
      testenv::read_file(testenv::source_dir() / "examples/messages/henvisning-gp-to-hospital.xml");
  const Event e = decode(kith, xml);
  ASSERT_EQ(e.type, EventType::kReferral);
  runtime::RenderRequest to_dips;
  to_dips.format = "hl7v2/2.5";
  to_dips.system_id = "nordvik-dips";
  to_dips.receiver.organisation.her_id = "8200001";
  to_dips.receiver.organisation.name = "Nordvik sykehus HF";
  auto er7 = hl7.render(e, xml, to_dips);
  ASSERT_TRUE(er7.ok()) << er7.error().message;
  const auto m = parse(*er7);
  EXPECT_EQ(m.get("MSH-9-1"), "REF");
  EXPECT_EQ(m.get("MSH-9-2"), "I12");
  EXPECT_EQ(m.get("RF1-6"), e.source.message_id);
  EXPECT_EQ(m.get("PRD(1)-1"), "RP");
  EXPECT_EQ(m.get("PRD(1)-7-1"), "8100001");
  EXPECT_EQ(m.get("PRD(2)-1"), "RT");
  EXPECT_EQ(m.get("PRD(2)-7-1"), "8200001");
  EXPECT_EQ(m.get("PID-5-1"), "Fjellheim");
  EXPECT_EQ(m.get("DG1-3-1"), "R02");
  EXPECT_EQ(m.get("DG1-3-3"), "ICPC-2");
  EXPECT_NE(m.get("NTE-3").value_or("").find("tungpust ved anstrengelse"), std::string::npos);
  const Event back = decode(hl7, *er7);
  EXPECT_EQ(back.type, EventType::kReferral);
  const nlohmann::json body = back.full_body();
  ASSERT_TRUE(body.contains("diagnoses")) << body.dump();
  EXPECT_EQ(body.at("diagnoses")[0].value("code", ""), "R02");
}

// An HL7 original fanned out: each destination gets the original with its own MSH-5/MSH-6,
// byte for byte what a render without the memo gives; the memo a route keeps per event is
// parsed once and not taken for another original.
TEST(Render, AnHl7OriginalIsReaddressedForEachDestinationFromOneParse) {
  hl7v2::Hl7Codec hl7;
  const std::string adt =
      testenv::read_file(testenv::source_dir() / "examples/messages/adt-a01-admission.hl7");
  const Event e = decode(hl7, adt);
  const std::string oru =
      testenv::read_file(testenv::source_dir() / "examples/messages/oru-r01-lab-result.hl7");
  const Event e2 = decode(hl7, oru);
  std::unique_ptr<runtime::RenderMemo> memo;
  for (int i = 0; i < 3; ++i) {
    runtime::RenderRequest r;
    r.format = "hl7v2";
    r.system_id = "dept-" + std::string(static_cast<size_t>(i * 7 + 1), 'x');  // grows, shrinks
    r.receiver.organisation.her_id = i == 1 ? "" : "8" + std::to_string(i);
    r.receiver.organisation.name = "Avdeling " + std::to_string(i);
    auto plain = hl7.render(e, adt, r);
    ASSERT_TRUE(plain.ok()) << plain.error().message;
    r.memo = &memo;
    auto memoised = hl7.render(e, adt, r);
    ASSERT_TRUE(memoised.ok()) << memoised.error().message;
    EXPECT_EQ(*memoised, *plain);
    const auto m = parse(*memoised);
    EXPECT_EQ(m.get("MSH-5"), r.system_id);
    EXPECT_EQ(m.get("MSH-6"), i == 1 ? r.receiver.organisation.name : "8" + std::to_string(i));
    EXPECT_EQ(m.get("MSH-10"), e.source.message_id);
    EXPECT_EQ(m.get("PID-5-1"), parse(adt).get("PID-5-1"));
    EXPECT_EQ(m.segment_count(), parse(adt).segment_count());
  }
  ASSERT_TRUE(memo);
  // The same slot with another event's original: that original, not the memo's.
  runtime::RenderRequest r;
  r.format = "hl7v2";
  r.system_id = "lab";
  r.memo = &memo;
  auto other = hl7.render(e2, oru, r);
  ASSERT_TRUE(other.ok()) << other.error().message;
  EXPECT_EQ(parse(*other).get("MSH-9-1"), "ORU");
  EXPECT_EQ(parse(*other).get("MSH-10"), e2.source.message_id);
}

// A canonical event read from Kafka may carry any JSON in its body (anyone who may write to
// a canonical topic can put it there): a member of an unexpected shape renders as empty,
// never as an exception out of the route stage.
TEST(Render, BodyMembersOfAnyShapeRenderWithoutThrowing) {
  emelding::EmeldingCodec kith(nullptr);
  hl7v2::Hl7Codec hl7;
  struct Kind {
    const char* file;
    EventType type;
    const char* lists[3];
  } kinds[] = {
      {"svarrapport-lab-result.xml", EventType::kLabResult, {"results", "observations", nullptr}},
      {"rekvisisjon-lab-requisition.xml", EventType::kLabRequisition, {"analyses", nullptr}},
      {"henvisning-gp-to-hospital.xml", EventType::kReferral, {"diagnoses", "reasons", nullptr}},
      {"plo-admission-notice.xml", EventType::kAdmission, {nullptr}},
  };
  const nlohmann::json odd[] = {nullptr, 5, "text", nlohmann::json::array({1, "x", nullptr}),
                                nlohmann::json::object({{"a", 1}})};
  int rendered = 0;
  for (const auto& k : kinds) {
    const std::string xml =
        testenv::read_file(testenv::source_dir() / "examples/messages" / k.file);
    Event base = decode(kith, xml);
    base.type = k.type;
    base.body = base.full_body();  // as the route stage has it: the JSON read from Kafka
    base.body_json.clear();
    base.body_content_json.clear();
    std::vector<std::string> members = {"patient", "description", "visit", "priority"};
    for (const char* const* l = k.lists; *l; ++l) members.emplace_back(*l);
    for (const auto& member : members) {
      for (const auto& v : odd) {
        Event e = base;
        e.body[member] = v;
        if (member == "patient")
          e.body["patient"] = nlohmann::json::object({{"ids", v}, {"name", v}});
        Result<std::string> er7 = std::string();
        EXPECT_NO_THROW(er7 = hl7.render(e, xml, to_lab())) << k.file << " " << member << "=" << v;
        EXPECT_TRUE(er7.ok()) << k.file << " " << member;
        e.body[member] = v;  // the patient itself of another shape too
        EXPECT_NO_THROW(er7 = hl7.render(e, xml, to_lab())) << k.file << " " << member << "=" << v;
        // Each item of a list of another shape too.
        if (member != "patient") {
          e.body[member] = nlohmann::json::array({v});
          EXPECT_NO_THROW(er7 = hl7.render(e, xml, to_lab())) << k.file << " [" << v << "]";
        }
        rendered += er7.ok() ? 1 : 0;
      }
    }
  }
  EXPECT_GT(rendered, 50);
}
