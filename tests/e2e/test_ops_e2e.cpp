// The operators' tools end to end on the real broker: a dialogmelding to a system that is
// down fails twice and lands in its DLQ; the sender gets one negative AppRec; the system
// comes back; `budstikke replay` sends it again and it is delivered, with no second AppRec.
// `budstikke track` shows every step. The admin API is exercised over real HTTP (401 without
// the token), and no response, log line or metric carries the patient's identity number.
// `budstikke audit --patient` finds who read and re-sent the message.

#include <sys/wait.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/core/redact.hpp"
#include "engine/event/event.hpp"
#include "tests/support/engine_process.hpp"
#include "tests/support/fake_receivers.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_env.hpp"

namespace budstikke {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kFnr = "12837512393";  // the synthetic number in the example messages
constexpr const char* kMsgId = "6a0e2f43-5d0b-4a8e-9a55-0b3c2f7e1a01";
constexpr const char* kToken = "e2e-admin-token-0123456789";

std::pair<int, std::string> run(const std::string& args) {
  const std::string bin = (testenv::binary_dir() / "bin/budstikke").string();
  std::string out;
  FILE* p = popen((bin + " " + args + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

int64_t count(const std::string& topic) {
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  auto n = bus::topic_message_count(s, topic);
  return n ? *n : -1;
}

template <class F>
bool wait_for(F f, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return f();
}

size_t files_in(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') ++n;
  return n;
}

// Positions of the states in the track output, in order; npos when one is missing.
bool in_order(const std::string& text, const std::vector<std::string>& parts) {
  size_t at = 0;
  for (const auto& p : parts) {
    at = text.find(p, at);
    if (at == std::string::npos) return false;
    at += p.size();
  }
  return true;
}

// The HTTP receiver of dialog_setup's hospital: it answers "later" while hospital_down.
struct Receivers {
  testenv::HttpReceiver http;
  std::atomic<bool> hospital_down{true};
  Receivers() {
    http.set_policy([this](const std::string& system) {
      return system == "hospital" && hospital_down.load() ? testenv::Answer::kLater
                                                          : testenv::Answer::kAccept;
    });
  }
};

// The dialog route and a registry of two systems, each given two attempts: a GP office (files
// in `outbox`/gp-office) and a hospital (HTTP at `http`; `hospital_extra`: more of its keys).
// Returns engine.yaml's lines for them.
std::string dialog_setup(const fs::path& dir, const fs::path& outbox, const std::string& http,
                         const std::string& hospital_extra = "") {
  const fs::path routes = dir / "routes";
  fs::create_directories(routes);
  fs::copy_file(testenv::source_dir() / "routes/dialog-both-ways.yaml",
                routes / "dialog-both-ways.yaml");
  std::ofstream(dir / "systems.yaml")
      << "defaults:\n  accepts: [kith/*]\n  retry:\n    max_attempts: 2\n"
         "    initial_backoff_ms: 100\n    max_backoff_ms: 200\n"
         "systems:\n"
         "  - id: gp-office\n    name: Test GP office\n    kind: gp\n"
         "    her_ids: [\"8100001\", \"8100011\"]\n"
         "    connector:\n      url: file:"
      << (outbox / "gp-office").string()
      << "\n"
         "  - id: hospital\n    name: Test hospital\n    kind: hospital\n"
         "    her_ids: [\"8200001\", \"8200010\"]\n    receipts: none\n"
         "    connector:\n      url: "
      << http << "/systems/hospital\n"
      << hospital_extra;
  return "routes: " + routes.string() + "\nsystems: " + (dir / "systems.yaml").string() + "\n";
}

TEST(OpsE2E, DeadLetterReplayTrackAdminApiAndAudit) {
  testenv::TempDir tmp;
  Receivers receivers;
  testenv::HttpReceiver& receiver = receivers.http;
  std::atomic<bool>& down = receivers.hospital_down;
  const std::string src = testenv::source_dir().string();
  const fs::path outbox = tmp.path() / "outbox";
  const std::string http = receivers.http.base_url();
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      dialog_setup(tmp.path(), outbox, http) + "admin:\n  port: 0\n  token: " + kToken +
          "\naudit:\n  file: " + (tmp.path() / "audit.log").string() + "\n",
      "  instance: e2e-ops\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const int admin_port = engine.admin_port();
  ASSERT_GT(admin_port, 0) << testenv::read_file(tmp.path() / "engine/engine-1.out");
  const std::string cfg = " -c " + engine.config().string();
  setenv("BUDSTIKKE_ACTOR", "e2e-operator", 1);

  // 1. The message fails twice and is dead-lettered; the GP office gets one negative AppRec.
  engine.drop("dialog.xml", testenv::read_file(src + "/examples/messages/"
                                                     "dialog-notat-gp-to-hospital.xml"));
  const std::string dlq = engine.prefix() + "dlq.hospital";
  ASSERT_TRUE(wait_for([&] { return count(dlq) == 1; }, std::chrono::seconds(90)))
      << "dlq: " << count(dlq) << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  ASSERT_TRUE(
      wait_for([&] { return files_in(outbox / "gp-office") >= 1; }, std::chrono::seconds(30)));

  // 2. The admin API: 401 without (or with a wrong) token; what each endpoint says.
  auto get = [&](const std::string& target, const std::string& token = kToken) {
    return testenv::http_request("GET", "127.0.0.1", admin_port, target, token);
  };
  std::vector<std::string> bodies;
  for (const char* target : {"/metrics", "/api/messages/x", "/api/dlq", "/api/routes"}) {
    SCOPED_TRACE(target);
    const auto none = get(target, "");
    EXPECT_EQ(none.status, 401) << none.body << none.error;
    const auto wrong = get(target, "not-the-token");
    EXPECT_EQ(wrong.status, 401) << wrong.body;
    bodies.push_back(none.body);
  }
  EXPECT_EQ(testenv::http_request("POST", "127.0.0.1", admin_port, "/api/routes/reload").status,
            401);
  const auto health = get("/healthz", "");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(nlohmann::json::parse(health.body, nullptr, false).value("instance", ""), "e2e-ops")
      << health.body;
  const auto ready = get("/readyz", "");
  EXPECT_EQ(ready.status, 200) << ready.body;
  const auto dlq_list = get("/api/dlq");
  ASSERT_EQ(dlq_list.status, 200) << dlq_list.body;
  const json dl = json::parse(dlq_list.body);
  EXPECT_EQ(dl.value("depth", -1), 1) << dlq_list.body;
  const auto dlq_entries = get("/api/dlq?system=hospital");
  ASSERT_EQ(dlq_entries.status, 200) << dlq_entries.body;
  EXPECT_NE(dlq_entries.body.find("gave up after 2 attempts"), std::string::npos)
      << dlq_entries.body;
  const auto msg = get(std::string("/api/messages/") + kMsgId);
  ASSERT_EQ(msg.status, 200) << msg.body;
  EXPECT_NE(msg.body.find("dead_lettered"), std::string::npos) << msg.body;
  EXPECT_EQ(get("/api/messages/no-such-message").status, 404);
  EXPECT_EQ(get("/api/nothing-here").status, 404);
  EXPECT_EQ(testenv::http_request("DELETE", "127.0.0.1", admin_port, "/api/routes", kToken).status,
            405);
  const auto routes_status = get("/api/routes");
  EXPECT_EQ(routes_status.status, 200);
  EXPECT_NE(routes_status.body.find("dialog-both-ways"), std::string::npos) << routes_status.body;
  bodies.insert(bodies.end(),
                {ready.body, dlq_list.body, dlq_entries.body, msg.body, routes_status.body});

  // Time windows and dry runs choose without sending.
  const auto [w1, in_window] = run("replay" + cfg + " --system hospital --since 1h --dry-run");
  EXPECT_EQ(w1, 0) << in_window;
  EXPECT_NE(in_window.find("1 message(s) would be replayed"), std::string::npos) << in_window;
  const auto [w2, before] = run("replay" + cfg + " --system hospital --until 2020-01-01 --dry-run");
  EXPECT_EQ(w2, 0) << before;
  EXPECT_NE(before.find("nothing to replay"), std::string::npos) << before;
  const auto [w3, by_id] =
      run("replay" + cfg + " --all --message-id " + std::string(kMsgId) + " --dry-run");
  EXPECT_EQ(w3, 0) << by_id;
  EXPECT_NE(by_id.find("would replay"), std::string::npos) << by_id;
  EXPECT_EQ(receiver.counts()["hospital"], 0);

  // 3. The hospital is back; replay its DLQ; the message is delivered once more, no new AppRec.
  down = false;
  const auto [rrc, replayed] = run("replay" + cfg + " --system hospital");
  std::printf("budstikke replay --system hospital:\n%s", replayed.c_str());
  ASSERT_EQ(rrc, 0) << replayed;
  EXPECT_NE(replayed.find("1 message(s) replayed"), std::string::npos) << replayed;
  ASSERT_TRUE(
      wait_for([&] { return receiver.counts()["hospital"] == 1; }, std::chrono::seconds(60)))
      << "hospital got " << receiver.counts()["hospital"];
  const auto got = receiver.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].payload.find(kMsgId), std::string::npos);
  // A second whole-DLQ replay finds nothing new.
  const auto [rrc2, again] = run("replay" + cfg + " --system hospital");
  EXPECT_EQ(rrc2, 0) << again;
  EXPECT_NE(again.find("nothing to replay"), std::string::npos) << again;

  // The GP office's system sends the same message again: delivered again (same idempotency
  // key), but the office is not answered a second time.
  engine.drop("dialog-again.xml", testenv::read_file(src + "/examples/messages/"
                                                           "dialog-notat-gp-to-hospital.xml"));
  ASSERT_TRUE(
      wait_for([&] { return receiver.counts()["hospital"] == 2; }, std::chrono::seconds(60)));

  // The hospital's system answers with an AppRec: part of the message's history.
  engine.drop("apprec.xml",
              std::string("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                          "<AppRec xmlns=\"http://www.kith.no/xmlstds/apprec/2004-11-21\">\n"
                          "  <MsgType V=\"APPREC\" DN=\"Applikasjonskvittering\"/>\n"
                          "  <MIGversion>v1.0 2004-11-21</MIGversion>\n"
                          "  <GenDate>2026-11-22T06:00:00</GenDate>\n"
                          "  <Id>e2e-apprec-0001</Id>\n"
                          "  <Sender><HCP><Inst><Name>Test hospital</Name><Id>8200001</Id>"
                          "<TypeId V=\"HER\" DN=\"HER-id\"/></Inst></HCP></Sender>\n"
                          "  <Receiver><HCP><Inst><Name>Test GP office</Name><Id>8100001</Id>"
                          "<TypeId V=\"HER\" DN=\"HER-id\"/></Inst></HCP></Receiver>\n"
                          "  <Status V=\"1\" DN=\"OK\"/>\n"
                          "  <OriginalMsgId>\n"
                          "    <MsgType V=\"DIALOG_NOTAT\" DN=\"Notat\"/>\n"
                          "    <IssueDate>2026-11-20T09:12:00</IssueDate>\n"
                          "    <Id>") +
                  kMsgId + "</Id>\n  </OriginalMsgId>\n</AppRec>\n");

  // 4. budstikke track: the whole history, in order.
  std::string history;
  ASSERT_TRUE(wait_for(
      [&] {
        history = run("track" + cfg + " " + kMsgId).second;
        return history.find("delivered route dialog-both-ways") != std::string::npos &&
               history.find("answering") != std::string::npos &&
               history.find("already answered") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << history;
  std::printf("budstikke track %s:\n%s", kMsgId, history.c_str());
  EXPECT_TRUE(in_order(history, {"received via file:inbox as dialog (XSD-validated) [on e2e-ops]",
                                 "routed route dialog-both-ways -> [hospital] [on e2e-ops]",
                                 "attempt_failed", "(attempt 1)", "dead_lettered", "(attempt 2)",
                                 "replayed", "by e2e-operator", "delivered", "[on e2e-ops]"}))
      << history;
  EXPECT_NE(history.find("received via file:inbox as apprec answering " + std::string(kMsgId) +
                         " status 1 (OK)"),
            std::string::npos)
      << history;
  EXPECT_NE(history.find("receipt_not_sent to gp-office: already answered: one AppRec per "
                         "message"),
            std::string::npos)
      << history;
  // One AppRec only: the negative one sent when the job died.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_EQ(files_in(outbox / "gp-office"), 1u);

  // One message to one system: the dialog rendered for the GP office (readdressed KITH).
  const size_t gp_files = files_in(outbox / "gp-office");
  const auto [trc, to_gp] =
      run("replay" + cfg + " --message-id " + std::string(kMsgId) + " --to gp-office");
  std::printf("budstikke replay --message-id ... --to gp-office:\n%s", to_gp.c_str());
  EXPECT_EQ(trc, 0) << to_gp;
  EXPECT_NE(to_gp.find("-> gp-office"), std::string::npos) << to_gp;
  ASSERT_TRUE(wait_for([&] { return files_in(outbox / "gp-office") == gp_files + 1; },
                       std::chrono::seconds(60)))
      << to_gp;
  bool readdressed = false;
  for (const auto& e : fs::directory_iterator(outbox / "gp-office")) {
    const std::string f = testenv::read_file(e.path());
    if (f.find("<Dialogmelding") != std::string::npos &&
        f.find("Test GP office") != std::string::npos)
      readdressed = true;
  }
  EXPECT_TRUE(readdressed) << "no readdressed dialogmelding in the GP office's outbox";
  // The same over the admin API: a dry run of one message; bad requests get 400.
  auto post = [&](const std::string& target, const std::string& body) {
    return testenv::http_request("POST", "127.0.0.1", admin_port, target, kToken, body);
  };
  const auto api_replay =
      post("/api/dlq/replay", std::string(R"({"system": "hospital", "message_id": ")") + kMsgId +
                                  R"(", "dry_run": true})");
  EXPECT_EQ(api_replay.status, 200) << api_replay.body;
  EXPECT_NE(api_replay.body.find("\"replayed\": 1"), std::string::npos) << api_replay.body;
  EXPECT_EQ(post("/api/dlq/replay", R"({"system": 5})").status, 400);
  EXPECT_EQ(post("/api/dlq/replay", R"({"all": true, "since": "yesterday"})").status, 400);
  EXPECT_EQ(post("/api/dlq/replay", R"({"system": "no-such-system"})").status, 400);
  EXPECT_EQ(post("/api/dlq/replay", "not json").status, 400);
  bodies.push_back(api_replay.body);

  // 5. Metrics: delivered, dead-lettered, DLQ depth back to 0 after the replay.
  const auto metrics = get("/metrics");
  ASSERT_EQ(metrics.status, 200);
  EXPECT_NE(metrics.body.find("budstikke_dead_lettered_total{system=\"hospital\"} 1"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("budstikke_dlq_depth{system=\"hospital\"} 0"), std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("budstikke_delivered_total{system=\"hospital\"} 2"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("budstikke_received_total{channel=\"file:inbox\",type=\"dialog\"} 2"),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("budstikke_delivery_latency_seconds_bucket{system=\"hospital\""),
            std::string::npos);
  EXPECT_NE(metrics.body.find("budstikke_delivery_queue_wait_seconds_count{system=\"hospital\"} "),
            std::string::npos)
      << metrics.body;
  EXPECT_NE(metrics.body.find("budstikke_consumer_lag{group=\"budstikke-delivery\"}"),
            std::string::npos)
      << metrics.body;
  bodies.push_back(metrics.body);
  const auto reload =
      testenv::http_request("POST", "127.0.0.1", admin_port, "/api/routes/reload", kToken);
  EXPECT_EQ(reload.status, 200) << reload.body;
  bodies.push_back(reload.body);

  // consume --raw shows content: audited too.
  const auto [crc, raw] = run("consume" + cfg + " --raw --max 1 canonical.dialog");
  EXPECT_EQ(crc, 0) << raw;
  EXPECT_NE(raw.find("***********"), std::string::npos) << "the number is redacted in --raw";

  // 6. budstikke audit --patient: who read and re-sent this patient's messages.
  const auto [arc, audit] = run("audit" + cfg + " --patient " + kFnr);
  std::printf("budstikke audit --patient ***********:\n%s", audit.c_str());
  EXPECT_EQ(arc, 0) << audit;
  EXPECT_NE(audit.find("e2e-operator  replay"), std::string::npos) << audit;
  EXPECT_NE(audit.find("e2e-operator  track"), std::string::npos) << audit;
  EXPECT_NE(audit.find("admin-api@127.0.0.1  api.message"), std::string::npos) << audit;
  EXPECT_NE(audit.find("admin-api@127.0.0.1  api.dlq"), std::string::npos) << audit;
  EXPECT_NE(audit.find("e2e-operator  consume.raw"), std::string::npos) << audit;
  const auto [arc2, nobody] = run("audit" + cfg + " --patient 01010112345");
  EXPECT_EQ(arc2, 0) << nobody;
  EXPECT_NE(nobody.find("0 audit record(s)"), std::string::npos) << nobody;

  // 7. Bad input against the running broker.
  const auto [urc, unknown] = run("track" + cfg + " no-such-message");
  EXPECT_EQ(urc, 1) << unknown;
  EXPECT_NE(unknown.find("nothing is known about 'no-such-message'"), std::string::npos);
  const auto [src2, unknown_sys] = run("replay" + cfg + " --system no-such-system");
  EXPECT_EQ(src2, 2) << unknown_sys;
  EXPECT_NE(unknown_sys.find("unknown system 'no-such-system'"), std::string::npos);
  const auto [mrc, no_match] = run("replay" + cfg + " --system hospital --message-id nope");
  EXPECT_EQ(mrc, 1) << no_match;

  EXPECT_EQ(engine.stop(), 0);

  // 8. Privacy: no identity number in any response, CLI output, log line or the audit log.
  std::vector<std::pair<std::string, std::string>> texts = {{"replay", replayed},
                                                            {"track", history},
                                                            {"audit", audit},
                                                            {"unknown", unknown},
                                                            {"consume --raw", raw}};
  for (size_t i = 0; i < bodies.size(); ++i)
    texts.push_back({"body " + std::to_string(i), bodies[i]});
  for (const char* f : {"engine/engine-1.log", "engine/engine-1.out", "audit.log"})
    texts.push_back({f, testenv::read_file(tmp.path() / f)});
  for (const auto& [what, text] : texts) {
    EXPECT_EQ(text.find(kFnr), std::string::npos) << what << ":\n" << text;
    EXPECT_FALSE(contains_identity_number(text)) << what << ":\n" << text;
  }
}

// A counter's value in the Prometheus text (no labels), or -1.
double metric(const std::string& text, const std::string& name) {
  const auto at = text.find("\n" + name + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + name.size() + 2, nullptr);
}

// With delivery.job_topics route, jobs reach a deliver.<system> topic only when they are
// moved or replayed there, so the delivery stage pauses such a topic once it has read it to
// its end (design note 41). A replay written there while it is paused must still be read:
// the stage checks the idle topics' end offsets and fetches them again when they grew.
TEST(OpsE2E, WithRouteJobTopicsAnIdleDeliverTopicIsPausedYetAReplayThereIsDelivered) {
  testenv::TempDir tmp;
  Receivers receivers;
  testenv::HttpReceiver& receiver = receivers.http;
  std::atomic<bool>& down = receivers.hospital_down;
  const std::string src = testenv::source_dir().string();
  const std::string http = receivers.http.base_url();
  testenv::EngineProcess engine(tmp.path() / "engine",
                                dialog_setup(tmp.path(), tmp.path() / "outbox", http) +
                                    "admin:\n  port: 0\n  token: " + kToken +
                                    "\ndelivery:\n  job_topics: route\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const int admin_port = engine.admin_port();
  ASSERT_GT(admin_port, 0) << testenv::read_file(tmp.path() / "engine/engine-1.out");
  const auto value = [&](const char* name) {
    return metric(testenv::http_request("GET", "127.0.0.1", admin_port, "/metrics", kToken).body,
                  name);
  };
  constexpr const char* kPaused = "budstikke_delivery_idle_topics_paused_total";
  constexpr const char* kWoken = "budstikke_delivery_idle_topics_woken_total";
  // Both systems' deliver topics are empty: both are paused, and stay so.
  ASSERT_TRUE(wait_for([&] { return value(kPaused) >= 2; }, std::chrono::seconds(30)))
      << kPaused << " " << value(kPaused) << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  std::this_thread::sleep_for(std::chrono::seconds(3));
  EXPECT_EQ(value(kPaused), 2);
  EXPECT_EQ(value(kWoken), 0);

  // The job comes through jobs.dialog-both-ways, fails twice and is dead-lettered.
  engine.drop("dialog.xml", testenv::read_file(src + "/examples/messages/"
                                                     "dialog-notat-gp-to-hospital.xml"));
  ASSERT_TRUE(wait_for([&] { return count(engine.prefix() + "dlq.hospital") == 1; },
                       std::chrono::seconds(90)))
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  EXPECT_GE(count(engine.prefix() + "jobs.dialog-both-ways"), 1);  // and a commit marker
  EXPECT_EQ(count(engine.prefix() + "deliver.hospital"), 0);

  // The replay writes to the paused deliver.hospital; it is read and delivered.
  down = false;
  const auto [rrc, replayed] = run("replay -c " + engine.config().string() + " --system hospital");
  ASSERT_EQ(rrc, 0) << replayed;
  EXPECT_EQ(count(engine.prefix() + "deliver.hospital"), 1);
  ASSERT_TRUE(
      wait_for([&] { return receiver.counts()["hospital"] == 1; }, std::chrono::seconds(30)))
      << "hospital got " << receiver.counts()["hospital"] << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  EXPECT_GE(value(kWoken), 1);
  // Read to its end again, it is paused again.
  EXPECT_TRUE(wait_for([&] { return value(kPaused) >= 3; }, std::chrono::seconds(30)))
      << kPaused << " " << value(kPaused);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(receiver.counts()["hospital"], 1);
  EXPECT_EQ(engine.stop(), 0);
}

TEST(OpsE2E, TopicsDeleteRemovesOnlyThePrefixAndOnlyWhenAskedTo) {
  testenv::TempDir tmp;
  // Two environments on one cluster; the second's prefix begins like the first's.
  testenv::EngineProcess a(tmp.path() / "a");
  testenv::EngineProcess b(tmp.path() / "b", "", "", a.prefix() + "x.");
  for (const auto* e : {&a, &b}) {
    const auto [rc, out] = run("topics -c " + e->config().string() + " create");
    ASSERT_EQ(rc, 0) << out;
  }
  const std::string cfg = " -c " + a.config().string();
  const auto count_with = [&](const std::string& prefix) {
    const auto [rc, out] = run("topics" + cfg);
    EXPECT_EQ(rc, 0) << out;
    size_t n = 0;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
      if (line.rfind(prefix, 0) == 0) ++n;
    return n;
  };
  const size_t mine = count_with(a.prefix()) - count_with(b.prefix());
  const size_t theirs = count_with(b.prefix());
  ASSERT_GE(mine, 10u);
  ASSERT_EQ(theirs, mine);

  // Refused: no prefix, Kafka's internal topics, a stray argument.
  EXPECT_EQ(run("topics" + cfg + " delete").first, 2);
  EXPECT_EQ(run("topics" + cfg + " delete __consumer_offsets --yes").first, 2);
  EXPECT_EQ(run("topics" + cfg + " remove " + a.prefix()).first, 2);
  // Without --yes: the list, nothing deleted.
  const std::string own = a.prefix() + "canonical.";
  const auto [dry_rc, dry] = run("topics" + cfg + " delete " + own);
  EXPECT_EQ(dry_rc, 0) << dry;
  EXPECT_NE(dry.find("none deleted: add --yes"), std::string::npos) << dry;
  EXPECT_NE(dry.find(own + "lab_result"), std::string::npos) << dry;
  EXPECT_EQ(count_with(a.prefix()) - count_with(b.prefix()), mine);
  // With --yes: exactly the topics under the prefix; the other environment keeps its own.
  const auto [rc, out] = run("topics" + cfg + " delete " + own + " --yes");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("deleted "), std::string::npos) << out;
  EXPECT_TRUE(wait_for([&] { return count_with(own) == 0; }, std::chrono::seconds(30)));
  EXPECT_GT(count_with(a.prefix()) - count_with(b.prefix()), 0u);  // its other topics stay
  EXPECT_EQ(count_with(b.prefix()), theirs);
  EXPECT_EQ(run("topics" + cfg + " delete " + a.prefix() + " --yes").first, 0);
  EXPECT_TRUE(wait_for([&] { return count_with(a.prefix()) == 0; }, std::chrono::seconds(30)));
}

// After a moment for strays: the hospital got `n` messages, each once (by idempotency key).
void expect_each_once(testenv::HttpReceiver& receiver, int n) {
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::set<std::string> keys;
  for (const auto& r : receiver.received())
    if (r.system == "hospital") keys.insert(r.key);
  EXPECT_EQ(receiver.counts()["hospital"], n);
  EXPECT_EQ(keys.size(), static_cast<size_t>(n));
}

// A system's rate limit holds on the event loop HTTP deliveries are sent on: 12 dialog
// messages (one patient, so also one at a time by ordering) reach a hospital limited to 5
// per second no closer than the limit allows, each once; without the limit they come a
// few milliseconds apart.
TEST(OpsE2E, ARateLimitedSystemGetsNoMoreThanItsLimit) {
  testenv::TempDir tmp;
  testenv::HttpReceiver receiver;
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> arrivals;
  receiver.set_policy([&](const std::string& system) {
    if (system == "hospital") {
      const std::lock_guard lock(mu);
      arrivals.push_back(std::chrono::steady_clock::now());
    }
    return testenv::Answer::kAccept;
  });
  const std::string src = testenv::source_dir().string();
  testenv::EngineProcess engine(tmp.path() / "engine",
                                dialog_setup(tmp.path(), tmp.path() / "outbox", receiver.base_url(),
                                             "    rate_limit: 5\n    concurrency: 4\n"));
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const std::string dialog =
      testenv::read_file(src + "/examples/messages/dialog-notat-gp-to-hospital.xml");
  constexpr int kMessages = 12;
  for (int i = 0; i < kMessages; ++i) {
    std::string m = dialog;
    m.replace(m.find(kMsgId), std::string(kMsgId).size(), "e2e-rate-" + std::to_string(i));
    engine.drop("dialog-" + std::to_string(i) + ".xml", m);
  }
  ASSERT_TRUE(wait_for([&] { return receiver.counts()["hospital"] >= kMessages; },
                       std::chrono::seconds(60)))
      << receiver.counts()["hospital"] << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  expect_each_once(receiver, kMessages);
  const std::lock_guard lock(mu);
  ASSERT_EQ(arrivals.size(), static_cast<size_t>(kMessages));
  // 200 ms apart at the limit; the sends start on time, their arrival varies by the network's
  // few milliseconds.
  for (size_t i = 1; i < arrivals.size(); ++i)
    EXPECT_GE(arrivals[i] - arrivals[i - 1], std::chrono::milliseconds(170)) << "delivery " << i;
  EXPECT_GE(arrivals.back() - arrivals.front(),
            std::chrono::milliseconds(200 * (kMessages - 1) - 50));
  EXPECT_EQ(engine.stop(), 0);
}

// The value of a metric of one system on the admin API's /metrics (-1 when absent).
double system_metric(const std::string& metrics, const std::string& name, const std::string& system,
                     const std::string& more_labels = "") {
  const std::string head = name + "{system=\"" + system + "\"" + more_labels + "} ";
  const size_t at = metrics.find(head);
  if (at == std::string::npos) return -1;
  return std::strtod(metrics.c_str() + at + head.size(), nullptr);
}

// A system's circuit breaker: a hospital that answers 503 gets the sends that reach the
// failure threshold and then one trial per open_ms, while its six jobs keep failing fast
// (as retriable, tracked "circuit open" once per row of such attempts) far more often than
// it is called; when it answers again, the next trial closes the circuit and each message
// is delivered once. With the breaker out of reach (failure_threshold 100000) the hospital
// gets every attempt and the test fails.
TEST(OpsE2E, AnOpenCircuitStopsCallingADownSystemUntilATrialGoesThrough) {
  testenv::TempDir tmp;
  testenv::HttpReceiver receiver;
  std::atomic<bool> down{true};
  std::mutex mu;
  std::vector<std::chrono::steady_clock::time_point> calls_while_down;
  receiver.set_policy([&](const std::string& system) {
    if (system != "hospital" || !down.load()) return testenv::Answer::kAccept;
    const std::lock_guard lock(mu);
    calls_while_down.push_back(std::chrono::steady_clock::now());
    return testenv::Answer::kLater;
  });
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      dialog_setup(tmp.path(), tmp.path() / "outbox", receiver.base_url(),
                   "    ordering: none\n    concurrency: 2\n"
                   "    retry:\n      max_attempts: 1000\n      initial_backoff_ms: 50\n"
                   "      max_backoff_ms: 100\n"
                   "    circuit_breaker:\n      failure_threshold: 3\n      open_ms: 1000\n") +
          "admin:\n  port: 0\n  token: " + kToken + "\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const int admin_port = engine.admin_port();
  ASSERT_GT(admin_port, 0) << testenv::read_file(tmp.path() / "engine/engine-1.out");
  const std::string dialog = testenv::read_file(
      testenv::source_dir() / "examples/messages/dialog-notat-gp-to-hospital.xml");
  constexpr int kMessages = 6;
  for (int i = 0; i < kMessages; ++i) {
    std::string m = dialog;
    m.replace(m.find(kMsgId), std::string(kMsgId).size(), "e2e-breaker-" + std::to_string(i));
    engine.drop("dialog-" + std::to_string(i) + ".xml", m);
  }
  auto calls = [&] {
    const std::lock_guard lock(mu);
    return calls_while_down.size();
  };
  ASSERT_TRUE(wait_for([&] { return calls() >= 1; }, std::chrono::seconds(60)))
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  // Four seconds down: the jobs are due every 50-100 ms, so without the breaker the
  // hospital would be called some hundreds of times.
  std::this_thread::sleep_for(std::chrono::seconds(4));
  const std::string metrics =
      testenv::http_request("GET", "127.0.0.1", admin_port, "/metrics", kToken).body;
  std::vector<std::chrono::steady_clock::time_point> seen;
  {
    const std::lock_guard lock(mu);
    seen = calls_while_down;
    down = false;
  }
  const double failed =
      system_metric(metrics, "budstikke_delivery_attempts_failed_total", "hospital");
  const double opened =
      system_metric(metrics, "budstikke_delivery_circuit_opened_total", "hospital");
  // The six jobs: at any time nearly all wait for their next attempt (the breaker fails
  // them at once); none is lost from the count.
  const double waiting =
      system_metric(metrics, "budstikke_delivery_jobs", "hospital", ",state=\"retry\"");
  const double ready =
      system_metric(metrics, "budstikke_delivery_jobs", "hospital", ",state=\"ready\"");
  std::printf(
      "hospital down 4 s: called %zu times, %.0f failed attempts, circuit opened %.0f "
      "times; jobs waiting for a retry %.0f, ready %.0f\n",
      seen.size(), failed, opened, waiting, ready);
  EXPECT_GE(waiting, kMessages - 2) << metrics;
  EXPECT_GE(ready, 0) << metrics;
  EXPECT_LE(waiting + ready, kMessages) << metrics;
  // The threshold's sends (and one more that was in flight with them), then one trial a second.
  EXPECT_LE(seen.size(), 12u) << "failed attempts " << failed;
  EXPECT_GE(failed, 30) << "calls " << seen.size();
  EXPECT_GE(opened, 2) << metrics;  // the first opening and at least one failed trial
  EXPECT_LE(opened, static_cast<double>(seen.size())) << metrics;
  size_t close_together = 0;  // calls less than open_ms after the one before
  for (size_t i = 1; i < seen.size(); ++i)
    if (seen[i] - seen[i - 1] < std::chrono::milliseconds(950)) ++close_together;
  EXPECT_LE(close_together, 3u) << seen.size() << " calls";
  const auto up = std::chrono::steady_clock::now();

  // Up again: a trial goes through within open_ms and a backoff, and everything follows.
  ASSERT_TRUE(wait_for([&] { return receiver.counts()["hospital"] >= kMessages; },
                       std::chrono::seconds(30)))
      << receiver.counts()["hospital"] << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  EXPECT_LT(std::chrono::steady_clock::now() - up, std::chrono::seconds(5));
  expect_each_once(receiver, kMessages);
  const std::string after =
      testenv::http_request("GET", "127.0.0.1", admin_port, "/metrics", kToken).body;
  EXPECT_EQ(system_metric(after, "budstikke_delivery_jobs", "hospital", ",state=\"retry\""), 0)
      << after;
  EXPECT_EQ(system_metric(after, "budstikke_delivery_jobs", "hospital", ",state=\"ready\""), 0)
      << after;

  std::string history;
  EXPECT_TRUE(wait_for(
      [&] {
        history = run("track -c " + engine.config().string() + " e2e-breaker-0").second;
        return history.find("delivered") != std::string::npos;
      },
      std::chrono::seconds(30)))
      << history;
  EXPECT_NE(history.find("circuit open after 3 consecutive failures"), std::string::npos)
      << history;
  // Its attempts that failed fast in a row are tracked once: a row ends only with a send of
  // this job (the hospital got at most seen.size() while down), so the message's history
  // holds far fewer "circuit open" records than it had attempts.
  size_t open_records = 0;
  for (size_t at = history.find("circuit open after"); at != std::string::npos;
       at = history.find("circuit open after", at + 1))
    ++open_records;
  int attempts = 0;
  if (const size_t d = history.find("delivered route"); d != std::string::npos)
    if (const size_t a = history.find("(attempt ", d); a != std::string::npos)
      attempts = std::atoi(history.c_str() + a + 9);
  std::printf("e2e-breaker-0: delivered at attempt %d, %zu \"circuit open\" records\n", attempts,
              open_records);
  EXPECT_GE(open_records, 1u) << history;
  EXPECT_LE(open_records, seen.size() + 1) << history;
  EXPECT_GT(attempts, static_cast<int>(seen.size() + 2)) << history;
  const std::string log = testenv::read_file(tmp.path() / "engine/engine-1.log");
  EXPECT_NE(log.find("circuit open: deliveries fail fast until a trial"), std::string::npos);
  EXPECT_NE(log.find("circuit closed: a delivery went through"), std::string::npos);
  EXPECT_EQ(engine.stop(), 0);
}

// The order a system gets its messages in: with `ordering: per_patient` (the default) a
// patient's later messages wait while the first is retried (A1 is answered 503 three times),
// and another patient's messages do not wait; with `ordering: none` nothing waits for the
// retried message. Messages are posted one after another to the HTTP source, which answers
// once Kafka has each, so Kafka holds them in that order. Returns the order of acceptance.
std::vector<std::string> accepted_order(const std::string& ordering) {
  testenv::TempDir tmp;
  testenv::HttpReceiver receiver;
  std::mutex mu;
  int a1_refused = 0;
  receiver.set_key_policy([&](const std::string& system, const std::string& key) {
    const std::lock_guard lock(mu);
    if (system == "hospital" && key == "e2e-order-A1" && a1_refused < 3) {
      ++a1_refused;
      return testenv::Answer::kLater;
    }
    return testenv::Answer::kAccept;
  });
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      dialog_setup(tmp.path(), tmp.path() / "outbox", receiver.base_url(),
                   "    ordering: " + ordering +
                       "\n    concurrency: 4\n"
                       "    retry:\n      max_attempts: 6\n      initial_backoff_ms: 300\n"
                       "      max_backoff_ms: 300\n      jitter_percent: 0\n"));
  EXPECT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const std::string dialog = testenv::read_file(
      testenv::source_dir() / "examples/messages/dialog-notat-gp-to-hospital.xml");
  const std::vector<std::pair<std::string, std::string>> sends = {
      {"A1", kFnr}, {"A2", kFnr}, {"A3", kFnr}, {"B1", "04827010052"}, {"B2", "04827010052"}};
  for (const auto& [id, fnr] : sends) {
    std::string m = dialog;
    m.replace(m.find(kMsgId), std::string(kMsgId).size(), "e2e-order-" + id);
    m.replace(m.find(kFnr), std::string(kFnr).size(), fnr);
    const auto r = testenv::http_post("127.0.0.1", engine.port(), "/ingest", m);
    EXPECT_EQ(r.status, 202) << id << ": " << r.body;  // accepted: Kafka has it
  }
  EXPECT_TRUE(
      wait_for([&] { return receiver.counts()["hospital"] >= 5; }, std::chrono::seconds(60)))
      << receiver.counts()["hospital"] << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::vector<std::string> order;
  for (const auto& r : receiver.received())
    if (r.system == "hospital") order.push_back(r.key.substr(std::string("e2e-order-").size()));
  {
    const std::lock_guard lock(mu);
    EXPECT_EQ(a1_refused, 3);
  }
  EXPECT_EQ(engine.stop(), 0);
  std::string shown;
  for (const auto& k : order) shown += k + " ";
  std::printf("ordering %s: accepted %s\n", ordering.c_str(), shown.c_str());
  return order;
}

size_t position(const std::vector<std::string>& order, const std::string& id) {
  return static_cast<size_t>(std::find(order.begin(), order.end(), id) - order.begin());
}

TEST(OpsE2E, APatientsMessagesWaitForItsRetriedOneOthersDoNot) {
  const auto order = accepted_order("per_patient");
  ASSERT_EQ(order.size(), 5u);
  EXPECT_LT(position(order, "A1"), position(order, "A2"));
  EXPECT_LT(position(order, "A2"), position(order, "A3"));
  EXPECT_LT(position(order, "B1"), position(order, "B2"));
  // Patient B's messages went while A1 was being retried.
  EXPECT_LT(position(order, "B2"), position(order, "A1"));
}

TEST(OpsE2E, WithOrderingNoneNothingWaitsForARetriedMessage) {
  const auto order = accepted_order("none");
  ASSERT_EQ(order.size(), 5u);
  EXPECT_EQ(order.back(), "A1");  // every other message went while A1 was retried
}

// route.failed is replayable: an event its route could not decide on (the event as a whole
// failed) and one a system could not take in the format the route renders (that system
// failed, the other was delivered) wait there; a replay before the fix fails again and puts
// the event back on route.failed; once the route and the registry are mended, a replay routes
// each event again to exactly the systems it had not reached, and a second replay finds
// nothing.
TEST(OpsE2E, RouteFailedEventsAreRoutedAgainOnceTheRouteIsMended) {
  testenv::TempDir tmp;
  testenv::HttpReceiver http;
  const fs::path outbox = tmp.path() / "outbox", routes = tmp.path() / "routes";
  fs::create_directories(routes);
  const auto write_systems = [&](const std::string& gp_accepts) {
    std::ofstream(tmp.path() / "systems.yaml")
        << "defaults:\n  receipts: none\n  retry:\n    max_attempts: 2\n"
           "    initial_backoff_ms: 100\n    max_backoff_ms: 200\n"
           "systems:\n"
           "  - id: hospital\n    name: Test hospital\n    kind: hospital\n"
           "    her_ids: [\"8200001\"]\n    accepts: [json]\n"
           "    connector:\n      url: "
        << http.base_url()
        << "/systems/hospital\n"
           "  - id: gp-office\n    name: Test GP office\n    kind: gp\n"
           "    her_ids: [\"8100001\"]\n    accepts: ["
        << gp_accepts << "]\n    connector:\n      url: file:" << (outbox / "gp-office").string()
        << "\n";
  };
  const auto write_route = [&](const std::string& regex) {
    std::ofstream(routes / "picky.yaml")
        << "name: picky\nfrom: [admission]\n"
           "filter: 'not exists(body.note) or matches(body.note, \""
        << regex << "\")'\nrender: [json]\nto: [hospital, gp-office]\nreceipts: none\n";
  };
  write_systems("hl7v2/*");  // the GP office cannot take the json the route renders
  write_route("(a*)*b");     // undecidable on a long run of a's
  testenv::EngineProcess engine(tmp.path() / "engine",
                                "routes: " + routes.string() +
                                    "\nsystems: " + (tmp.path() / "systems.yaml").string() +
                                    "\nadmin:\n  port: 0\n  token: " + kToken + "\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const std::string cfg = " -c " + engine.config().string();
  const std::string failed_topic = engine.prefix() + "route.failed";

  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  // Records on route.failed (the route stage writes it in transactions: offsets count
  // commit markers too).
  const auto failures = [&] {
    int n = 0;
    (void)bus::scan_topics(ks, {failed_topic}, [&n](const bus::Message&) {
      ++n;
      return true;
    });
    return n;
  };
  auto producer = bus::Producer::create(ks);
  ASSERT_TRUE(producer);
  const auto send = [&](const std::string& id, const nlohmann::json& body) {
    Event e;
    e.type = EventType::kAdmission;
    e.event_id = "event-" + id;
    e.received_at = "2026-12-07T23:00:00.000Z";
    e.key = "p:" + id;
    e.source.format = "hl7v2";
    e.source.version = "2.5";
    e.source.message_id = id;
    e.body = body;
    ASSERT_TRUE((*producer)->send_sync({engine.prefix() + canonical_topic(EventType::kAdmission),
                                        e.key,
                                        to_json_string(e),
                                        {},
                                        -1}));
  };
  send("UNDECIDED-1", {{"note", std::string(40, 'a')}});  // fails as a whole
  send("PLAIN-1", {{"ward", "B4"}});  // the hospital takes it; the GP office cannot
  ASSERT_TRUE(wait_for([&] { return failures() == 2 && http.counts()["hospital"] == 1; },
                       std::chrono::seconds(60)))
      << "route.failed " << failures() << ", hospital " << http.counts()["hospital"] << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");

  // Before the fix: a dry run shows both; a replay of one event fails again and puts it back.
  const auto [drc, dry] = run("replay" + cfg + " --route-failed --dry-run");
  std::printf("budstikke replay --route-failed --dry-run (before the fix):\n%s", dry.c_str());
  EXPECT_EQ(drc, 1) << dry;  // an event would fail again
  EXPECT_NE(dry.find("failed again: route picky: matches"), std::string::npos) << dry;
  EXPECT_NE(dry.find("failed again: system 'gp-office' accepts [hl7v2/*]; route 'picky' renders "
                     "[json] and this event is hl7v2/2.5"),
            std::string::npos)
      << dry;
  const auto [arc, again] =
      run("replay" + cfg + " --route-failed --route picky --message-id UNDECIDED-1");
  EXPECT_EQ(arc, 1) << again;
  EXPECT_NE(again.find("1 event(s) failed again; they are on route.failed again"),
            std::string::npos)
      << again;
  EXPECT_EQ(failures(), 3);

  // The fix: a decidable regex, and a GP office that takes json.
  write_route("^a+$");
  write_systems("json");
  const int admin_port = engine.admin_port();
  const auto api = testenv::http_request("POST", "127.0.0.1", admin_port, "/api/dlq/replay", kToken,
                                         R"({"route_failed": true, "dry_run": true})");
  EXPECT_EQ(api.status, 200) << api.body;
  const auto api_body = json::parse(api.body, nullptr, false);
  EXPECT_EQ(api_body.value("replayed", -1), 3) << api.body;
  EXPECT_EQ(api_body.value("failed_again", -1), 0) << api.body;

  const auto [rrc, replayed] = run("replay" + cfg + " --route-failed");
  std::printf("budstikke replay --route-failed (after the fix):\n%s", replayed.c_str());
  ASSERT_EQ(rrc, 0) << replayed;
  // UNDECIDED-1 to both systems (its two failure records routed once), PLAIN-1 to the GP
  // office only: the hospital had it.
  EXPECT_NE(replayed.find("3 message(s) replayed"), std::string::npos) << replayed;
  ASSERT_TRUE(wait_for(
      [&] { return http.counts()["hospital"] == 2 && files_in(outbox / "gp-office") == 2; },
      std::chrono::seconds(60)))
      << "hospital " << http.counts()["hospital"] << ", gp-office "
      << files_in(outbox / "gp-office") << "\n"
      << testenv::read_file(tmp.path() / "engine/engine-1.log");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(http.counts()["hospital"], 2);
  EXPECT_EQ(files_in(outbox / "gp-office"), 2u);
  std::set<std::string> gp_ids;
  for (const auto& f : fs::directory_iterator(outbox / "gp-office")) {
    const auto j = json::parse(testenv::read_file(f.path()), nullptr, false);
    if (j.is_object()) gp_ids.insert(j["source"].value("message_id", ""));
  }
  EXPECT_EQ(gp_ids, (std::set<std::string>{"UNDECIDED-1", "PLAIN-1"}));
  EXPECT_EQ(failures(), 3);  // nothing failed again

  // Tracked, and marked: the next whole replay finds nothing new.
  int replayed_states = 0;
  (void)bus::scan_topics(ks, {engine.prefix() + "tracking"}, [&](const bus::Message& m) {
    const auto j = json::parse(m.value(), nullptr, false);
    if (j.is_object() && j.value("state", "") == "replayed" &&
        j.value("from", "").rfind(failed_topic + ":", 0) == 0)
      ++replayed_states;
    return true;
  });
  EXPECT_EQ(replayed_states, 3);
  const auto [nrc, nothing] = run("replay" + cfg + " --route-failed");
  EXPECT_EQ(nrc, 0) << nothing;
  EXPECT_NE(nothing.find("nothing to replay"), std::string::npos) << nothing;
  const auto [urc, usage] = run("replay" + cfg + " --route-failed --system hospital");
  EXPECT_EQ(urc, 2) << usage;
  EXPECT_EQ(engine.stop(), 0);
}

}  // namespace
}  // namespace budstikke
