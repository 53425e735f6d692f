// The pieces of `budstikke test` and the operators' tools that need no broker: the XPath
// subset, JSON pointers and terser paths on rendered outputs, the line diff, volatile-field
// masking, time parsing for replay windows, and the Prometheus rendering of metrics.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "adapters/emelding/xpath.hpp"
#include "engine/core/metrics.hpp"
#include "engine/core/time.hpp"
#include "engine/ops/replay.hpp"
#include "engine/routetest/route_test.hpp"

namespace budstikke {
namespace {

constexpr const char* kXml = R"(<?xml version="1.0"?>
<mh:MsgHead xmlns:mh="urn:x" xmlns="urn:x">
  <MsgInfo><Type V="DIALOG_NOTAT" DN="Notat"/><MsgId>abc</MsgId>
    <Receiver><Organisation><Ident><Id>8200001</Id><TypeId V="HER"/></Ident>
      <Ident><Id>974</Id><TypeId V="ENH"/></Ident></Organisation></Receiver>
  </MsgInfo>
  <Document><Item>one</Item><Item> two </Item></Document>
</mh:MsgHead>)";

std::vector<std::string> xp(const std::string& expr) {
  auto r = emelding::xpath_values(kXml, expr);
  EXPECT_TRUE(r) << expr << ": " << (r ? "" : r.error().message);
  return r ? *r : std::vector<std::string>{};
}

TEST(XPath, PathsPredicatesAttributesAndText) {
  using V = std::vector<std::string>;
  EXPECT_EQ(xp("/MsgHead/MsgInfo/Type/@V"), V{"DIALOG_NOTAT"});
  EXPECT_EQ(xp("/mh:MsgHead/MsgInfo/MsgId"), V{"abc"});  // prefixes match by local name
  EXPECT_EQ(xp("MsgHead/MsgInfo/MsgId"), V{"abc"});      // relative = from the document
  EXPECT_EQ(xp("//Ident/Id"), (V{"8200001", "974"}));
  EXPECT_EQ(xp("//Ident[TypeId/@V='ENH']/Id"), V{"974"});
  EXPECT_EQ(xp("//Ident[2]/Id"), V{"974"});
  EXPECT_EQ(xp("//Item[text()='two']"), V{"two"});
  EXPECT_EQ(xp("//Document/*"), (V{"one", "two"}));
  EXPECT_EQ(xp("//Type/@DN"), V{"Notat"});
  EXPECT_TRUE(xp("//Nothing").empty());
  EXPECT_TRUE(xp("//Type/@Missing").empty());
}

TEST(XPath, ErrorsSayWhere) {
  auto bad = emelding::xpath_values(kXml, "//Ident[TypeId/@V=ENH]/Id");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("expected a quoted value"), std::string::npos);
  EXPECT_NE(bad.error().message.find("offset"), std::string::npos);
  EXPECT_FALSE(emelding::xpath_values(kXml, "//Type/@V/x"));
  EXPECT_FALSE(emelding::xpath_values("<a><b></a>", "/a"));  // not well-formed
}

TEST(RouteTest, LookupsOnJsonAndHl7) {
  using routetest::Lookup;
  auto j = routetest::lookup(Lookup::kJson, R"({"type":"dialog","n":[1,{"x":2}]})", "/n/1/x");
  ASSERT_TRUE(j);
  EXPECT_EQ(*j, std::vector<std::string>{"2"});
  EXPECT_TRUE(routetest::lookup(Lookup::kJson, R"({"a":1})", "/b")->empty());
  EXPECT_FALSE(routetest::lookup(Lookup::kJson, R"({"a":1})", "no-slash"));
  auto h = routetest::lookup(
      Lookup::kHl7, "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|X1|P|2.5\rPID|1||123^^^NOR\r", "MSH-9-2");
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, std::vector<std::string>{"A01"});
  EXPECT_FALSE(routetest::lookup(Lookup::kHl7, "not hl7", "MSH-9"));
}

TEST(RouteTest, LineDiffShowsChangedLinesWithContext) {
  const auto d = routetest::line_diff("a\nb\nc\nd\ne\nf\ng\n", "a\nb\nc\nD\ne\nf\ng\n");
  const std::vector<std::string> want = {"--- expected", "+++ actual", "  b", "  c",
                                         "- d",          "+ D",        "  e", "  f"};
  EXPECT_EQ(d, want);
  EXPECT_EQ(routetest::line_diff("same\n", "same\n").size(), 2u);  // headers only
}

TEST(RouteTest, VolatileFieldsAreMasked) {
  EXPECT_EQ(routetest::mask_volatile("<MsgId>1</MsgId><mh:GenDate>2026</mh:GenDate>"
                                     "<GenDate V=\"2026-11-22T10:00:00\"/>"),
            "<MsgId>*</MsgId><mh:GenDate>*</mh:GenDate><GenDate V=\"*\"/>");
  EXPECT_EQ(routetest::mask_volatile("MSH|^~\\&|A|B|C|D|20261122100000||ORU^R01|X|P|2.5\rPID|1\r"),
            "MSH|^~\\&|A|B|C|D|*||ORU^R01|X|P|2.5\rPID|1\r");
  EXPECT_EQ(routetest::mask_volatile(R"({"received_at": "2026-11-22T10:00:00Z", "x": 1})"),
            R"({"received_at": "*", "x": 1})");
}

TEST(Replay, TimesForWindows) {
  EXPECT_EQ(ops::parse_time_ms("2026-11-22T10:00:00Z"), 1795341600000);
  EXPECT_EQ(ops::parse_time_ms("2026-11-22T11:00:00+01:00"), 1795341600000);
  EXPECT_EQ(ops::parse_time_ms("2026-11-22T10:00:00.250Z"), 1795341600000);
  EXPECT_EQ(ops::parse_time_ms("2026-11-22"), 1795305600000);
  const int64_t now = now_epoch_ms();
  const auto two_h = ops::parse_time_ms("2h");
  ASSERT_TRUE(two_h);
  EXPECT_NEAR(static_cast<double>(now - *two_h), 7200000.0, 5000.0);
  for (const char* bad :
       {"", "yesterday", "2026-13-01", "2026-11-22T25:00:00Z", "5x", "2026-11-22T10:00:00+0100"})
    EXPECT_FALSE(ops::parse_time_ms(bad)) << bad;
}

TEST(Metrics, PrometheusTextWithRedactedLabels) {
  metrics::Registry r;
  r.counter("t_total", "Things.", {{"system", "a"}}).inc(3);
  r.counter("t_total", "Things.", {{"system", "b\"x"}}).inc();
  r.counter("t_total", "Things.", {{"system", "12837512393"}}).inc();
  auto& h = r.histogram("lat_seconds", "Latency.", {{"system", "a"}});
  h.observe_ms(3);
  h.observe_ms(40);
  h.observe_ms(120000);
  r.gauge("depth", "Depth.", [] {
    return std::vector<metrics::GaugeSample>{{{{"system", "a"}}, 7}};
  });
  const std::string text = r.render();
  EXPECT_NE(text.find("# TYPE t_total counter\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_total{system=\"a\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_total{system=\"b\\\"x\"} 1\n"), std::string::npos) << text;
  EXPECT_NE(text.find("t_total{system=\"***********\"} 1\n"), std::string::npos) << text;
  EXPECT_EQ(text.find("12837512393"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{system=\"a\",le=\"0.005\"} 1\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("lat_seconds_bucket{system=\"a\",le=\"0.05\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{system=\"a\",le=\"60\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_bucket{system=\"a\",le=\"+Inf\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_count{system=\"a\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("lat_seconds_sum{system=\"a\"} 120.043\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE depth gauge\ndepth{system=\"a\"} 7\n"), std::string::npos) << text;
}

}  // namespace
}  // namespace budstikke
