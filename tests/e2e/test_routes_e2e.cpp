// Routes and delivery end to end on the real broker, with the shipped registry (194
// systems) and the shipped routes. The connected systems are real servers on 127.0.0.1:
// scripts/receiver.py (HTTP and MLLP, port 0) and the file outbox; national systems are
// Kafka topics. One department system answers every message with AE (it is "down"): its
// messages must end in its DLQ after their retries, and nothing may be lost elsewhere.
// The engine is killed with SIGKILL twice, once while its routes work through the input and
// once while it delivers, and started again each time: every expected delivery must arrive
// at least once; duplicates are counted and printed.

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "engine/bus/bus.hpp"
#include "engine/event/event.hpp"
#include "tests/support/engine_process.hpp"
#include "tests/support/fake_receivers.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/mllp_client.hpp"
#include "tests/support/test_env.hpp"

using namespace budstikke;
using namespace std::chrono_literals;

namespace {

constexpr int kAdt = 200;
constexpr int kOru = 200;
constexpr int kDialog = 150;
constexpr int kResult = 150;
constexpr const char* kDown = "solheim-onkologi";

// The 20 department systems subscribed to ADT (config/systems.yaml, tag adt).
const std::vector<std::string>& departments() {
  static const std::vector<std::string> kDepartments = {
      "nordvik-akutt",     "nordvik-kirurgi",     "nordvik-ortopedi",  "nordvik-barn",
      "nordvik-psykiatri", "fjordbyen-medisin",   "fjordbyen-kirurgi", "fjordbyen-foede",
      "fjordbyen-barn",    "fjordbyen-psykiatri", "austvik-medisin",   "austvik-kirurgi",
      "austvik-akutt",     "austvik-rehab",       "austvik-dps",       "solheim-medisin",
      "solheim-kirurgi",   "solheim-geriatri",    "solheim-onkologi",  "solheim-dps"};
  return kDepartments;
}

class Receiver {
 public:
  Receiver(const std::filesystem::path& dir, const std::string& fail) : dir_(dir) {
    std::filesystem::create_directories(dir_);
    const auto out = dir_ / "receiver.out";
    pid_ = testenv::fork_ending_with_parent(SIGTERM);
    if (pid_ == 0) {
      if (!freopen(out.c_str(), "w", stdout) ||
          !freopen((dir_ / "receiver.err").c_str(), "w", stderr))
        _exit(126);
      const std::string script = (testenv::source_dir() / "scripts/receiver.py").string();
      execl("/usr/bin/python3", "python3", script.c_str(), "--dir", dir_.c_str(), "--fail",
            fail.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    const std::regex re("http 127.0.0.1:([0-9]+), mllp 127.0.0.1:([0-9]+)");
    for (int i = 0; i < 200 && http_port == 0; ++i) {
      std::this_thread::sleep_for(50ms);
      std::smatch m;
      const std::string text = testenv::read_file(out);
      if (std::regex_search(text, m, re)) {
        http_port = std::stoi(m[1]);
        mllp_port = std::stoi(m[2]);
      }
    }
  }
  ~Receiver() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  // system -> id -> times received
  std::map<std::string, std::map<std::string, int>> deliveries() const {
    std::map<std::string, std::map<std::string, int>> out;
    std::ifstream in(dir_ / "deliveries.log");
    std::string system, kind, id;
    while (in >> system >> kind >> id) ++out[system][id];
    return out;
  }
  // Points the shipped registry's systems at this receiver (HTTP and MLLP) and `outbox`.
  void export_env(const std::filesystem::path& outbox) const {
    setenv("BUDSTIKKE_RECEIVER_HTTP", ("http://127.0.0.1:" + std::to_string(http_port)).c_str(), 1);
    setenv("BUDSTIKKE_RECEIVER_MLLP", ("mllp://127.0.0.1:" + std::to_string(mllp_port)).c_str(), 1);
    setenv("BUDSTIKKE_OUTBOX", outbox.c_str(), 1);
  }
  int http_port = 0;
  int mllp_port = 0;

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size()))
    s.replace(p, from.size(), to);
  return s;
}

// The engine configuration with the shipped routes and registry, then `extra` (YAML).
std::string shipped_config(const std::string& extra = "") {
  const std::string src = testenv::source_dir().string();
  return "routes: " + src + "/routes\nsystems: " + src + "/config/systems.yaml\n" + extra;
}

size_t files_in(const std::filesystem::path& dir, const std::string& containing = "") {
  size_t n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    if (!e.is_regular_file() || e.path().filename().string()[0] == '.') continue;
    if (containing.empty() || testenv::read_file(e.path()).find(containing) != std::string::npos)
      ++n;
  }
  return n;
}

int64_t count(const std::string& topic) {
  bus::KafkaSettings s;
  s.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  auto n = bus::topic_message_count(s, topic);
  return n ? *n : -1;
}

// Runs a command and returns (exit code, stdout and stderr).
std::pair<int, std::string> run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return {-1, ""};
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) out.append(buf, n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

}  // namespace

namespace {

// `route_jobs`: the engine runs with delivery.job_topics: route, and with `job_partitions`
// > 0 with delivery.job_topic_partitions set to it; `after_ack`: with delivery.route_commit:
// after_ack (the routes write without transactions).
void kill_run(bool route_jobs, int job_partitions = 0, bool after_ack = false) {
  testenv::TempDir tmp;
  Receiver receiver(tmp.path() / "received", kDown);
  ASSERT_GT(receiver.http_port, 0) << testenv::read_file(tmp.path() / "received/receiver.err");
  const auto outbox = tmp.path() / "outbox";
  receiver.export_env(outbox);
  setenv("BUDSTIKKE_RETRY_ATTEMPTS", "3", 1);
  setenv("BUDSTIKKE_RETRY_BACKOFF_MS", "20", 1);
  const std::string src = testenv::source_dir().string();
  std::string delivery = route_jobs ? "delivery:\n  job_topics: route\n" : "";
  if (job_partitions > 0)
    delivery += "  job_topic_partitions: " + std::to_string(job_partitions) + "\n";
  if (after_ack)
    delivery += (route_jobs ? "" : "delivery:\n") + std::string("  route_commit: after_ack\n");
  testenv::EngineProcess engine(tmp.path() / "engine", shipped_config(delivery));
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  if (job_partitions > 0) {
    // The engine created its jobs.<route> topics with that many partitions.
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    const std::string jobs = engine.prefix() + "jobs.lab-result-to-requester";
    // Asked until the broker has a leader for each (the topic is seconds old).
    auto parts = bus::group_offsets(ks, engine.prefix() + "no-such-group", {jobs});
    for (int i = 0; i < 100 && !parts; ++i) {
      std::this_thread::sleep_for(100ms);
      parts = bus::group_offsets(ks, engine.prefix() + "no-such-group", {jobs});
    }
    ASSERT_TRUE(parts) << parts.error().message;
    EXPECT_EQ(static_cast<int>(parts->size()), job_partitions) << jobs;
  }

  // Distinct messages made from the shipped examples.
  const std::string ex = src + "/examples/messages/";
  const std::string adt = testenv::read_file(ex + "adt-a01-admission.hl7");
  const std::string oru = testenv::read_file(ex + "oru-r01-lab-result.hl7");
  const std::string dialog = testenv::read_file(ex + "dialog-notat-gp-to-hospital.xml");
  const std::string result = testenv::read_file(ex + "svarrapport-lab-result.xml");
  for (int i = 0; i < kAdt; ++i)
    engine.drop("adt-" + std::to_string(i) + ".hl7",
                replace_all(adt, "NORDVIK-ADT-0001", "E2E-ADT-" + std::to_string(i)));
  for (int i = 0; i < kOru; ++i)
    engine.drop("oru-" + std::to_string(i) + ".hl7",
                replace_all(oru, "NORDVIK-LAB-0001", "E2E-ORU-" + std::to_string(i)));
  for (int i = 0; i < kDialog; ++i)
    engine.drop("dialog-" + std::to_string(i) + ".xml",
                replace_all(dialog, "6a0e2f43-5d0b-4a8e-9a55-0b3c2f7e1a01",
                            "e2e-dialog-" + std::to_string(i)));
  for (int i = 0; i < kResult; ++i)
    engine.drop("result-" + std::to_string(i) + ".xml",
                replace_all(result, "0f7c3b1e-8a2d-4c55-b0a9-3e6d1c2b7f10",
                            "e2e-result-" + std::to_string(i)));

  // What must arrive: ADT at 19 department systems (the 20th is down) and Kjernejournal;
  // ORU and dialogs at nordvik-dips (HTTP); results at the GP office (file), where the
  // AppRecs for the delivered dialogs also land.
  std::map<std::string, std::set<std::string>> expected;
  for (const auto& d : departments())
    if (d != kDown)
      for (int i = 0; i < kAdt; ++i) expected[d].insert("E2E-ADT-" + std::to_string(i));
  for (int i = 0; i < kOru; ++i) expected["nordvik-dips"].insert("E2E-ORU-" + std::to_string(i));
  for (int i = 0; i < kDialog; ++i)
    expected["nordvik-dips"].insert("e2e-dialog-" + std::to_string(i));
  size_t expected_total = 0;
  for (const auto& [s, ids] : expected) expected_total += ids.size();

  auto received = [&] {
    size_t n = 0;
    const auto got = receiver.deliveries();
    for (const auto& [s, ids] : expected) {
      const auto it = got.find(s);
      if (it == got.end()) continue;
      for (const auto& id : ids) n += it->second.count(id);
    }
    return n;
  };
  const auto gp = outbox / "fjordbyen-legesenter";
  auto done = [&] {
    return received() == expected_total && files_in(gp, "AppRec") == static_cast<size_t>(kDialog) &&
           files_in(gp) == static_cast<size_t>(kDialog) + kResult &&
           count(engine.prefix() + "national.kjernejournal") >= kAdt &&
           count(engine.prefix() + "dlq." + kDown) >= kAdt && [&] {
             const auto got = receiver.deliveries();
             const auto lab = got.find("nordvik-lab");
             return lab != got.end() && lab->second.size() == static_cast<size_t>(kResult);
           }();
  };

  // Crash the engine twice: first while the routes are still working through the input
  // (at the first delivery), then while it delivers (a third of the deliveries in).
  const auto t0 = std::chrono::steady_clock::now();
  while (received() == 0 && std::chrono::steady_clock::now() - t0 < 180s)
    std::this_thread::sleep_for(5ms);
  // How far the routes had come: jobs for the hospital system on its delivery topic (ORU and
  // dialogs; transaction markers count too, so this is an upper bound).
  const int64_t routed_at_kill1 = count(
      engine.prefix() + (route_jobs ? "jobs.lab-result-to-requester" : "deliver.nordvik-dips"));
  const size_t at_kill1 = received();
  EXPECT_EQ(engine.stop(SIGKILL), -SIGKILL);
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-2.log");
  while (received() < expected_total / 3 && std::chrono::steady_clock::now() - t0 < 180s)
    std::this_thread::sleep_for(50ms);
  const size_t at_kill = received();
  EXPECT_EQ(engine.stop(SIGKILL), -SIGKILL);
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-3.log");
  while (!done() && std::chrono::steady_clock::now() - t0 < 400s)
    std::this_thread::sleep_for(200ms);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The tally, per system.
  const auto got = receiver.deliveries();
  size_t missing = 0, duplicates = 0;
  std::map<std::string, int> dup_by_system;
  for (const auto& [s, ids] : expected) {
    const auto it = got.find(s);
    for (const auto& id : ids) {
      const int n = it == got.end() ? 0 : (it->second.count(id) ? it->second.at(id) : 0);
      if (n == 0) ++missing;
      if (n > 1) {
        duplicates += static_cast<size_t>(n - 1);
        dup_by_system[s] += n - 1;
      }
    }
    EXPECT_TRUE(it != got.end()) << s << " received nothing";
  }
  EXPECT_EQ(got.count(kDown), 0u) << "the down system acknowledged nothing";
  // The lab gets an AppRec for each of its results, once the GP office had it.
  const auto lab = got.find("nordvik-lab");
  EXPECT_TRUE(lab != got.end() && lab->second.size() == static_cast<size_t>(kResult))
      << "AppRecs at nordvik-lab: " << (lab == got.end() ? 0 : lab->second.size());
  // Nothing arrived anywhere the routes do not send it.
  for (const auto& [s, ids] : got)
    EXPECT_TRUE(expected.count(s) || s == "nordvik-lab") << "unexpected system " << s;
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(files_in(gp, "AppRec"), static_cast<size_t>(kDialog));
  EXPECT_EQ(files_in(gp), static_cast<size_t>(kDialog + kResult));
  const int64_t kj = count(engine.prefix() + "national.kjernejournal");
  const int64_t dlq = count(engine.prefix() + "dlq." + kDown);
  EXPECT_GE(kj, kAdt);
  EXPECT_GE(dlq, kAdt);
  EXPECT_EQ(count(engine.prefix() + "route.failed"), 0);
  EXPECT_EQ(count(engine.prefix() + "ingest.rejected"), 0);
  // How the routes wrote: a transaction leaves a commit marker behind its records in each
  // partition it wrote (an offset no reader gets), writes acknowledged one by one do not.
  int64_t jobs_end = -1, jobs_read = -1;
  if (route_jobs) {
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    const std::string jobs = engine.prefix() + "jobs.lab-result-to-requester";
    jobs_end = count(jobs);
    jobs_read = 0;
    ASSERT_TRUE(bus::scan_topics(ks, {jobs}, [&](const bus::Message&) {
      ++jobs_read;
      return true;
    }));
    if (after_ack)
      EXPECT_EQ(jobs_read, jobs_end) << "route_commit after_ack left transaction markers";
    else
      EXPECT_LT(jobs_read, jobs_end) << "the routes' transactions left no markers";
  }
  // The PLO route reads admissions but lets no HL7 one through: its batches commit their
  // offsets without a transaction, and it has still read the admission topic to its end.
  {
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    const std::string topic = engine.prefix() + canonical_topic(EventType::kAdmission);
    int64_t lag = -1;
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < until) {
      auto offs = bus::group_offsets(
          ks, engine.prefix() + "budstikke-route-plo-hospital-to-municipality", {topic});
      lag = -1;
      if (offs && !offs->empty()) {
        lag = 0;
        for (const auto& p : *offs) lag += p.lag();
      }
      if (lag == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    EXPECT_EQ(lag, 0) << "the PLO route's group has not committed the admission topic";
  }
  // budstikke track: the whole history of one dialog message, and a clear answer for an
  // unknown id.
  const std::string bin = (testenv::binary_dir() / "bin/budstikke").string();
  const auto [rc, history] = run(bin + " track -c " + engine.config().string() + " e2e-dialog-7");
  EXPECT_EQ(rc, 0) << history;
  for (const char* state : {"received via file:inbox as dialog", "routed route dialog-both-ways",
                            "delivered route dialog-both-ways to nordvik-dips",
                            "receipt_routed to fjordbyen-legesenter"})
    EXPECT_NE(history.find(state), std::string::npos) << state << " missing in:\n" << history;
  std::printf("budstikke track e2e-dialog-7:\n%s", history.c_str());
  const auto [rc2, unknown] = run(bin + " track -c " + engine.config().string() + " no-such-id");
  EXPECT_EQ(rc2, 1);
  EXPECT_NE(unknown.find("nothing is known about 'no-such-id'"), std::string::npos) << unknown;
  std::printf(
      "routes e2e%s: %d messages in (%d ADT, %d ORU, %d dialog, %d results), %zu expected "
      "deliveries to %zu HTTP/MLLP systems + %d files + %d AppRecs; kill -9 in the route "
      "stage (%zu delivered, <= %lld of %d hospital jobs routed) and in the delivery stage "
      "(after %zu); after the restarts: %zu missing, %zu duplicates; kjernejournal %lld "
      "records; dlq.%s %lld; %.1f s\n",
      after_ack    ? " (job_topics route, route_commit after_ack)"
      : route_jobs ? " (job_topics route)"
                   : "",
      kAdt + kOru + kDialog + kResult, kAdt, kOru, kDialog, kResult, expected_total,
      expected.size(), kResult, kDialog, at_kill1, static_cast<long long>(routed_at_kill1),
      kOru + kDialog, at_kill, missing, duplicates, static_cast<long long>(kj), kDown,
      static_cast<long long>(dlq), secs);
  for (const auto& [s, n] : dup_by_system) std::printf("  duplicates at %s: %d\n", s.c_str(), n);
  if (route_jobs)
    std::printf("  jobs.lab-result-to-requester: %lld records read, end offset %lld\n",
                static_cast<long long>(jobs_read), static_cast<long long>(jobs_end));
  // What each restart found delivered already (design note 36).
  for (const char* log : {"engine/engine-2.log", "engine/engine-3.log"}) {
    const std::string text = testenv::read_file(tmp.path() / log);
    const auto at = text.find("jobs delivered before this start");
    if (at != std::string::npos)
      std::printf("  %s: %s\n", log, text.substr(at, text.find('\n', at) - at).c_str());
  }
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

}  // namespace

TEST(RoutesE2E, ShippedRoutesDeliverEverywhereWithADownSystemAndTwoKillDashNines) {
  kill_run(false);
}

// The same with a topic per route: the route transactions write jobs.<route>, the delivery
// stage hands the jobs on (and moves the down system's waiting ones to its own topic), and
// two kill -9 lose nothing.
TEST(RoutesE2E, RouteJobTopicsSurviveTwoKillDashNines) {
  kill_run(true);
}

// The same with delivery.route_commit: after_ack: no transactions; a batch routed again
// after a crash is written twice, and its jobs, under the same ids, are still sent at least
// once and counted where they arrive twice.
TEST(RoutesE2E, RouteCommitAfterAckSurvivesTwoKillDashNines) {
  kill_run(true, 0, true);
}

// The same with every jobs.<route> topic on one partition (delivery.job_topic_partitions,
// the single-engine setting): each route's jobs share one commit point.
TEST(RoutesE2E, RouteJobTopicsOnOnePartitionSurviveTwoKillDashNines) {
  kill_run(true, 1);
}

namespace {

// After a crash the delivery stage reads again the jobs after its committed offsets; those
// the tracking topic records as delivered are not sent again. The crash is made exact: a
// clean run delivers 40 lab results, then, with the engine down, the delivery group's offset
// on the hospital system's topic is set back to 0, so the restarted engine reads all 40 jobs
// again. With the default lookback none of them is sent again; with
// delivery.skip_delivered_lookback_s: 0 every one is (what a crash did before). New results
// after the restart arrive once either way.
void rewound_run(bool skip) {
  testenv::TempDir tmp;
  Receiver receiver(tmp.path() / "received", kDown);
  ASSERT_GT(receiver.http_port, 0) << testenv::read_file(tmp.path() / "received/receiver.err");
  receiver.export_env(tmp.path() / "outbox");
  const std::string src = testenv::source_dir().string();
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      shipped_config((skip ? "" : "delivery:\n  skip_delivered_lookback_s: 0\n")));
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const std::string oru = testenv::read_file(src + "/examples/messages/oru-r01-lab-result.hl7");
  auto drop = [&](const std::string& tag, int n) {
    for (int i = 0; i < n; ++i)
      engine.drop(tag + std::to_string(i) + ".hl7",
                  replace_all(oru, "NORDVIK-LAB-0001", tag + std::to_string(i)));
  };
  // Times each id of `tag` (n of them) reached the hospital system, once all have.
  auto arrived = [&](const std::string& tag, int n, std::chrono::seconds within) {
    std::map<std::string, int> got;
    const auto end = std::chrono::steady_clock::now() + within;
    for (;;) {
      got.clear();
      const auto all = receiver.deliveries();
      if (const auto it = all.find("nordvik-dips"); it != all.end())
        for (const auto& [id, times] : it->second)
          if (id.rfind(tag, 0) == 0) got[id] = times;
      if (static_cast<int>(got.size()) >= n || std::chrono::steady_clock::now() > end) break;
      std::this_thread::sleep_for(50ms);
    }
    return got;
  };
  constexpr int kBefore = 40;
  constexpr int kAfter = 10;
  drop("REWIND-A-", kBefore);
  ASSERT_EQ(arrived("REWIND-A-", kBefore, 120s).size(), static_cast<size_t>(kBefore));
  ASSERT_EQ(engine.stop(SIGTERM), 0);

  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  const std::string topic = engine.prefix() + "deliver.nordvik-dips";
  auto before = bus::group_offsets(ks, engine.prefix() + "budstikke-delivery", {topic});
  ASSERT_TRUE(before) << before.error().message;
  ASSERT_EQ(before->size(), 1u);
  EXPECT_GE((*before)[0].committed, kBefore);  // the clean stop committed every job
  // The rewind an operator would do. The stopped engine is a static member of the group
  // (kafka.instance) until its session times out, and offsets of a group with members
  // cannot be set from outside: it takes up to the session timeout (10 s).
  Status rewound;
  const auto rewind_from = std::chrono::steady_clock::now();
  while (!(rewound = bus::commit_group_offsets(ks, engine.prefix() + "budstikke-delivery",
                                               {{topic, 0, 0}})) &&
         std::chrono::steady_clock::now() - rewind_from < 30s)
    std::this_thread::sleep_for(500ms);
  ASSERT_TRUE(rewound) << rewound.error().message;

  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-2.log");
  drop("REWIND-B-", kAfter);
  const auto after = arrived("REWIND-B-", kAfter, 120s);
  ASSERT_EQ(after.size(), static_cast<size_t>(kAfter));
  for (const auto& [id, times] : after) EXPECT_EQ(times, 1) << id;
  // The rewound jobs come first on the topic; give any resend of them time to land.
  const auto again = arrived("REWIND-A-", kBefore, 0s);
  std::this_thread::sleep_for(2s);
  int repeats = 0;
  for (const auto& [id, times] : arrived("REWIND-A-", kBefore, 0s)) repeats += times - 1;
  const std::string log = testenv::read_file(tmp.path() / "engine/engine-2.log");
  std::printf("rewound %d delivered jobs (lookback %s): %d sent again\n", kBefore,
              skip ? "default" : "0", repeats);
  if (skip) {
    EXPECT_EQ(repeats, 0);
    EXPECT_NE(log.find("jobs delivered before this start read from the tracking topic"),
              std::string::npos);
  } else {
    EXPECT_EQ(repeats, kBefore);
  }
  EXPECT_EQ(again.size(), static_cast<size_t>(kBefore));
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

// A second record of a job this engine delivered (what a message ingested twice with the
// same event id gives: a file the folder source read again after a crash) completes without
// being sent; a replay (bs-replay-of) is sent. Made exact: after 30 lab results reached the
// hospital system, their job records are copied onto deliver.nordvik-dips while the engine
// runs, 5 of them marked as replays. `lookback_s` < 0: the default (300 s); with 2 s the
// copies are written 3 s after the last delivery, when the engine no longer remembers it.
void second_records_run(int lookback_s) {
  const bool remember = lookback_s < 0;
  testenv::TempDir tmp;
  Receiver receiver(tmp.path() / "received", kDown);
  ASSERT_GT(receiver.http_port, 0) << testenv::read_file(tmp.path() / "received/receiver.err");
  receiver.export_env(tmp.path() / "outbox");
  const std::string src = testenv::source_dir().string();
  const std::string token = "e2e-admin-token-0123456789";
  testenv::EngineProcess engine(
      tmp.path() / "engine", shipped_config(remember ? ""
                                                     : "delivery:\n  skip_delivered_lookback_s: " +
                                                           std::to_string(lookback_s) + "\n") +
                                 "admin:\n  port: 0\n  token: " + token + "\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const int admin_port = engine.admin_port();
  ASSERT_GT(admin_port, 0) << testenv::read_file(tmp.path() / "engine/engine-1.out");
  const std::string oru = testenv::read_file(src + "/examples/messages/oru-r01-lab-result.hl7");
  constexpr int kJobs = 30;
  constexpr int kReplays = 5;
  for (int i = 0; i < kJobs; ++i)
    engine.drop("twice-" + std::to_string(i) + ".hl7",
                replace_all(oru, "NORDVIK-LAB-0001", "TWICE-" + std::to_string(i)));
  auto times = [&] {
    std::map<std::string, int> got;
    const auto all = receiver.deliveries();
    if (const auto it = all.find("nordvik-dips"); it != all.end())
      for (const auto& [id, n] : it->second)
        if (id.rfind("TWICE-", 0) == 0) got[id] = n;
    return got;
  };
  const auto t0 = std::chrono::steady_clock::now();
  while (times().size() < static_cast<size_t>(kJobs) &&
         std::chrono::steady_clock::now() - t0 < 120s)
    std::this_thread::sleep_for(50ms);
  ASSERT_EQ(times().size(), static_cast<size_t>(kJobs));
  if (lookback_s > 0) std::this_thread::sleep_for(std::chrono::seconds(lookback_s + 1));

  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  const std::string topic = engine.prefix() + "deliver.nordvik-dips";
  std::vector<bus::Record> copies;
  ASSERT_TRUE(bus::scan_topics(
      ks, {topic},
      [&](const bus::Message& m) {
        bus::Record r{topic, std::string(m.key()), std::string(m.value()), m.headers(), -1};
        if (copies.size() < static_cast<size_t>(kReplays))
          r.headers.push_back({"bs-replay-of", topic + ":0:" + std::to_string(m.offset())});
        copies.push_back(std::move(r));
        return true;
      },
      std::chrono::milliseconds(30000)));
  ASSERT_EQ(copies.size(), static_cast<size_t>(kJobs));
  auto producer = bus::Producer::create(ks);
  ASSERT_TRUE(producer);
  for (const auto& r : copies) ASSERT_TRUE((*producer)->send_sync(r));

  // The copies come after the originals on the topic; the replays are sent, so once they
  // have arrived every copy has been read.
  int repeats = 0;
  const auto t1 = std::chrono::steady_clock::now();
  for (;;) {
    repeats = 0;
    for (const auto& [id, n] : times()) repeats += n - 1;
    if (repeats >= (remember ? kReplays : kJobs) || std::chrono::steady_clock::now() - t1 > 60s)
      break;
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(2s);
  repeats = 0;
  for (const auto& [id, n] : times()) repeats += n - 1;
  const std::string metrics =
      testenv::http_request("GET", "127.0.0.1", admin_port, "/metrics", token).body;
  std::printf("%d delivered jobs written again, %d of them as replays (lookback %s): %d sent\n",
              kJobs, kReplays, remember ? "default" : std::to_string(lookback_s).c_str(), repeats);
  EXPECT_EQ(repeats, remember ? kReplays : kJobs);
  if (remember) {
    EXPECT_NE(
        metrics.find("budstikke_delivery_jobs_skipped_total " + std::to_string(kJobs - kReplays)),
        std::string::npos)
        << metrics.substr(0, 2000);
  }
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

}  // namespace

TEST(RoutesE2E, JobsDeliveredBeforeARestartAreNotSentAgain) {
  rewound_run(true);
}

TEST(RoutesE2E, WithoutTheLookbackRewoundJobsAreSentAgain) {
  rewound_run(false);
}

TEST(RoutesE2E, ASecondRecordOfADeliveredJobIsNotSentButAReplayIs) {
  second_records_run(-1);
}

TEST(RoutesE2E, WithoutTheLookbackASecondRecordIsSentAgain) {
  second_records_run(0);
}

TEST(RoutesE2E, AfterTheLookbackASecondRecordIsSentAgain) {
  second_records_run(2);
}

// Hot reload under load: lab results stream in over MLLP while the routes change on disk and
// the engine gets SIGHUP three times: an invalid route (refused, the running routes stay),
// a changed route (the hospital system now gets canonical JSON instead of the HL7 original),
// and the same files again. Every result must reach the hospital system exactly once.
// `engine_yaml`: more of the engine's configuration.
void reload_run(const std::string& engine_yaml) {
  testenv::TempDir tmp;
  testenv::HttpReceiver http;
  testenv::MllpReceiver mllp;
  setenv("BUDSTIKKE_RECEIVER_HTTP", http.base_url().c_str(), 1);
  setenv("BUDSTIKKE_RECEIVER_MLLP", mllp.url().c_str(), 1);
  setenv("BUDSTIKKE_OUTBOX", (tmp.path() / "outbox").c_str(), 1);
  const std::string src = testenv::source_dir().string();
  const auto routes = tmp.path() / "routes";
  std::filesystem::create_directories(routes);
  for (const auto& e : std::filesystem::directory_iterator(src + "/routes"))
    if (e.path().extension() == ".yaml")
      std::filesystem::copy_file(e.path(), routes / e.path().filename());
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      "routes: " + routes.string() + "\nsystems: " + src + "/config/systems.yaml\n" + engine_yaml);
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const std::string oru = testenv::read_file(src + "/examples/messages/oru-r01-lab-result.hl7");

  constexpr int kTotal = 2400;
  std::atomic<int> acked{0};
  std::thread sender([&] {
    testenv::MllpClient client("127.0.0.1", engine.mllp_port());
    ASSERT_TRUE(client.connect());
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < kTotal; ++i) {
      std::this_thread::sleep_until(t0 + i * 5ms);  // 200 messages/s for 12 s
      const std::string m = replace_all(oru, "NORDVIK-LAB-0001", "RELOAD-" + std::to_string(i));
      for (;;) {
        auto ack = client.send(m, 30s);
        if (ack && ack->find("|AA|") != std::string::npos) break;
        if (!client.connected()) client.connect();
      }
      ++acked;
    }
  });
  auto hup_when = [&](int acked_at) {
    while (acked.load() < acked_at) std::this_thread::sleep_for(10ms);
    kill(engine.pid(), SIGHUP);
  };
  const auto lab = routes / "lab-result-to-requester.yaml";
  const std::string original_route = testenv::read_file(lab);
  // 1: an invalid route next to the others: refused.
  std::ofstream(routes / "broken.yaml")
      << "name: broken\nfrom: [lab_result]\nto: [no-such-system]\n";
  hup_when(600);
  // 2: a valid change: the requester now gets canonical JSON.
  std::this_thread::sleep_for(1s);
  std::filesystem::remove(routes / "broken.yaml");
  std::ofstream(lab) << replace_all(original_route, "render: [original, kith, hl7v2/2.5, json]",
                                    "render: [json]");
  hup_when(1200);
  // 3: nothing changed.
  hup_when(1800);
  sender.join();

  const auto deadline = std::chrono::steady_clock::now() + 120s;
  while (http.counts()["nordvik-dips"] < kTotal && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  std::this_thread::sleep_for(2s);  // anything extra would arrive now
  std::map<std::string, int> per_id;
  int json = 0, hl7 = 0;
  for (const auto& r : http.received()) {
    if (r.system != "nordvik-dips") continue;
    ++per_id[r.key];
    (r.payload.rfind('{', 0) == 0 ? json : hl7)++;
  }
  int lost = 0, duplicated = 0;
  for (int i = 0; i < kTotal; ++i) {
    const int n = per_id["RELOAD-" + std::to_string(i)];
    if (n == 0) ++lost;
    if (n > 1) duplicated += n - 1;
  }
  const std::string log = testenv::read_file(tmp.path() / "engine/engine-1.log");
  auto occurrences = [&](const std::string& what) {
    int n = 0;
    for (size_t p = log.find(what); p != std::string::npos; p = log.find(what, p + 1)) ++n;
    return n;
  };
  std::printf(
      "hot reload%s: %d results at 200/s, 3 SIGHUPs (1 refused, %d applied): %d lost, %d "
      "duplicated; %d delivered as HL7 before the change, %d as JSON after\n",
      engine_yaml.empty() ? "" : " (route_commit after_ack)", kTotal,
      occurrences("\"reload applied\""), lost, duplicated, hl7, json);
  EXPECT_EQ(lost, 0);
  EXPECT_EQ(duplicated, 0);
  EXPECT_EQ(occurrences("\"reload refused; the running configuration stays\""), 1);
  EXPECT_NE(log.find("unknown system 'no-such-system'"), std::string::npos);
  EXPECT_EQ(occurrences("\"reload applied\""), 2);
  EXPECT_GT(hl7, 0);
  EXPECT_GT(json, 0);
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

TEST(RoutesE2E, HotReloadUnderLoadLosesAndDuplicatesNothing) {
  reload_run("");
}

// The same without route transactions: a route stopped by the reload has committed what it
// wrote, so the routes that replace it write nothing twice.
TEST(RoutesE2E, HotReloadWithRouteCommitAfterAckLosesAndDuplicatesNothing) {
  reload_run("delivery:\n  route_commit: after_ack\n");
}

namespace {

std::string adt_for(const std::string& id, long patient) {
  return "MSH|^~\\&|DIPS|NORDVIK^8200001^HER|BUDSTIKKE|REGION|20261120101500+0100||ADT^A01^"
         "ADT_A01|" +
         id + "|P|2.5\rEVN|A01|20261120101500+0100\rPID|1||P" + std::to_string(patient) +
         "^^^NORDVIK^PI||Testesen^Ola||19520804|M\rPV1|1|I|MED^201^1^NORDVIK\r";
}

std::string oru_for(const std::string& id, long patient) {
  return "MSH|^~\\&|LABSYS|NORDVIK^8200020^HER|DIPS|NORDVIK^8200001^HER|20261120140211+0100||"
         "ORU^R01^ORU_R01|" +
         id + "|P|2.5\rPID|1||P" + std::to_string(patient) +
         "^^^NORDVIK^PI||Testesen^Ola||19520804|M\rOBR|1|P1|F1|NPU02319^Hemoglobin^NPU\rOBX|1|"
         "NM|NPU02319^Hemoglobin^NPU||13.2|g/dL|11.7-15.3||||F\r";
}

}  // namespace

// A route that lets nothing through writes no transaction and commits its offsets directly:
// at most every delivery.route_idle_commit_ms, and when it stops (design note 54). The PLO
// route reads admissions and lets no HL7 one through; with a minute between its commits,
// its group has committed nothing after it read every event, and everything once the
// engine has stopped.
TEST(RoutesE2E, ARouteThatLetsNothingThroughCommitsWhenDueAndWhenItStops) {
  testenv::TempDir tmp;
  setenv("BUDSTIKKE_RECEIVER_HTTP", "http://127.0.0.1:9", 1);  // nothing is delivered
  setenv("BUDSTIKKE_RECEIVER_MLLP", "mllp://127.0.0.1:9", 1);
  setenv("BUDSTIKKE_OUTBOX", (tmp.path() / "outbox").c_str(), 1);
  const std::string src = testenv::source_dir().string();
  const auto routes = tmp.path() / "routes";
  std::filesystem::create_directories(routes);
  std::filesystem::copy_file(src + "/routes/plo-hospital-to-municipality.yaml",
                             routes / "plo-hospital-to-municipality.yaml");
  constexpr const char* kToken = "idle-commit-test-token-0123456789";
  testenv::EngineProcess engine(tmp.path() / "engine",
                                "routes: " + routes.string() + "\nsystems: " + src +
                                    "/config/systems.yaml\nadmin:\n  port: 0\n  token: " + kToken +
                                    "\ndelivery:\n  route_idle_commit_ms: 60000\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  const int admin_port = engine.admin_port();
  ASSERT_GT(admin_port, 0) << testenv::read_file(tmp.path() / "engine/engine-1.out");

  constexpr int kAdmissions = 60;
  {
    testenv::MllpClient client("127.0.0.1", engine.mllp_port());
    ASSERT_TRUE(client.connect());
    for (int i = 0; i < kAdmissions; ++i) {
      auto ack = client.send(adt_for("IDLE-ADT-" + std::to_string(i), 7000 + i), 30s);
      ASSERT_TRUE(ack && ack->find("|AA|") != std::string::npos) << (ack ? *ack : "no ACK");
      if (i % 10 == 9) std::this_thread::sleep_for(50ms);  // several batches, not one
    }
  }
  const auto events_read = [&] {  // the PLO route is the engine's only route
    return static_cast<long>(testenv::metric_total(
        testenv::http_request("GET", "127.0.0.1", admin_port, "/metrics", kToken).body,
        "budstikke_route_events_total"));
  };
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (events_read() < kAdmissions && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(100ms);
  ASSERT_EQ(events_read(), kAdmissions) << testenv::read_file(tmp.path() / "engine/engine-1.log");
  std::this_thread::sleep_for(2s);  // many idle polls and batch windows later

  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  const std::string topic = engine.prefix() + canonical_topic(EventType::kAdmission);
  const std::string group = engine.prefix() + "budstikke-route-plo-hospital-to-municipality";
  const auto lag = [&] {
    auto offs = bus::group_offsets(ks, group, {topic});
    if (!offs || offs->empty()) return int64_t{-1};
    int64_t n = 0;
    for (const auto& p : *offs) n += p.lag();
    return n;
  };
  EXPECT_EQ(lag(), kAdmissions) << "the route committed before its interval was up";
  EXPECT_EQ(engine.stop(SIGTERM), 0);
  EXPECT_EQ(lag(), 0) << "the route did not commit what it had read when it stopped";
}

// A record on a canonical topic that a route cannot evaluate (a regex that would backtrack
// without end on its text) or whose body has members of unexpected shapes (a number for
// the patient, rendered as HL7 v2) must not stop the engine: before, the first hung the
// route and the second threw out of it (std::terminate, and the same record again after
// every restart). Now the first fails with its reason on route.failed and the tracking
// topic, the second is rendered, and the events behind them are routed as usual.
TEST(RoutesE2E, AnEventARouteCannotEvaluateFailsAloneAndTheEngineGoesOn) {
  testenv::TempDir tmp;
  setenv("BUDSTIKKE_RECEIVER_HTTP", "http://127.0.0.1:9", 1);  // deliveries are not looked at
  setenv("BUDSTIKKE_RECEIVER_MLLP", "mllp://127.0.0.1:9", 1);
  setenv("BUDSTIKKE_OUTBOX", (tmp.path() / "outbox").c_str(), 1);
  const std::string src = testenv::source_dir().string();
  const auto routes = tmp.path() / "routes";
  std::filesystem::create_directories(routes);
  std::ofstream(routes / "picky.yaml")
      << "name: picky\nfrom: [admission]\n"
         "filter: 'not exists(body.note) or matches(body.note, \"(a*)*b\")'\n"
         "render: [json]\nto: [kjernejournal]\nreceipts: none\n";
  std::ofstream(routes / "to-hl7.yaml") << "name: to-hl7\nfrom: [admission]\n"
                                           "filter: 'format == \"kith\"'\n"
                                           "render: [hl7v2/2.5]\nto: [nordvik-barn]\n"
                                           "receipts: none\n";
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      "routes: " + routes.string() + "\nsystems: " + src + "/config/systems.yaml\n");
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");

  bus::KafkaSettings ks;
  ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
  Event poison;
  poison.type = EventType::kAdmission;
  poison.event_id = "poison-event-1";
  poison.received_at = "2026-12-07T20:00:00.000Z";
  poison.key = "p:poison";
  poison.source.format = "kith";
  poison.source.message_id = "POISON-1";
  poison.body = {{"note", std::string(40, 'a')}, {"patient", 5}, {"visit", "x"}};
  auto producer = bus::Producer::create(ks);
  ASSERT_TRUE(producer);
  ASSERT_TRUE((*producer)->send_sync({engine.prefix() + canonical_topic(EventType::kAdmission),
                                      poison.key,
                                      to_json_string(poison),
                                      {},
                                      -1}));
  constexpr int kGood = 5;
  {
    testenv::MllpClient client("127.0.0.1", engine.mllp_port());
    ASSERT_TRUE(client.connect());
    for (int i = 0; i < kGood; ++i) {
      auto ack = client.send(adt_for("AFTER-POISON-" + std::to_string(i), 8100 + i), 30s);
      ASSERT_TRUE(ack && ack->find("|AA|") != std::string::npos) << (ack ? *ack : "no ACK");
    }
  }

  // The routes' tracking records, per route and state, and the poison's own.
  std::map<std::string, int> states;
  std::string poison_picky, poison_hl7;
  const auto read_tracking = [&] {
    states.clear();
    (void)bus::scan_topics(ks, {engine.prefix() + "tracking"}, [&](const bus::Message& m) {
      const auto j = nlohmann::json::parse(m.value(), nullptr, false);
      if (!j.is_object() || !j.contains("route")) return true;
      const std::string route = j.value("route", ""), state = j.value("state", "");
      ++states[route + " " + state];
      // The route stage's own records (the delivery stage tracks the same event's jobs too).
      if (j.value("event_id", "") == "poison-event-1" && (state == "routed" || state == "unrouted"))
        (route == "picky" ? poison_picky : poison_hl7) = std::string(m.value());
      return true;
    });
  };
  const auto until = std::chrono::steady_clock::now() + 60s;
  for (;;) {
    read_tracking();
    if ((states["picky routed"] >= kGood && !poison_picky.empty() && !poison_hl7.empty()) ||
        std::chrono::steady_clock::now() > until)
      break;
    std::this_thread::sleep_for(200ms);
  }
  EXPECT_EQ(states["picky routed"], kGood) << "the events behind the poison were not routed";
  EXPECT_EQ(states["picky unrouted"], 1);
  EXPECT_NE(poison_picky.find("\"state\":\"unrouted\""), std::string::npos) << poison_picky;
  EXPECT_NE(poison_picky.find("route picky: matches(\\\"(a*)*b\\\") could not decide on a text "
                              "of 40 bytes"),
            std::string::npos)
      << poison_picky;
  EXPECT_NE(poison_hl7.find("\"state\":\"routed\""), std::string::npos) << poison_hl7;
  EXPECT_NE(poison_hl7.find("\"system\":\"nordvik-barn\""), std::string::npos) << poison_hl7;
  EXPECT_EQ(states["to-hl7 routed"], 1);  // the MLLP events are hl7v2: not this route's

  // The failure is on route.failed, once, with the route and the reason.
  std::vector<std::string> failed;
  (void)bus::scan_topics(ks, {engine.prefix() + "route.failed"}, [&](const bus::Message& m) {
    failed.emplace_back(m.value());
    return true;
  });
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].find("\"route\":\"picky\""), std::string::npos) << failed[0];
  EXPECT_NE(failed[0].find("could not decide"), std::string::npos) << failed[0];
  // One engine from start to end: it neither hung nor died on the way.
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

namespace {

// Mixed ADT and ORU over 8 MLLP connections through the shipped routes, with a down and a
// slow department; `route_jobs`: the engine runs with delivery.job_topics: route.
void mixed_run(long total, bool route_jobs) {
  const std::string down = "solheim-onkologi", slow = "nordvik-barn";
  testenv::TempDir tmp;
  testenv::HttpReceiver http;
  testenv::MllpReceiver mllp;
  http.keep_payloads(false);
  mllp.keep_payloads(false);
  mllp.set_policy([&](const std::string& s) {
    return s == down ? testenv::Answer::kLater : testenv::Answer::kAccept;
  });
  mllp.set_delay([&](const std::string& s) {
    return s == slow ? std::chrono::milliseconds(5000) : std::chrono::milliseconds(0);
  });
  setenv("BUDSTIKKE_RECEIVER_HTTP", http.base_url().c_str(), 1);
  setenv("BUDSTIKKE_RECEIVER_MLLP", mllp.url().c_str(), 1);
  setenv("BUDSTIKKE_OUTBOX", (tmp.path() / "outbox").c_str(), 1);
  setenv("BUDSTIKKE_RETRY_ATTEMPTS", "4", 1);
  setenv("BUDSTIKKE_RETRY_BACKOFF_MS", "20", 1);
  const std::string src = testenv::source_dir().string();
  testenv::EngineProcess engine(
      tmp.path() / "engine",
      shipped_config((route_jobs ? "delivery:\n  job_topics: route\n" : "")));
  ASSERT_TRUE(engine.start()) << testenv::read_file(tmp.path() / "engine/engine-1.log");

  constexpr int kConns = 8;
  std::atomic<long> next{0}, adts{0};
  std::vector<std::thread> senders;
  const auto t0 = std::chrono::steady_clock::now();
  senders.reserve(kConns);
  for (int c = 0; c < kConns; ++c) {
    senders.emplace_back([&] {
      testenv::MllpClient client("127.0.0.1", engine.mllp_port());
      ASSERT_TRUE(client.connect());
      for (long i = next++; i < total; i = next++) {
        const bool adt = i % 5 == 0;
        const std::string id = (adt ? "MIX-ADT-" : "MIX-ORU-") + std::to_string(i);
        const std::string m = adt ? adt_for(id, i) : oru_for(id, i);
        for (;;) {
          auto ack = client.send(m, 30s);
          if (ack && ack->find("|AA|") != std::string::npos) break;
          if (!client.connected()) client.connect();
        }
        if (adt) ++adts;
      }
    });
  }
  for (auto& t : senders) t.join();
  const long n_adt = adts.load(), n_oru = total - n_adt;
  const double ingest_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  auto kj = [&] { return count(engine.prefix() + "national.kjernejournal"); };
  auto healthy_done = [&] {
    const auto counts = mllp.counts();
    for (const auto& d : departments())
      if (d != down && d != slow && (counts.count(d) ? counts.at(d) : 0) < n_adt) return false;
    return http.counts()["nordvik-dips"] >= n_oru && kj() >= n_adt &&
           count(engine.prefix() + "dlq." + down) >= n_adt;
  };
  const auto deadline = std::chrono::steady_clock::now() + 900s;
  while (!healthy_done() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(500ms);
  const double total_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // The tally per system.
  const auto counts = mllp.counts();
  long healthy_missing = 0, healthy_extra = 0;
  std::string report;
  for (const auto& d : departments()) {
    const long got = counts.count(d) ? counts.at(d) : 0;
    if (d == down) {
      EXPECT_EQ(got, 0) << d;
    } else if (d != slow) {
      healthy_missing += std::max(0L, n_adt - got);
      healthy_extra += std::max(0L, got - n_adt);
    }
  }
  const long dips = http.counts()["nordvik-dips"];
  healthy_missing += std::max(0L, n_oru - dips);
  healthy_extra += std::max(0L, dips - n_oru);
  for (const auto& [s, n] : http.counts())
    EXPECT_TRUE(s == "nordvik-dips") << "unexpected HTTP deliveries to " << s;
  for (const auto& [s, n] : counts) {
    const auto& d = departments();
    EXPECT_TRUE(std::find(d.begin(), d.end(), s) != d.end()) << "unexpected MLLP system " << s;
  }
  const int64_t dlq = count(engine.prefix() + "dlq." + down);
  // The slow system's jobs: on its topic, delivered, or one per connection still being sent
  // (5 s each), which the wait lets finish.
  int64_t slow_topic = 0;
  long slow_got = 0;
  for (const auto until = std::chrono::steady_clock::now() + 20s;;) {
    slow_topic = count(engine.prefix() + "deliver." + slow);
    const auto now_counts = mllp.counts();
    slow_got = now_counts.count(slow) ? now_counts.at(slow) : 0;
    if (!route_jobs || slow_topic + slow_got >= n_adt || std::chrono::steady_clock::now() > until)
      break;
    std::this_thread::sleep_for(500ms);
  }
  EXPECT_EQ(healthy_missing, 0);
  EXPECT_GE(kj(), n_adt);
  EXPECT_GE(dlq, n_adt);
  if (route_jobs) {
    // Every job went through the route's topic; the slow system's moved to its own topic
    // (it cannot take more than a few in the time), and none vanished on the way.
    EXPECT_GE(count(engine.prefix() + "jobs.adt-fanout"), 21 * n_adt);
    EXPECT_GE(count(engine.prefix() + "jobs.lab-result-to-requester"), n_oru);
    EXPECT_GE(slow_topic, n_adt / 2) << "the slow system's waiting jobs moved to its topic";
    EXPECT_GE(slow_topic + slow_got, n_adt) << "a job for the slow system vanished";
  } else {
    EXPECT_GE(slow_topic, n_adt) << "every job for the slow system is on its topic";
  }
  EXPECT_EQ(count(engine.prefix() + "route.failed"), 0);
  if (route_jobs) {
    // A job on a route topic for a system the registry does not have: on route.failed, with
    // the reason and the job, and its offset counts as done.
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    auto producer = bus::Producer::create(ks);
    ASSERT_TRUE(producer);
    const bus::Record stray{engine.prefix() + "jobs.adt-fanout",
                            "p:stray",
                            "MSH|^~\\&|stray",
                            {{"bs-job-id", "stray-job"}, {"bs-system", "no-such-system"}},
                            -1};
    const auto at = (*producer)->send_sync(stray);
    ASSERT_TRUE(at);
    const auto until = std::chrono::steady_clock::now() + 30s;
    while (count(engine.prefix() + "route.failed") < 1 && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(100ms);
    std::string failed;
    (void)bus::scan_topics(ks, {engine.prefix() + "route.failed"}, [&](const bus::Message& m) {
      failed = std::string(m.value());
      return true;
    });
    EXPECT_NE(failed.find("\"reason\":\"job for 'no-such-system', not in the registry\""),
              std::string::npos)
        << failed;
    EXPECT_NE(failed.find("\"job_id\":\"stray-job\""), std::string::npos) << failed;
    // Every job of the route topic has completed (delivered, dead-lettered, moved or
    // failed): the delivery group has committed each partition to its end (past its last
    // record; a transaction's closing marker may follow that).
    int64_t behind = -1;
    const std::string topic = engine.prefix() + "jobs.adt-fanout";
    while (std::chrono::steady_clock::now() < until + 30s) {
      auto offs = bus::group_offsets(ks, engine.prefix() + "budstikke-delivery", {topic});
      behind = -1;
      if (offs && !offs->empty()) {
        behind = 0;
        for (const auto& p : *offs) {
          // The stray job's partition: past it exactly (nothing follows it).
          const int64_t end = p.partition == at->partition ? at->offset + 1 : p.high - 1;
          if (p.committed < end) behind += end - std::max(p.committed, p.low);
        }
      }
      if (behind == 0) break;
      std::this_thread::sleep_for(200ms);
    }
    EXPECT_EQ(behind, 0) << "the delivery group has not committed " << topic << " to its end";
  }
  std::printf(
      "%s e2e: %ld messages (%ld ADT, %ld ORU) ingested in %.1f s; healthy systems complete "
      "after %.1f s: 18 departments x %ld ADT + nordvik-dips %ld/%ld ORU, kjernejournal %lld; "
      "missing %ld, extra (redelivered) %ld; down %s: dlq %lld of %ld; slow %s: %ld delivered, "
      "%lld jobs on its topic\n",
      route_jobs ? "job_topics route" : "50k", total, n_adt, n_oru, ingest_s, total_s, n_adt, dips,
      n_oru, static_cast<long long>(kj()), healthy_missing, healthy_extra, down.c_str(),
      static_cast<long long>(dlq), n_adt, slow.c_str(), slow_got,
      static_cast<long long>(slow_topic));
  EXPECT_EQ(engine.stop(SIGTERM), 0);
}

}  // namespace

// The full run: 50,000 mixed messages (BUDSTIKKE_E2E_MESSAGES to change it) through
// the shipped registry and routes, one ADT (to 20 department systems over MLLP and to
// Kjernejournal's topic) for every four lab results (to the hospital system over HTTP).
// One department system answers AE to everything (down): its jobs must all reach its DLQ
// after their retries. Another takes 5 s per message (slow): its jobs must all be on its
// delivery topic (none lost; it works through them at its own pace). Every other system
// must have received exactly what the routes send it, counted per system.
TEST(RoutesE2E, FiftyThousandMixedMessagesWithADownAndASlowSystem) {
  const char* n = std::getenv("BUDSTIKKE_E2E_MESSAGES");
  mixed_run(n ? std::atol(n) : 50000, false);
}

// The same with a topic per route (delivery.job_topics: route): the slow system's jobs move
// to deliver.<system>, the healthy systems get everything, the down one's reach its DLQ.
TEST(RoutesE2E, RouteJobTopicsMoveASlowSystemsJobsAndLoseNothing) {
  const char* n = std::getenv("BUDSTIKKE_E2E_MESSAGES");
  mixed_run(n ? std::min(std::atol(n), 10000L) : 10000, true);
}

// Several engines share the work of one route set through Kafka's consumer groups, each
// under its own kafka.instance (its transactional ids and its static group membership). Two
// engines route and deliver together without fencing each other; a third started under a
// name in use takes that engine's place, and the engine it replaced stops by itself with
// exit code 1 and says why. Nothing is lost on the way.
TEST(RoutesE2E, EnginesShareTheWorkAndOneStartedUnderATakenNameReplacesItsNamesake) {
  testenv::TempDir tmp;
  Receiver receiver(tmp.path() / "received", "none");
  ASSERT_GT(receiver.http_port, 0) << testenv::read_file(tmp.path() / "received/receiver.err");
  receiver.export_env(tmp.path() / "outbox");
  const std::string token = "e2e-admin-token-0123456789";
  std::vector<std::unique_ptr<testenv::EngineProcess>> engines;
  auto add_engine = [&](const std::string& dir, const std::string& instance,
                        const std::string& prefix) {
    engines.push_back(std::make_unique<testenv::EngineProcess>(
        tmp.path() / dir, shipped_config("admin:\n  port: 0\n  token: " + token + "\n"),
        "  instance: " + instance + "\n", prefix));
    return engines.back().get();
  };
  auto* a = add_engine("a", "e2e-a", "");
  auto* b = add_engine("b", "e2e-b", a->prefix());
  ASSERT_TRUE(a->start()) << testenv::read_file(tmp.path() / "a/engine-1.log");
  ASSERT_TRUE(b->start()) << testenv::read_file(tmp.path() / "b/engine-1.log");
  // Both joined every group before the load comes (a rebalance under load may repeat a
  // delivery, which is allowed, but this test counts exactly).
  std::this_thread::sleep_for(5s);

  const std::string src = testenv::source_dir().string();
  const std::string adt = testenv::read_file(src + "/examples/messages/adt-a01-admission.hl7");
  const std::string oru = testenv::read_file(src + "/examples/messages/oru-r01-lab-result.hl7");
  std::map<std::string, std::set<std::string>> expected;
  // Each message for another patient: the key (of the patient) picks the partition, and so
  // the engine that routes it.
  long long patient = 20000000000LL;
  auto send = [&](testenv::EngineProcess& e, const std::string& tag, int n) {
    for (int i = 0; i < n; ++i) {
      const std::string adt_id = tag + "-ADT-" + std::to_string(i);
      const std::string oru_id = tag + "-ORU-" + std::to_string(i);
      e.drop(adt_id + ".hl7", replace_all(replace_all(adt, "NORDVIK-ADT-0001", adt_id),
                                          "12837512393", std::to_string(++patient)));
      e.drop(oru_id + ".hl7", replace_all(replace_all(oru, "NORDVIK-LAB-0001", oru_id),
                                          "12837512393", std::to_string(++patient)));
      for (const auto& d : departments()) expected[d].insert(adt_id);
      expected["nordvik-dips"].insert(oru_id);
    }
  };
  // system -> id -> times, of the ids expected; all expected ids there.
  auto tally = [&](size_t& missing, size_t& duplicates) {
    missing = duplicates = 0;
    const auto got = receiver.deliveries();
    for (const auto& [s, ids] : expected) {
      const auto it = got.find(s);
      for (const auto& id : ids) {
        const int n = it == got.end() || !it->second.count(id) ? 0 : it->second.at(id);
        if (n == 0) ++missing;
        if (n > 1) duplicates += static_cast<size_t>(n - 1);
      }
    }
  };
  auto wait_all = [&] {
    size_t missing = 1, duplicates = 0;
    const auto t0 = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - t0 < 180s) {
      tally(missing, duplicates);
      if (missing == 0) break;
      std::this_thread::sleep_for(100ms);
    }
    return std::pair(missing, duplicates);
  };

  send(*a, "SHARE-A", 40);
  send(*b, "SHARE-B", 40);
  auto [missing, duplicates] = wait_all();
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(duplicates, 0u);
  // Each engine routed events of both inboxes' topics and delivered to its share of the
  // systems.
  std::vector<double> routed, delivered;
  for (size_t i = 0; i < 2; ++i) {
    const std::string m =
        testenv::http_request("GET", "127.0.0.1", engines[i]->admin_port(), "/metrics", token).body;
    routed.push_back(testenv::metric_total(m, "budstikke_route_events_total"));
    delivered.push_back(testenv::metric_total(m, "budstikke_delivered_total"));
    // Routed events went out in transactions, a batch of one or more events each.
    const double transactions = testenv::metric_total(m, "budstikke_route_transactions_total");
    EXPECT_GT(transactions, 0) << "engine " << i;
    EXPECT_LE(transactions, routed.back()) << "engine " << i;
  }
  std::printf(
      "two engines: events routed %.0f + %.0f, jobs delivered %.0f + %.0f; %zu missing, "
      "%zu duplicates\n",
      routed[0], routed[1], delivered[0], delivered[1], missing, duplicates);
  EXPECT_GT(routed[0], 0);
  EXPECT_GT(routed[1], 0);
  EXPECT_GT(delivered[0], 0);
  EXPECT_GT(delivered[1], 0);
  for (const char* log : {"a/engine-1.log", "b/engine-1.log"}) {
    const std::string text = testenv::read_file(tmp.path() / log);
    EXPECT_EQ(text.find("fenced"), std::string::npos) << log << ":\n" << text.substr(0, 3000);
  }
  // The tracking records say which engine took each step.
  {
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = testenv::kafka_bootstrap();
    std::map<std::string, std::map<std::string, int>> by_state;  // state -> engine -> records
    ASSERT_TRUE(bus::scan_topics(
        ks, {a->prefix() + "tracking"},
        [&](const bus::Message& m) {
          const auto t = nlohmann::json::parse(m.value(), nullptr, false);
          if (t.is_object()) ++by_state[t.value("state", "")][t.value("engine", "(none)")];
          return true;
        },
        std::chrono::milliseconds(30000)));
    for (const char* state : {"received", "routed", "delivered"}) {
      const auto& by = by_state[state];
      std::printf("  %s records: e2e-a %d, e2e-b %d, without an engine %d\n", state,
                  by.count("e2e-a") ? by.at("e2e-a") : 0, by.count("e2e-b") ? by.at("e2e-b") : 0,
                  by.count("(none)") ? by.at("(none)") : 0);
      EXPECT_TRUE(by.count("e2e-a") && by.count("e2e-b")) << state;
      EXPECT_EQ(by.count("(none)"), 0u) << state;
    }
  }

  // A third engine under b's name: b stops by itself, c does b's share from then on.
  auto* c = add_engine("c", "e2e-b", a->prefix());
  ASSERT_TRUE(c->start()) << testenv::read_file(tmp.path() / "c/engine-1.log");
  const auto b_exit = b->wait_exit(60s);
  const std::string b_log = testenv::read_file(tmp.path() / "b/engine-1.log");
  ASSERT_TRUE(b_exit.has_value()) << "b still runs:\n" << b_log.substr(b_log.size() - 3000);
  EXPECT_EQ(*b_exit, 1);
  EXPECT_NE(b_log.find("another engine runs as kafka.instance 'e2e-b'"), std::string::npos)
      << b_log.substr(b_log.size() > 3000 ? b_log.size() - 3000 : 0);
  send(*a, "AFTER-A", 20);
  send(*c, "AFTER-C", 20);
  std::tie(missing, duplicates) = wait_all();
  std::printf("after c replaced b: %zu missing, %zu duplicates (over both rounds)\n", missing,
              duplicates);
  EXPECT_EQ(missing, 0u);
  EXPECT_EQ(count(a->prefix() + "route.failed"), 0);
  EXPECT_EQ(a->stop(SIGTERM), 0);
  EXPECT_EQ(c->stop(SIGTERM), 0);
}
