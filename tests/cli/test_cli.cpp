// The budstikke commands on bad input: a missing file, invalid YAML, an unknown route, a bad
// argument, a broker that is down. Each answers with a clear message and a non-zero exit
// code; none crashes or prints a stack trace. (Unknown message ids and unknown systems on a
// running broker are covered in e2e_ops.)

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "engine/core/redact.hpp"
#include "tests/support/test_env.hpp"

namespace budstikke {
namespace {

namespace fs = std::filesystem;

struct CmdResult {
  int code = -1;  // exit code; -1 when killed by a signal
  std::string out;
};

CmdResult run(const std::string& args) {
  const std::string bin = (testenv::binary_dir() / "bin/budstikke").string();
  CmdResult r;
  FILE* p = popen((bin + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, p)) r.out.append(buf, n);
  const int status = pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// No crash, no stack trace or exception text, and a non-zero exit code.
void expect_clean_failure(const CmdResult& r, int code, const std::string& says) {
  EXPECT_EQ(r.code, code) << r.out;
  EXPECT_NE(r.out.find(says), std::string::npos) << "expected '" << says << "' in:\n" << r.out;
  for (const char* bad : {"terminate called", "Aborted", "Segmentation", "what():", "#0 ",
                          "AddressSanitizer", "core dumped"})
    EXPECT_EQ(r.out.find(bad), std::string::npos) << r.out;
  EXPECT_FALSE(contains_identity_number(r.out)) << r.out;
}

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bs-cli-" + testenv::unique_suffix());
    fs::create_directories(dir_);
    const std::string src = testenv::source_dir().string();
    // A config whose broker is down (nothing listens on port 1).
    std::ofstream(dir_ / "down.yaml")
        << "kafka:\n  bootstrap_servers: 127.0.0.1:1\nprivacy:\n  key_secret: "
           "cli-test-secret-0123456789\nschemas:\n  directory: "
        << (testenv::standards_dir() / "xsd").string() << "\nroutes: " << src
        << "/routes\nsystems: " << src
        << "/config/systems.yaml\naudit:\n  file: " << (dir_ / "audit.log").string() << "\n";
    std::ofstream(dir_ / "broken.yaml") << "kafka:\n  bootstrap_servers: [unclosed\n";
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string cfg(const char* name = "down.yaml") const { return " -c " + (dir_ / name).string(); }
  fs::path dir_;
};

TEST_F(Cli, MissingConfigFile) {
  for (const char* cmd : {"track x", "replay --all", "audit --patient 12345678901", "test",
                          "dry-run --route r f", "lint", "run"}) {
    SCOPED_TRACE(cmd);
    const CmdResult r = run(std::string(cmd) + " -c " + (dir_ / "nope.yaml").string());
    EXPECT_NE(r.code, 0) << r.out;
    EXPECT_NE(r.code, -1) << r.out;
    EXPECT_NE(r.out.find("nope.yaml"), std::string::npos) << r.out;
  }
}

TEST_F(Cli, InvalidYamlConfig) {
  for (const char* cmd : {"track x", "replay --all", "test", "dry-run --route r f"}) {
    SCOPED_TRACE(cmd);
    const CmdResult r = run(std::string(cmd) + cfg("broken.yaml"));
    expect_clean_failure(r, 2, "broken.yaml:");
  }
}

TEST_F(Cli, UsageErrors) {
  expect_clean_failure(run("track"), 2, "usage: budstikke track");
  expect_clean_failure(run("replay" + cfg()), 2, "usage: budstikke replay");
  expect_clean_failure(run("replay --to nordvik-dips" + cfg()), 2, "--message-id");
  expect_clean_failure(run("replay --all --since yesterday" + cfg()), 2, "is not a time");
  expect_clean_failure(run("replay --route-failed --all" + cfg()), 2, "does not combine");
  expect_clean_failure(run("replay --route picky --all" + cfg()), 2, "goes with --route-failed");
  expect_clean_failure(run("replay --route-failed --route" + cfg()), 2, "needs a route name");
  expect_clean_failure(run("audit" + cfg()), 2, "usage: budstikke audit");
  expect_clean_failure(run("audit --patient 123" + cfg()), 2, "11 digits");
  expect_clean_failure(run("dry-run" + cfg()), 2, "usage: budstikke dry-run");
  expect_clean_failure(run("test --frobnicate" + cfg()), 2, "unknown option");
  expect_clean_failure(run("no-such-command"), 2, "unknown command");
}

TEST_F(Cli, UnknownRouteAndMissingMessageFile) {
  const std::string src = testenv::source_dir().string();
  expect_clean_failure(run("dry-run" + cfg() + " --route no-such-route " + src +
                           "/examples/messages/adt-a01-admission.hl7"),
                       2, "unknown route 'no-such-route'; routes: ");
  expect_clean_failure(
      run("dry-run" + cfg() + " --route adt-fanout " + (dir_ / "gone.hl7").string()), 2,
      "gone.hl7: cannot open file");
  // A rejected message: exit 1, with the reason.
  expect_clean_failure(run("dry-run" + cfg() + " --route dialog-both-ways " + src +
                           "/examples/messages/invalid-dialog-ident-order.xml"),
                       1, "REJECTED at ingest: T02");
}

TEST_F(Cli, RouteTestFilesWithErrors) {
  std::ofstream(dir_ / "bad.test.yaml") << "route: adt-fanout\ntests: [unclosed\n";
  expect_clean_failure(run("test" + cfg() + " " + (dir_ / "bad.test.yaml").string()), 2,
                       "bad.test.yaml:");
  std::ofstream(dir_ / "unknown.test.yaml")
      << "route: no-such-route\ntests:\n  - name: x\n    input_inline: x\n    expect: {}\n";
  expect_clean_failure(run("test" + cfg() + " " + (dir_ / "unknown.test.yaml").string()), 2,
                       "unknown.test.yaml:1:8: error: route: unknown route 'no-such-route'");
  std::ofstream(dir_ / "keys.test.yaml")
      << "route: adt-fanout\ntests:\n  - name: x\n    input_inline: x\n    expect:\n"
         "      delivered: {}\n";
  expect_clean_failure(run("test" + cfg() + " " + (dir_ / "keys.test.yaml").string()), 2,
                       "keys.test.yaml:6:7: error: tests[0].expect.delivered: unknown key");
  expect_clean_failure(run("test" + cfg() + " " + (dir_ / "missing.test.yaml").string()), 2,
                       "missing.test.yaml: error: no such file or folder");
}

// A failing route test shows what differed, and exits 1.
TEST_F(Cli, FailingRouteTestShowsTheDifference) {
  const std::string src = testenv::source_dir().string();
  std::ofstream(dir_ / "adt.test.yaml")
      << "route: adt-fanout\ntests:\n  - name: wrong expectations\n    input: " << src
      << "/examples/messages/adt-a01-admission.hl7\n    expect:\n      only: false\n"
         "      deliveries:\n        nordvik-barn:\n          hl7:\n            MSH-9-2: A03\n"
         "        nordvik-dips: {}\n";
  const CmdResult r = run("test" + cfg() + " " + (dir_ / "adt.test.yaml").string());
  expect_clean_failure(r, 1, "FAIL ");
  EXPECT_NE(r.out.find("nordvik-barn: MSH-9-2: expected 'A03', got 'A01'"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("expected a delivery to nordvik-dips, there was none"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("0 passed, 1 failed"), std::string::npos) << r.out;
}

// The shipped route tests pass (every example route has some).
TEST_F(Cli, ShippedRouteTestsPass) {
  const CmdResult r = run("test" + cfg());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(" passed, 0 failed"), std::string::npos) << r.out;
  const std::string src = testenv::source_dir().string();
  for (const auto& e : fs::directory_iterator(src + "/routes")) {
    const std::string n = e.path().filename().string();
    if (n.size() < 6 || n.substr(n.size() - 5) != ".yaml" || n.find(".test.") != std::string::npos)
      continue;
    const std::string test = n.substr(0, n.size() - 5) + ".test.yaml";
    EXPECT_NE(r.out.find("routes/" + test + ": "), std::string::npos)
        << "no passing test for route file " << n;
  }
}

TEST_F(Cli, DecodeSendLintOnBadInput) {
  const std::string src = testenv::source_dir().string();
  expect_clean_failure(run("decode " + (dir_ / "gone.xml").string()), 1,
                       "gone.xml: cannot read the file");
  expect_clean_failure(run("decode --schemas " + (testenv::standards_dir() / "xsd").string() + " " +
                           src + "/examples/messages/not-a-message.txt"),
                       1, "REJECTED");
  expect_clean_failure(run("send 127.0.0.1:1 " + (dir_ / "gone.hl7").string()), 2,
                       "gone.hl7: cannot read the file");
  expect_clean_failure(run("send 127.0.0.1:1 " + src + "/examples/messages/adt-a01-admission.hl7"),
                       1, "Connection refused");
  expect_clean_failure(run("send no-port x"), 2, "is not HOST:PORT");
  expect_clean_failure(run("lint " + (dir_ / "gone.yaml").string()), 1,
                       "gone.yaml: error: cannot open file");
  expect_clean_failure(run("lint" + cfg("broken.yaml")), 1, "broken.yaml:");
  const CmdResult v = run("version");
  EXPECT_EQ(v.code, 0);
  EXPECT_NE(v.out.find("budstikke "), std::string::npos);
  const CmdResult ref = run("config-reference");
  EXPECT_EQ(ref.code, 0);
  EXPECT_NE(ref.out.find("### admin"), std::string::npos) << ref.out.substr(0, 500);
}

// --schema-info says what was loaded, and how much of it the fast validator compiled.
TEST_F(Cli, DecodeSchemaInfo) {
  const std::string src = testenv::source_dir().string();
  const CmdResult r =
      run("decode --schema-info --schemas " + (testenv::standards_dir() / "xsd").string() + " " +
          src + "/examples/messages/svarrapport-lab-result.xml");
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find(" grammars from "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("fast validator: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" complex types ("), std::string::npos) << r.out;
}

TEST_F(Cli, BrokerDown) {
  expect_clean_failure(run("consume canonical.dialog" + cfg()), 1, "is not reachable");
  expect_clean_failure(run("track some-message" + cfg()), 1, "is not reachable");
  expect_clean_failure(run("replay --system nordvik-dips" + cfg()), 1, "is not reachable");
  expect_clean_failure(run("replay --route-failed" + cfg()), 1, "is not reachable");
  expect_clean_failure(run("audit --patient 12837512393 --topic-only" + cfg()), 1,
                       "no audit records could be read");
  expect_clean_failure(run("topics" + cfg()), 1, "is not reachable");
  // The engine itself: its own logs are JSON lines; the last line says why it stopped.
  const CmdResult r = run("run" + cfg());
  expect_clean_failure(r, 1, "budstikke run: Kafka at 127.0.0.1:1 is not reachable");
}

}  // namespace
}  // namespace budstikke
