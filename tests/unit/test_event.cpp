#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "engine/core/redact.hpp"
#include "engine/event/event.hpp"
#include "engine/event/json_read.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;

namespace {

constexpr const char* kFnr = "13116900216";  // fictional test person
constexpr const char* kSecret = "unit-test-secret-0123456789";

Event sample_event() {
  Event e;
  e.event_id = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
  e.type = EventType::kReferral;
  e.occurred_at = "2026-11-20T10:15:00Z";
  e.received_at = "2026-11-21T08:00:00.123Z";
  e.source = {"kith",       "2.0", "REFERRAL", "a5a2b9d4-0d1c-4d0c-9f8e-1c7a6c2b0e11",
              "file:inbox", true};
  e.sender.organisation = {"Legekontoret Fiktivby", "9999001", "999999001", {{"42", "local"}}};
  e.sender.person = {"Kari Lege", "9999002", "1234567", "GP"};
  e.receiver.organisation = {"Fiktiv sykehus HF", "9999100", "999999100", {}};
  e.receiver.department = {"Ortopedisk avdeling", "9999101", "", {}};
  e.receiver.system = "fiktiv-dips";
  e.conversation = {"conv-123", "parent-9", ""};
  e.body = nlohmann::json::parse(R"({
    "patient": {"ids": [{"type": "FNR", "value": "13116900216"}],
                "name": {"family": "Nordmann", "given": "Ola"}, "birth_date": "1969-11-13"},
    "reason": "Smerter i kne",
    "diagnoses": [{"system": "ICPC-2", "code": "L15", "text": "Knesymptomer"}],
    "unicode": "æøå ÆØÅ \u00e9 \u2603",
    "numbers": [1, 2.5, -3, 1e300]
  })");
  e.attachments.push_back(
      make_inline_blob(std::string("%PDF-1.4\x00\x01\xff", 11), "application/pdf"));
  e.attachments.back().id = "att-1";
  e.attachments.back().description = "Røntgenbilde";
  Blob cc;
  cc.mime = "image/jpeg";
  cc.size = 5'000'000;
  cc.sha256 = std::string(64, 'a');
  cc.claim_check = "claim-check:sha256/" + std::string(64, 'a');
  e.attachments.push_back(cc);
  e.original = make_inline_blob("<MsgHead>...</MsgHead>", "application/xml");
  assign_key(e, kSecret);
  return e;
}

}  // namespace

TEST(Event, JsonRoundTripIsLossless) {
  const Event e = sample_event();
  const std::string text = to_json_string(e);
  auto back = event_from_json_string(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
  EXPECT_EQ(to_json_string(*back), text);
}

// to_json_string splices the body into the envelope instead of copying it: it must give
// exactly the bytes of the JSON document to_json builds.
TEST(Event, SerialisedStringIsTheJsonDocument) {
  auto dump = [](const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  Event full = sample_event();
  EXPECT_EQ(to_json_string(full), dump(to_json(full)));
  full.attachments.clear();  // "body" comes first then
  EXPECT_EQ(to_json_string(full), dump(to_json(full)));
  Event minimal;
  EXPECT_EQ(to_json_string(minimal), dump(to_json(minimal)));  // null body
  minimal.body = "invalid UTF-8: \xff";
  EXPECT_EQ(to_json_string(minimal), dump(to_json(minimal)));
}

// A body whose "content" travels pre-serialised (as the e-melding decoder does it): spliced
// in at its place among the body's keys, equal to the same event with the content parsed.
TEST(Event, PreSerialisedContentIsSplicedIntoTheBody) {
  auto dump = [](const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  Event e = sample_event();
  e.body["content"] = "replaced by body_content_json";
  e.body_content_json =
      R"({"ServReq":{"#text":"a \"quoted\" line\nand more","@V":"1","Id":["7","8"]}})";
  const std::string text = to_json_string(e);
  EXPECT_EQ(text, dump(to_json(e)));
  EXPECT_EQ(e.full_body()["content"]["ServReq"]["Id"][1], "8");
  EXPECT_EQ(e.full_body()["content"]["ServReq"]["#text"], "a \"quoted\" line\nand more");
  EXPECT_EQ(e.full_body()["reason"], "Smerter i kne");  // keys before and after "content"
  EXPECT_EQ(e.full_body()["unicode"], e.body["unicode"]);
  auto back = event_from_json_string(text);
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_TRUE(back->body_content_json.empty());
  EXPECT_EQ(back->body["content"], e.full_body()["content"]);
  EXPECT_EQ(*back, e);
  EXPECT_EQ(e, *back);
  EXPECT_EQ(to_json_string(*back), text);
  // Different content, different events.
  Event other = e;
  other.body_content_json = R"({"ServReq":{"@V":"2"}})";
  EXPECT_FALSE(other == e);
  // Only keys before "content", none at all, and a null body.
  e.body = {{"a", 1}};
  EXPECT_EQ(to_json_string(e), dump(to_json(e)));
  e.body = nlohmann::json::object();
  EXPECT_EQ(to_json_string(e), dump(to_json(e)));
  e.body = nullptr;
  EXPECT_EQ(to_json_string(e), dump(to_json(e)));
}

// The envelope is written without nlohmann; every string must still come out exactly as
// nlohmann writes it, invalid UTF-8 included.
TEST(Event, JsonStringsAreWrittenAsNlohmannWritesThem) {
  auto dump = [](const nlohmann::json& j) {
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  const std::vector<std::string> samples = {
      "",
      "plain",
      "quote \" backslash \\ slash /",
      std::string("controls \b\f\n\r\t \x01 \x1f \x7f and NUL ") + std::string(1, '\0'),
      "æøå ÆØÅ € 𝄞 \xef\xbf\xbd",
      "overlong \xc0\xaf",
      "surrogate \xed\xa0\x80",
      "truncated \xe2\x82",
      "lone continuation \x80 and \xbf",
      "above U+10FFFF \xf4\x90\x80\x80 and \xf5\x80\x80\x80",
      "4-byte overlong \xf0\x80\x80\x80",
      "\xff at the start",
  };
  for (const auto& s : samples) {
    std::string out;
    append_json_string(out, s);
    EXPECT_EQ(out, dump(nlohmann::json(s))) << s;
  }
  Event e = sample_event();
  e.sender.organisation.name = samples[3];
  e.receiver.person.name = samples[5];
  e.source.channel = samples[8];
  e.attachments.front().description = samples[9];
  EXPECT_EQ(to_json_string(e), dump(to_json(e)));
}

TEST(Event, MinimalEventRoundTrips) {
  Event e;
  e.event_id = "00000000-0000-4000-8000-000000000000";
  e.received_at = "2026-01-01T00:00:00Z";
  e.source.format = "hl7v2";
  e.source.message_id = "MSG1";
  assign_key(e, kSecret);
  auto back = event_from_json_string(to_json_string(e));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, e);
}

TEST(Event, EveryTypeNameRoundTrips) {
  for (int t = 0; t <= static_cast<int>(EventType::kOther); ++t) {
    const auto type = static_cast<EventType>(t);
    EXPECT_EQ(event_type_from_string(to_string(type)), type);
    EXPECT_EQ(canonical_topic(type), "canonical." + std::string(to_string(type)));
  }
  EXPECT_FALSE(event_type_from_string("nonsense").has_value());
}

TEST(Event, ParseErrorsNameThePath) {
  auto j = to_json(sample_event());
  j["source"].erase("message_id");
  auto r = event_from_json(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/source/message_id: is required"), std::string::npos)
      << r.error().message;

  j = to_json(sample_event());
  j["attachments"][0]["data_base64"] = "!!!";
  r = event_from_json(j);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("/attachments/0/data_base64"), std::string::npos);

  j = to_json(sample_event());
  j["type"] = "telegram";
  EXPECT_FALSE(event_from_json(j).ok());
  j = to_json(sample_event());
  j["schema_version"] = 2;
  EXPECT_FALSE(event_from_json(j).ok());
  EXPECT_FALSE(event_from_json_string("{not json").ok());
}

TEST(Event, KeyIsKeyedHashOfPatient) {
  Event a = sample_event();
  Event b = sample_event();
  b.event_id = "2b4e28ba-2fa1-41d2-883f-0016d3cca427";
  b.conversation.conversation_ref = "other";
  b.body["patient"]["ids"][0]["value"] = "131169 00216";  // same person, formatted
  EXPECT_EQ(kafka_key(a, kSecret), kafka_key(b, kSecret));
  EXPECT_EQ(a.key.substr(0, 2), "p:");
  EXPECT_EQ(a.key.size(), 2u + 64u);
  // A different secret gives an unrelated key: the key cannot be recomputed without it.
  EXPECT_NE(kafka_key(a, "another-secret-abcdefgh"), kafka_key(a, kSecret));
  // A different person, a different key.
  b.body["patient"]["ids"][0]["value"] = "01010112345";
  EXPECT_NE(kafka_key(a, kSecret), kafka_key(b, kSecret));
}

TEST(Event, KeyFallsBackToConversationThenEvent) {
  Event e = sample_event();
  e.body.erase("patient");
  EXPECT_EQ(kafka_key(e, kSecret).substr(0, 2), "c:");
  e.conversation.conversation_ref.clear();
  EXPECT_EQ(kafka_key(e, kSecret).substr(0, 2), "e:");
}

TEST(Event, NoIdentityNumberInKeyOrHeaders) {
  Event e = sample_event();
  e.source.message_id = std::string("msg-") + kFnr;  // a careless sender
  assign_key(e, kSecret);
  EXPECT_EQ(e.key.find(kFnr), std::string::npos);
  EXPECT_FALSE(contains_identity_number(e.key.substr(2)) && e.key.find(kFnr) != std::string::npos);
  for (const auto& [k, v] : kafka_headers(e)) {
    EXPECT_EQ(k.find(kFnr), std::string::npos) << k;
    EXPECT_EQ(v.find(kFnr), std::string::npos) << k << "=" << v;
  }
  // The identity lives only inside the body.
  const std::string text = to_json_string(e);
  const auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["body"]["patient"]["ids"][0]["value"], kFnr);
  auto top = j;
  top.erase("body");
  top.erase("original");
  top["source"].erase("message_id");
  EXPECT_EQ(top.dump().find(kFnr), std::string::npos);
}

TEST(Event, SerializedEventsValidateAgainstTheSchema) {
  testenv::TempDir dir;
  std::vector<Event> events;
  events.push_back(sample_event());
  Event minimal;
  minimal.event_id = "00000000-0000-4000-8000-000000000000";
  minimal.received_at = "2026-01-01T00:00:00Z";
  minimal.source = {"hl7v2", "2.5", "ADT^A01", "MSG00001", "mllp:6661", std::nullopt};
  assign_key(minimal, kSecret);
  events.push_back(minimal);
  for (int t = 0; t <= static_cast<int>(EventType::kOther); ++t) {
    Event e = sample_event();
    e.type = static_cast<EventType>(t);
    events.push_back(e);
  }
  std::string args;
  for (size_t i = 0; i < events.size(); ++i) {
    const auto p = dir.path() / ("event-" + std::to_string(i) + ".json");
    std::ofstream(p) << to_json_string(events[i]);
    args += " '" + p.string() + "'";
  }
  // A broken one must be caught, or the check proves nothing.
  auto broken = to_json(sample_event());
  broken["key"] = std::string("p:") + kFnr;
  const auto bad = dir.path() / "broken.json";
  std::ofstream(bad) << broken.dump();

  const auto tool = testenv::source_dir() / "tests/tools/validate_json_schema.py";
  const auto schema = testenv::source_dir() / "schemas/canonical-event.schema.json";
  const std::string cmd = "/usr/bin/python3 '" + tool.string() + "' '" + schema.string() + "'";
  EXPECT_EQ(std::system((cmd + args).c_str()), 0);
  EXPECT_NE(std::system((cmd + " '" + bad.string() + "' >/dev/null").c_str()), 0);
}

// ---- read_json: the fast reader against nlohmann's parser --------------------------------

namespace {

using nlohmann::json;

// Equal values of equal types (json's == takes 1 and 1u, or 1 and 1.0, as equal).
bool same(const json& a, const json& b) {
  if (a.is_discarded() || b.is_discarded()) return a.is_discarded() && b.is_discarded();
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json::value_t::object: {
      if (a.size() != b.size()) return false;
      auto i = a.begin();
      auto k = b.begin();
      for (; i != a.end(); ++i, ++k)
        if (i.key() != k.key() || !same(*i, *k)) return false;
      return true;
    }
    case json::value_t::array:
      if (a.size() != b.size()) return false;
      for (size_t n = 0; n < a.size(); ++n)
        if (!same(a[n], b[n])) return false;
      return true;
    default:
      return a == b;
  }
}

json random_value(std::mt19937& rng, int depth) {
  const auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<unsigned>(n)); };
  static const std::vector<std::string> kStrings = {"",
                                                    "Fjellheim",
                                                    "\xc3\x85se \xc3\xb8st",
                                                    "tab\there",
                                                    "line\r\nbreak",
                                                    "q\"uote",
                                                    "back\\slash",
                                                    "ctl\x01\x1f",
                                                    "slash/",
                                                    "\xe2\x82\xac",
                                                    "\xf0\x9f\x98\x80",
                                                    "del\x7f"};
  switch (depth > 4 ? pick(6) : pick(8)) {
    case 0:
      return nullptr;
    case 1:
      return pick(2) == 0;
    case 2: {
      const int k = pick(6);
      if (k == 0) return static_cast<int64_t>(rng()) - static_cast<int64_t>(rng());
      if (k == 1) return static_cast<uint64_t>(rng()) << 32 | rng();  // may exceed 18 digits
      if (k == 2) return -static_cast<int64_t>(pick(1000));
      if (k == 3) return static_cast<double>(pick(100000)) / 7.0;
      if (k == 4) return 1e300 * (pick(2) == 0 ? 1 : -1);
      return pick(1000);
    }
    case 3:
    case 4:
      return kStrings[static_cast<size_t>(pick(static_cast<int>(kStrings.size())))] +
             std::to_string(pick(10));
    case 5:
      return std::string(static_cast<size_t>(pick(300)), static_cast<char>('a' + pick(26)));
    case 6: {
      json a = json::array();
      for (int n = pick(5); n > 0; --n) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      json o = json::object();
      for (int n = pick(6); n > 0; --n)
        o[kStrings[static_cast<size_t>(pick(static_cast<int>(kStrings.size())))] +
          std::to_string(pick(4))] = random_value(rng, depth + 1);
      return o;
    }
  }
}

// Whitespace between tokens, as another writer might put it.
std::string spaced(const std::string& compact, std::mt19937& rng) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[i];
    out += c;
    if (c == '"' && (i == 0 || compact[i - 1] != '\\' || (i >= 2 && compact[i - 2] == '\\')))
      in_string = !in_string;
    if (!in_string && (c == ',' || c == ':' || c == '{' || c == '[') && rng() % 3 == 0)
      out += " \n\t\r"[rng() % 4];
  }
  return out;
}

}  // namespace

TEST(ReadJson, TakesTheCommonFormsAndDeclinesTheRest) {
  EXPECT_TRUE(read_json_fast(R"({"a":[1,-2,"x",true,false,null,{}],"b":{"c":[]}})"));
  EXPECT_TRUE(read_json_fast(" {\"\xc3\xa5\":\"\xf0\x9f\x98\x80\\n\"} "));
  EXPECT_EQ(read_json_fast("18446744073")->type(), json::value_t::number_unsigned);
  EXPECT_EQ(read_json_fast("-5")->type(), json::value_t::number_integer);
  EXPECT_EQ(read_json_fast("-0")->type(), json::value_t::number_integer);
  // Repeated keys: the last value, as nlohmann's parser keeps.
  EXPECT_EQ(read_json_fast(R"({"b":1,"a":2,"b":3})")->dump(), R"({"a":2,"b":3})");
  for (const char* declined : {"1.5", "1e3", "1234567890123456789", R"("\u00e5")", "01", "", "{",
                               "[1,]", "\"\x01\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "nul", "{} x"})
    EXPECT_FALSE(read_json_fast(declined)) << declined;
  std::string deep(200, '[');
  deep += std::string(200, ']');
  EXPECT_FALSE(read_json_fast(deep));
  EXPECT_TRUE(same(read_json(deep), json::parse(deep)));  // nlohmann reads it
}

TEST(ReadJson, GivesWhatNlohmannGivesForGeneratedAndBrokenText) {
  std::mt19937 rng(36);
  int fast = 0;
  int broken_checked = 0;
  for (int i = 0; i < 3000; ++i) {
    const json v = random_value(rng, 0);
    std::string text = v.dump(-1, ' ', i % 4 == 0, json::error_handler_t::replace);
    if (i % 3 == 0) text = spaced(text, rng);
    const json expected = json::parse(text, nullptr, false);
    ASSERT_FALSE(expected.is_discarded()) << text;
    ASSERT_TRUE(same(read_json(text), expected)) << text;
    if (read_json_fast(text)) ++fast;
    // The same text broken: a byte changed, dropped or added.
    for (int m = 0; m < 4 && !text.empty(); ++m) {
      std::string bad = text;
      const size_t at = rng() % bad.size();
      const auto byte = static_cast<char>(rng() % 4 == 0 ? 0x80 + rng() % 0x80 : rng() % 0x80);
      if (m == 0)
        bad[at] = byte;
      else if (m == 1)
        bad.erase(at, 1);
      else
        bad.insert(at, 1, byte);
      const json want = json::parse(bad, nullptr, false);
      ASSERT_TRUE(same(read_json(bad), want)) << bad;
      if (const auto got = read_json_fast(bad)) {
        ASSERT_TRUE(same(*got, want)) << bad;
      }
      if (want.is_discarded()) ++broken_checked;
    }
  }
  // Both paths were taken, and many broken texts were seen.
  EXPECT_GT(fast, 1000);
  EXPECT_LT(fast, 3000);
  EXPECT_GT(broken_checked, 3000);
}
