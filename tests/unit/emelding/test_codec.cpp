// Round trips, readdressing and AppRecs, checked against the official XSDs.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "adapters/emelding/apprec.hpp"
#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/emelding_codec.hpp"
#include "tests/support/test_env.hpp"
#include "tests/unit/emelding/manifest.hpp"

using namespace budstikke;
using namespace budstikke::emelding;
namespace fs = std::filesystem;

namespace {

std::shared_ptr<const SchemaSet> schemas() {
  static auto set = [] {
    auto s = SchemaSet::load((testenv::standards_dir() / "xsd").string());
    return s.ok() ? *s : nullptr;
  }();
  return set;
}

DecodeOptions opts() {
  DecodeOptions o;
  o.key_secret = "codec-test-secret-0123";
  return o;
}

fs::path example(const std::string& rel) {
  return testenv::standards_dir() / "examples" / rel;
}

Decoded must_decode(Decoder& d, const std::string& bytes) {
  auto r = d.decode(bytes, opts(), "test");
  if (auto* rej = std::get_if<Rejection>(&r)) {
    ADD_FAILURE() << rej->reason;
    return {};
  }
  return std::get<Decoded>(std::move(r));
}

Party new_receiver() {
  Party p;
  p.organisation.name = "Fiktiv kommune helse og omsorg";
  p.organisation.her_id = "8765432";
  p.department.name = "Hjemmetjenesten sone 3";
  p.department.her_id = "8765433";
  return p;
}

}  // namespace

TEST(EmeldingCodec, EveryValidExampleRoundTripsAndReaddresses) {
  ASSERT_NE(schemas(), nullptr);
  Decoder d(schemas());
  const auto rows = testenv::read_manifest((testenv::standards_dir() / "MANIFEST.md").string());
  int round_trips = 0;
  int readdressed = 0;
  for (const auto& r : rows) {
    if (r.verdict != "valid" || r.folder == "cpp-cpa") continue;
    const std::string bytes = testenv::read_file(testenv::standards_dir() / r.file);
    auto res = d.decode(bytes, opts(), r.file);
    auto* ok = std::get_if<Decoded>(&res);
    ASSERT_NE(ok, nullptr) << r.file;
    const Event& e = ok->events.at(0);
    // 0. The payload tree travels pre-serialised (Event::body_content_json): spliced into the
    //    event's JSON it gives exactly the bytes nlohmann writes for the parsed tree (key
    //    order, escapes), and the event reads back equal.
    if (e.type != EventType::kAppRec) {
      EXPECT_FALSE(e.body_content_json.empty()) << r.file;
    }
    const std::string text = to_json_string(e);
    EXPECT_EQ(text, to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        << r.file;
    auto back = event_from_json_string(text);
    ASSERT_TRUE(back.ok()) << r.file;
    EXPECT_TRUE(back->body_content_json.empty());
    EXPECT_EQ(*back, e) << r.file;
    // 1. The original bytes come back exactly.
    auto orig = encode_original(e);
    ASSERT_TRUE(orig.ok()) << r.file;
    EXPECT_EQ(*orig, bytes) << r.file;
    ++round_trips;
    // 2. Readdressed to another receiver: schema-valid, new id, new receiver, same content.
    if (e.type == EventType::kAppRec) continue;
    Readdress ra;
    ra.receiver = new_receiver();
    ra.new_msg_id = "11111111-2222-4333-8444-555555555555";
    auto out = encode_readdressed(e, ra);
    ASSERT_TRUE(out.ok()) << r.file << ": " << out.error().message;
    const auto errors = d.validate(*out);
    EXPECT_TRUE(errors.empty()) << r.file << ": " << (errors.empty() ? "" : errors.front());
    auto again = d.decode(*out, opts(), "readdressed");
    auto* ok2 = std::get_if<Decoded>(&again);
    ASSERT_NE(ok2, nullptr) << r.file << ": " << std::get<Rejection>(again).reason;
    const Event& e2 = ok2->events.at(0);
    EXPECT_EQ(e2.source.message_id, ra.new_msg_id) << r.file;
    EXPECT_EQ(e2.receiver.organisation.her_id, "8765432") << r.file;
    EXPECT_EQ(e2.receiver.organisation.name, "Fiktiv kommune helse og omsorg") << r.file;
    EXPECT_EQ(e2.sender, e.sender) << r.file;
    EXPECT_EQ(e2.type, e.type) << r.file;
    EXPECT_EQ(e2.body["patient"], e.body["patient"]) << r.file;
    if (e.key[0] != 'e') {  // e: keys hash the event id, which is new
      EXPECT_EQ(e2.key, e.key) << r.file;
    }
    ++readdressed;
  }
  std::printf("round trips: %d, readdressed and re-validated: %d\n", round_trips, readdressed);
  EXPECT_GT(round_trips, 300);
  EXPECT_GT(readdressed, 290);
}

TEST(EmeldingCodec, CanonicalContentOfALabResult) {
  Decoder d(schemas());
  const auto dec = must_decode(
      d, testenv::read_file(
             example("svarrapport/sarepta/Svarrapport-v-1-3/Svar_biokjemi_v1-3_Endring.xml")));
  ASSERT_EQ(dec.events.size(), 1u);
  const Event& e = dec.events[0];
  EXPECT_EQ(e.type, EventType::kLabResult);
  EXPECT_EQ(e.source.version, "svarrapport/1.3");
  EXPECT_EQ(e.source.message_id, "e630b55b-d063-4bfa-8db4-e4b0a22d2451");
  EXPECT_EQ(e.body["patient"]["ids"][0]["value"], "13116900216");
  EXPECT_EQ(e.body["patient"]["ids"][0]["type"], "FNR");
  EXPECT_EQ(e.body["patient"]["name"]["family"], "Danser");
  const auto& results = e.body["results"];
  ASSERT_GE(results.size(), 5u);
  // P-D-dimer 0.4 mg/L, reference "< 0,5"
  bool found = false;
  for (const auto& r : results) {
    if (r["analysis"]["code"] == "NPU19767") {
      found = true;
      EXPECT_EQ(r["value"], "0.4");
      EXPECT_EQ(r["unit"], "mg/L");
      EXPECT_EQ(r["reference_range"], "< 0,5");
      EXPECT_EQ(r["analysis"]["text"], "P-D-dimer");
      EXPECT_EQ(r["status"]["code"], "3");
    }
    if (r["analysis"]["code"] == "NOR05857") {
      EXPECT_EQ(r["flag"]["code"], "1");
    }
  }
  EXPECT_TRUE(found);
  EXPECT_EQ(e.key.substr(0, 2), "p:");
  // The whole payload as generic JSON: attributes as "@name", repeated elements as arrays,
  // text-only elements as their trimmed text.
  const auto content = e.full_body()["content"];
  ASSERT_TRUE(content.contains("ServReport"));
  const auto& sr = content["ServReport"];
  EXPECT_EQ(sr["ServType"], (nlohmann::json{{"@DN", "Endring"}, {"@V", "M"}}));
  ASSERT_TRUE(sr["Patient"]["AnalysedSubject"].is_array());
  EXPECT_EQ(sr["Patient"]["AnalysedSubject"].size(), 3u);
  EXPECT_EQ(sr["Patient"]["AnalysedSubject"][1]["TypeCoded"]["@DN"], "Plasma");
  EXPECT_EQ(sr["Patient"]["AnalysedSubject"][1]["IdByServProvider"], "2");
}

TEST(EmeldingCodec, CanonicalContentOfAReferralAndADialog) {
  Decoder d(schemas());
  auto ref = must_decode(
      d, testenv::read_file(
             example("henvisning/sarepta/Henvisning_v1-0/henvisning_strukturert_v1.0_n.xml")));
  const Event& r = ref.events.at(0);
  EXPECT_EQ(r.type, EventType::kReferral);
  ASSERT_FALSE(r.body["diagnoses"].empty());
  EXPECT_EQ(r.body["diagnoses"][0]["code"], "A79");
  EXPECT_EQ(r.body["diagnoses"][0]["system"], "ICPC-2");
  EXPECT_FALSE(r.body["reasons"].empty());

  auto dia = must_decode(
      d, testenv::read_file(
             example("dialogmelding/sarepta/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml")));
  const Event& m = dia.events.at(0);
  EXPECT_EQ(m.type, EventType::kDialog);
  EXPECT_EQ(m.sender.organisation.her_id, "91096");
  EXPECT_EQ(m.receiver.organisation.her_id, "59");
  EXPECT_EQ(m.receiver.department.her_id, "90998");
  EXPECT_EQ(m.conversation.conversation_ref, "96cadc00-0118-11e8-8f1a-0800200c9a66");
  EXPECT_EQ(m.body["notes"][0]["text"], "Pasienten er ukjent for oss");
}

TEST(EmeldingCodec, ValidationCanBeTurnedOffPerSource) {
  Decoder d(schemas());
  // Sender's organisation removed: invalid against the XSD, but well-formed.
  const std::string bytes =
      testenv::read_file(example("dialogmelding/testcases/Testcase-Dialogmeldingen/Case1-16b.xml"));
  auto strict = d.decode(bytes, opts(), "x");
  ASSERT_TRUE(std::holds_alternative<Rejection>(strict));
  EXPECT_STREQ(std::get<Rejection>(strict).code.code, "T02");
  DecodeOptions lax = opts();
  lax.validate = false;
  auto loose = d.decode(bytes, lax, "x");
  ASSERT_TRUE(std::holds_alternative<Decoded>(loose));
  EXPECT_EQ(std::get<Decoded>(loose).events[0].source.validated, false);
  // Without schemas at all, nothing is validated.
  Decoder none(nullptr);
  auto r = none.decode(bytes, opts(), "x");
  ASSERT_TRUE(std::holds_alternative<Decoded>(r));
  EXPECT_EQ(std::get<Decoded>(r).events[0].source.validated, false);
}

TEST(EmeldingCodec, HostileInputIsRejectedNotFatal) {
  Decoder d(schemas());
  const std::vector<std::string> inputs = {
      "",
      "not xml at all",
      "<?xml version='1.0'?><MsgHead xmlns='http://www.kith.no/xmlstds/msghead/2006-05-24'>",
      // NOLINTNEXTLINE(bugprone-suspicious-missing-comma): one input over three lines
      "<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;'>"
      "<!ENTITY c '&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;'><!ENTITY d '&c;&c;&c;&c;&c;&c;&c;&c;&c;'>]>"
      "<x>&d;&d;&d;&d;&d;&d;</x>",
      "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
      "<Message xmlns='urn:nobody'/>",
      std::string("<x>\0\0</x>", 9),
  };
  for (const auto& in : inputs) {
    auto r = d.decode(in, opts(), "hostile");
    ASSERT_TRUE(std::holds_alternative<Rejection>(r)) << in;
    EXPECT_FALSE(std::get<Rejection>(r).reason.empty());
    EXPECT_EQ(std::get<Rejection>(r).reason.find("root:"), std::string::npos);
  }
}

namespace {

void expect_valid_apprec(Decoder& d, const std::string& xml, const std::string& version, int status,
                         const std::string& original_id) {
  const auto errors = d.validate(xml);
  EXPECT_TRUE(errors.empty()) << (errors.empty() ? "" : errors.front()) << "\n" << xml;
  auto dec = d.decode(xml, opts(), "apprec");
  auto* ok = std::get_if<Decoded>(&dec);
  ASSERT_NE(ok, nullptr) << std::get<Rejection>(dec).reason;
  const Event& e = ok->events.at(0);
  EXPECT_EQ(e.type, EventType::kAppRec);
  EXPECT_EQ(e.source.version, "apprec/" + version);
  EXPECT_EQ(e.conversation.in_reply_to, original_id);
  EXPECT_EQ(e.body["status"]["code"], std::to_string(status));
}

}  // namespace

TEST(EmeldingAppRec, OkForEachVersionValidatesAndMirrorsParties) {
  Decoder d(schemas());
  struct Case {
    const char* file;
    const char* version;
  };
  for (const Case c :
       {Case{"dialogmelding/sarepta/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml", "1.0"},
        Case{"svarrapport/sarepta/Svarrapport-v-1-4/Svar_biokjemi_v1-4_Ny.xml", "1.1"}}) {
    const auto path = example(c.file);
    if (!fs::exists(path)) {
      ADD_FAILURE() << "missing " << path;
      continue;
    }
    const auto dec = must_decode(d, testenv::read_file(path));
    const auto req = apprec_ok(dec.info);
    EXPECT_EQ(req.version, c.version) << c.file;
    EXPECT_EQ(req.sender, dec.info.receiver);
    EXPECT_EQ(req.receiver, dec.info.sender);
    auto xml = build_apprec(req);
    ASSERT_TRUE(xml.ok()) << xml.error().message;
    expect_valid_apprec(d, *xml, c.version, 1, dec.info.msg_id);
  }
}

TEST(EmeldingAppRec, RejectedAsInvalidCarriesT02AndTheReason) {
  Decoder d(schemas());
  // IssueDate removed from a lab result: invalid, but sender and id are readable.
  const std::string bytes = testenv::read_file(
      example("svarrapport/testcases/Testcase-mikrobiologisvar-20120203/case6-26b.xml"));
  auto res = d.decode(bytes, opts(), "case6-26b.xml");
  auto* rej = std::get_if<Rejection>(&res);
  ASSERT_NE(rej, nullptr);
  EXPECT_STREQ(rej->code.code, "T02");
  ASSERT_TRUE(rej->sender_known()) << rej->reason;
  for (const char* version : {"1.0", "1.1"}) {
    auto req = apprec_rejected(*rej);
    req.version = version;
    EXPECT_EQ(req.status, 2);
    auto xml = build_apprec(req);
    ASSERT_TRUE(xml.ok()) << xml.error().message;
    EXPECT_NE(xml->find("V=\"T02\""), std::string::npos);
    EXPECT_NE(xml->find("case6-26b.xml:"), std::string::npos);  // the reason travels along
    expect_valid_apprec(d, *xml, version, 2, rej->info.msg_id);
  }
}

TEST(EmeldingAppRec, UnknownReceiverE21) {
  Decoder d(schemas());
  const auto dec = must_decode(
      d, testenv::read_file(
             example("dialogmelding/sarepta/Dialogmelding-v1-0/Dialogmelding_avvik_v1-0.xml")));
  for (const char* version : {"1.0", "1.1"}) {
    AppRecRequest req = apprec_ok(dec.info);
    req.version = version;
    req.status = 2;
    req.errors.push_back({kReceiverUnknown.code, kReceiverUnknown.text,
                          "no connected system answers for HER-id 90998"});
    auto xml = build_apprec(req);
    ASSERT_TRUE(xml.ok());
    EXPECT_NE(xml->find("V=\"E21\""), std::string::npos);
    expect_valid_apprec(d, *xml, version, 2, dec.info.msg_id);
  }
}

// The receipt context travels in a delivery job's bs-receipt header; a record that carries
// one of another shape gets a refusal naming the member, never an exception.
TEST(EmeldingAppRec, ReceiptContextOfTheWrongShapeIsRefusedNotThrown) {
  const EmeldingCodec codec(nullptr);
  Party sender;
  sender.organisation.name = "Fjordbyen legesenter";
  sender.organisation.her_id = "8100001";
  const nlohmann::json good = {{"apprec_version", "1.1"},
                               {"msg_type", "DIALOG_NOTAT"},
                               {"msg_id", "6a0e2f43-5d0b-4a8e-9a55-0b3c2f7e1a01"},
                               {"issue_date", "2026-11-20T09:12:00"},
                               {"sender", party_to_json(sender)},
                               {"receiver", party_to_json(new_receiver())}};
  runtime::ReceiptOutcome ok;
  ok.ok = true;
  std::string format;
  auto built = codec.build_receipt(good, ok, format);
  ASSERT_TRUE(built.ok()) << built.error().message;
  EXPECT_EQ(format, "kith/apprec/1.1");
  EXPECT_NE(built->find("6a0e2f43-5d0b-4a8e-9a55-0b3c2f7e1a01"), std::string::npos);

  struct Case {
    const char* member;
    nlohmann::json value;
    const char* says;
  } cases[] = {
      {"apprec_version", 11, "/apprec_version must be a string"},
      {"msg_type", nlohmann::json::array(), "/msg_type must be a string"},
      {"issue_date", nullptr, "/issue_date must be a string"},
      {"msg_id", {{"id", "x"}}, "/msg_id must be a string"},
      {"sender", "Fjordbyen", "unreadable parties"},
      {"receiver", 7, "unreadable parties"},
  };
  for (const auto& c : cases) {
    nlohmann::json ctx = good;
    ctx[c.member] = c.value;
    Result<std::string> r = std::string();
    EXPECT_NO_THROW(r = codec.build_receipt(ctx, ok, format)) << c.member;
    ASSERT_FALSE(r.ok()) << c.member;
    EXPECT_NE(r.error().message.find(c.says), std::string::npos)
        << c.member << ": " << r.error().message;
  }
  for (const nlohmann::json& ctx :
       {nlohmann::json::array(), nlohmann::json("x"), nlohmann::json(1)})
    EXPECT_FALSE(codec.build_receipt(ctx, ok, format).ok()) << ctx.dump();
}

TEST(EmeldingAppRec, RefusesIncompleteRequests) {
  AppRecRequest r;
  EXPECT_FALSE(build_apprec(r).ok());  // no parties, no id
  r.sender.organisation.name = "A";
  r.receiver.organisation.name = "B";
  r.original_msg_id = "x";
  r.status = 2;  // negative without an error code
  EXPECT_FALSE(build_apprec(r).ok());
  r.status = 1;
  r.version = "2.0";
  EXPECT_FALSE(build_apprec(r).ok());
  r.version = "1.0";
  EXPECT_TRUE(build_apprec(r).ok());
}
