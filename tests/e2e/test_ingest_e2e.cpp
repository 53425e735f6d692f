// End to end on the real broker: the engine binary with a folder inbox and an HTTP source.
// Files dropped and messages POSTed arrive as canonical events; rejected ones land on
// ingest.rejected with a negative AppRec; a kill -9 during ingest loses nothing and leaves
// nothing behind.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "adapters/emelding/codec.hpp"
#include "engine/bus/bus.hpp"
#include "engine/core/crypto.hpp"
#include "tests/support/engine_process.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace std::chrono_literals;

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

struct Messages {
  std::string valid = testenv::read_file(testenv::source_dir() /
                                         "examples/messages/dialog-notat-gp-to-hospital.xml");
  std::string invalid = testenv::read_file(testenv::source_dir() /
                                           "examples/messages/invalid-dialog-ident-order.xml");
  std::string make_valid(const std::string& id) const {
    return replace_all(valid, "6a0e2f43-5d0b-4a8e-9a55-0b3c2f7e1a01", id);
  }
  std::string make_invalid(const std::string& id) const {
    return replace_all(invalid, "9d1f0c22-7e3a-4b6d-8c1e-2a4b6c8d0e02", id);
  }
};

struct Record {
  std::string key;
  std::string value;
  std::map<std::string, std::string> headers;
  int32_t partition = -1;
  int64_t offset = -1;
};

// Reads a topic from the beginning until `expected` records arrived and nothing new came
// for a while, or the deadline passed.
std::vector<Record> read_topic(const std::string& topic, size_t expected,
                               std::chrono::seconds deadline = 120s, bool committed = true) {
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  std::vector<Record> out;
  bus::ConsumerOptions opts;
  opts.read_committed = committed;
  auto c = bus::Consumer::create(s, "reader-" + uuid_v4(), {topic}, opts);
  if (!c) return out;
  const auto end = std::chrono::steady_clock::now() + deadline;
  auto last = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() < end) {
    auto m = (*c)->poll(200ms);
    if (!m.ok()) break;
    if (!m->has_value()) {
      if (out.size() >= expected && std::chrono::steady_clock::now() - last > 2s) break;
      continue;
    }
    last = std::chrono::steady_clock::now();
    Record r{std::string((**m).key()),
             std::string((**m).value()),
             {},
             (**m).partition(),
             (**m).offset()};
    for (auto& h : (**m).headers()) r.headers[h.key] = h.value;
    out.push_back(std::move(r));
  }
  return out;
}

// For a read that came up short: which partition/offsets the reader saw, what a
// read_uncommitted reader sees of the same topic, and the engine's warnings and errors.
std::string explain_shortfall(const std::string& topic, const std::vector<Record>& seen,
                              size_t expected, const testenv::EngineProcess& engine) {
  std::ostringstream o;
  auto offsets = [](const std::vector<Record>& rs) {
    std::map<int32_t, std::vector<int64_t>> by_partition;
    for (const auto& r : rs) by_partition[r.partition].push_back(r.offset);
    std::ostringstream out;
    for (const auto& [p, offs] : by_partition) {
      out << "  partition " << p << ":";
      for (const auto off : offs) out << ' ' << off;
      out << '\n';
    }
    return out.str();
  };
  o << topic << ": read " << seen.size() << " of " << expected << " (read_committed)\n"
    << offsets(seen);
  const auto all = read_topic(topic, expected, 20s, false);
  o << "read_uncommitted: " << all.size() << "\n"
    << offsets(all) << "engine rejections, warnings and errors:\n";
  std::istringstream log(engine.log_text());
  for (std::string line; std::getline(log, line);)
    if (line.find("\"message rejected\"") != std::string::npos ||
        line.find("\"level\":\"warn") != std::string::npos ||
        line.find("\"level\":\"error") != std::string::npos)
      o << "  " << line << '\n';
  return o.str();
}

bool wait_for(const std::function<bool()>& cond, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (cond()) return true;
    std::this_thread::sleep_for(50ms);
  }
  return cond();
}

}  // namespace

TEST(IngestE2E, FilesAndPostsArriveRejectionsGetReasonsAndAppRecs) {
  testenv::TempDir dir;
  testenv::EngineProcess engine(dir.path());
  ASSERT_TRUE(engine.start());
  const Messages msgs;
  std::set<std::string> valid_ids;
  std::set<std::string> invalid_ids;
  for (int i = 0; i < 50; ++i) {
    const std::string id = uuid_v4();
    valid_ids.insert(id);
    engine.drop("valid-" + std::to_string(i) + ".xml", msgs.make_valid(id));
  }
  for (int i = 0; i < 10; ++i) {
    const std::string id = uuid_v4();
    invalid_ids.insert(id);
    engine.drop("invalid-" + std::to_string(i) + ".xml", msgs.make_invalid(id));
  }
  for (int i = 0; i < 5; ++i)
    engine.drop("garbage-" + std::to_string(i) + ".txt", "no message " + std::to_string(i));

  int accepted = 0;
  int rejected = 0;
  for (int i = 0; i < 20; ++i) {
    const std::string id = uuid_v4();
    valid_ids.insert(id);
    auto r = testenv::http_post("127.0.0.1", engine.port(), "/ingest", msgs.make_valid(id));
    ASSERT_EQ(r.status, 202) << r.body << r.error;
    EXPECT_NE(r.body.find(id), std::string::npos);
    ++accepted;
  }
  for (int i = 0; i < 5; ++i) {
    const std::string id = uuid_v4();
    invalid_ids.insert(id);
    auto r = testenv::http_post("127.0.0.1", engine.port(), "/ingest", msgs.make_invalid(id));
    ASSERT_EQ(r.status, 422) << r.body;
    EXPECT_NE(r.body.find("T02"), std::string::npos);
    EXPECT_NE(r.body.find("\"apprec_queued\":true"), std::string::npos);
    ++rejected;
  }
  auto bad = testenv::http_post("127.0.0.1", engine.port(), "/ingest", "<unclosed>");
  EXPECT_EQ(bad.status, 400) << bad.body;
  auto wrong = testenv::http_post("127.0.0.1", engine.port(), "/other", "x");
  EXPECT_EQ(wrong.status, 404);

  ASSERT_TRUE(wait_for([&] { return engine.files_in("") == 0; }, 60s)) << "files left in the inbox";
  EXPECT_EQ(engine.files_in("done"), 50u);
  EXPECT_EQ(engine.files_in("failed"), 15u);
  EXPECT_EQ(accepted, 20);
  EXPECT_EQ(rejected, 5);

  // Canonical events: each valid message exactly once (no crash here).
  const auto events = read_topic(engine.prefix() + "canonical.dialog", valid_ids.size());
  std::map<std::string, int> seen;
  for (const auto& r : events) {
    auto e = event_from_json_string(r.value);
    ASSERT_TRUE(e.ok());
    ++seen[e->source.message_id];
    EXPECT_EQ(r.key.find("12837512393"), std::string::npos);
    for (const auto& [k, v] : r.headers) EXPECT_EQ(v.find("12837512393"), std::string::npos) << k;
  }
  EXPECT_EQ(seen.size(), valid_ids.size())
      << explain_shortfall(engine.prefix() + "canonical.dialog", events, valid_ids.size(), engine);
  for (const auto& id : valid_ids) EXPECT_EQ(seen[id], 1) << id;

  // Rejections: 10 + 5 invalid, 5 garbage files, 1 unclosed POST.
  const auto rej = read_topic(engine.prefix() + "ingest.rejected", 21);
  EXPECT_EQ(rej.size(), 21u) << explain_shortfall(engine.prefix() + "ingest.rejected", rej, 21,
                                                  engine);
  std::set<std::string> rejected_ids;
  for (const auto& r : rej) {
    const auto j = nlohmann::json::parse(r.value);
    EXPECT_FALSE(j["reason"].get<std::string>().empty());
    EXPECT_TRUE(j.contains("raw_base64"));
    if (j["code"] == "T02") rejected_ids.insert(j["message_id"].get<std::string>());
  }
  EXPECT_EQ(rejected_ids, invalid_ids);

  // A negative AppRec for each identified sender; each validates and points back.
  const auto apprecs = read_topic(engine.prefix() + "apprec.outbound", invalid_ids.size());
  EXPECT_EQ(apprecs.size(), invalid_ids.size()) << explain_shortfall(
      engine.prefix() + "apprec.outbound", apprecs, invalid_ids.size(), engine);
  auto schemas = emelding::SchemaSet::load((testenv::standards_dir() / "xsd").string());
  ASSERT_TRUE(schemas.ok());
  emelding::Decoder decoder(*schemas);
  std::set<std::string> answered;
  for (const auto& r : apprecs) {
    EXPECT_TRUE(decoder.validate(r.value).empty());
    auto d = decoder.decode(r.value, {}, "apprec");
    ASSERT_TRUE(std::holds_alternative<emelding::Decoded>(d));
    const auto& e = std::get<emelding::Decoded>(d).events[0];
    EXPECT_EQ(e.type, EventType::kAppRec);
    EXPECT_EQ(e.body["status"]["code"], "2");
    EXPECT_EQ(e.receiver.organisation.her_id, "8100001");  // back to the GP office
    answered.insert(e.conversation.in_reply_to);
  }
  EXPECT_EQ(answered, invalid_ids);

  // The operator's view of the same run: `budstikke consume` prints every record of every
  // shape (canonical events, rejections, tracking states) and exits 0.
  const std::string cmd = (testenv::binary_dir() / "bin/budstikke").string() + " consume -c " +
                          engine.config().string() +
                          " --idle-ms 3000 tracking ingest.rejected canonical.dialog 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  EXPECT_EQ(pclose(p), 0);
  size_t received = 0;
  size_t lines = 0;
  for (size_t pos = 0; (pos = out.find('\n', pos)) != std::string::npos; ++pos) ++lines;
  for (size_t pos = 0; (pos = out.find("] received msg", pos)) != std::string::npos; ++pos)
    ++received;
  EXPECT_EQ(received, valid_ids.size());
  EXPECT_EQ(lines,
            valid_ids.size() * 2 + size_t{21} * 2);  // tracking + events; tracking + rejections
  EXPECT_EQ(out.find("12837512393"), std::string::npos);  // no identity number on screen
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

TEST(IngestE2E, KillDashNineDuringIngestLosesNothingLeavesNothing) {
  testenv::TempDir dir;
  testenv::EngineProcess engine(dir.path());
  const Messages msgs;
  constexpr int kValid = 1500;
  constexpr int kInvalid = 60;
  std::set<std::string> valid_ids;
  std::set<std::string> invalid_ids;
  // Fill the inbox first, then start: the engine is busy when it is killed.
  for (int i = 0; i < kValid; ++i) {
    const std::string id = uuid_v4();
    valid_ids.insert(id);
    engine.drop("v" + std::to_string(i) + ".xml", msgs.make_valid(id));
    if (i % 25 == 0 && invalid_ids.size() < static_cast<size_t>(kInvalid)) {
      for (int k = 0; k < 1; ++k) {
        const std::string bad = uuid_v4();
        invalid_ids.insert(bad);
        engine.drop("x" + std::to_string(i) + ".xml", msgs.make_invalid(bad));
      }
    }
  }
  const size_t total_files = valid_ids.size() + invalid_ids.size();
  ASSERT_TRUE(engine.start());
  ASSERT_TRUE(
      wait_for([&] { return engine.files_in("done") + engine.files_in("failed") >= 200; }, 60s));
  EXPECT_EQ(engine.stop(SIGKILL), -SIGKILL);
  const size_t moved_before = engine.files_in("done") + engine.files_in("failed");
  std::printf("kill -9 after %zu of %zu files were moved\n", moved_before, total_files);
  EXPECT_LT(moved_before, total_files) << "the engine finished before it was killed";

  ASSERT_TRUE(engine.start());
  ASSERT_TRUE(wait_for([&] { return engine.files_in("") == 0; }, 180s))
      << "files left in the inbox";
  EXPECT_EQ(engine.files_in("done"), valid_ids.size());
  EXPECT_EQ(engine.files_in("failed"), invalid_ids.size());

  const auto events = read_topic(engine.prefix() + "canonical.dialog", valid_ids.size(), 180s);
  std::map<std::string, int> seen;
  std::map<std::string, std::set<std::string>> event_ids;
  for (const auto& r : events) {
    auto e = event_from_json_string(r.value);
    ASSERT_TRUE(e.ok());
    ++seen[e->source.message_id];
    event_ids[e->source.message_id].insert(e->event_id);
  }
  size_t lost = 0;
  size_t duplicated = 0;
  for (const auto& id : valid_ids) {
    if (!seen.count(id)) ++lost;
    if (seen[id] > 1) duplicated += static_cast<size_t>(seen[id] - 1);
    // A file offered twice carries the same event id: receivers can drop the copy.
    EXPECT_LE(event_ids[id].size(), 1u) << id;
  }
  const auto rej = read_topic(engine.prefix() + "ingest.rejected", invalid_ids.size(), 60s);
  std::set<std::string> rejected;
  for (const auto& r : rej)
    rejected.insert(nlohmann::json::parse(r.value)["message_id"].get<std::string>());
  size_t rejected_lost = 0;
  for (const auto& id : invalid_ids)
    if (!rejected.count(id)) ++rejected_lost;
  std::printf(
      "after restart: %zu valid messages, %zu on Kafka, lost %zu, duplicated %zu; "
      "%zu rejected, lost %zu; inbox empty\n",
      valid_ids.size(), seen.size(), lost, duplicated, invalid_ids.size(), rejected_lost);
  EXPECT_EQ(lost, 0u);
  EXPECT_EQ(rejected_lost, 0u);
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}
