#pragma once
// Runs `budstikke run` as a child process against the test broker, with its own topic
// prefix, inbox folder and HTTP port, for end-to-end tests.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "engine/bus/bus.hpp"
#include "tests/support/test_env.hpp"

namespace budstikke::testenv {

inline int free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

class EngineProcess {
 public:
  // `extra_yaml` is appended to engine.yaml (e.g. routes: and systems: for routing tests);
  // each `{extra_port}` in it becomes a third free port (extra_port()), picked again with the
  // others when a start finds a port taken.
  // `kafka_yaml`, indented lines, goes into its kafka section (e.g. "  instance: a\n").
  // `prefix`: the topic prefix of another engine (several engines sharing the work); empty:
  // a new one, whose topics this object deletes when it ends (after its engine has stopped).
  explicit EngineProcess(const std::filesystem::path& dir, const std::string& extra_yaml = "",
                         const std::string& kafka_yaml = "", const std::string& prefix = "")
      : dir_(dir),
        prefix_(prefix.empty() ? "e2e." + unique_suffix() + "." : prefix),
        owns_prefix_(prefix.empty()),
        extra_yaml_(extra_yaml),
        kafka_yaml_(kafka_yaml) {
    std::filesystem::create_directories(dir_ / "inbox");
    pick_ports();
    write_config();
  }
  // A broker that runs the whole suite would otherwise keep every test's topics (some 2,800
  // partitions; a broker carrying them measures far slower, BENCHMARKS.md session 36). The
  // test's assertions have run by now; an engine sharing this prefix and ending later stops
  // on a missing topic, which no test reads any more.
  ~EngineProcess() {
    stop(SIGKILL);
    if (owns_prefix_ && starts_ > 0) delete_topics();
  }

  std::filesystem::path config() const { return dir_ / "engine.yaml"; }
  std::filesystem::path inbox() const { return dir_ / "inbox"; }
  const std::string& prefix() const { return prefix_; }
  // Deletes every topic under this engine's prefix: with the shipped registry an engine makes
  // ~400 (deliver. and dlq. per system), which a broker shared by many runs must not keep.
  // The destructor calls it for an engine that made its prefix; calling it again finds none.
  void delete_topics() const {
    if (keep_artifacts()) {
      std::fprintf(stderr, "BUDSTIKKE_TEST_KEEP: kept the topics under '%s'\n", prefix_.c_str());
      return;
    }
    bus::KafkaSettings ks;
    ks.properties["bootstrap.servers"] = kafka_bootstrap();
    if (auto mine = bus::topics_with_prefix(ks, prefix_)) (void)bus::delete_topics(ks, *mine);
  }
  int port() const { return port_; }
  int mllp_port() const { return mllp_port_; }
  int extra_port() const { return extra_port_; }
  // The admin API's port as the running engine printed it (`admin: port: 0` picks a free
  // one); 0 when it printed none.
  int admin_port() const {
    const std::string said = slurp(out_path());
    const std::string mark = "admin API on http://127.0.0.1:";
    const auto at = said.find(mark);
    return at == std::string::npos ? 0 : std::atoi(said.c_str() + at + mark.size());
  }
  pid_t pid() const { return pid_; }

  // Starts the engine and waits until it says it runs. A port picked by free_port() can be
  // taken by someone else before the engine binds it (another socket's ephemeral port, the
  // engine's own Kafka connections among them): then new ports are picked and it starts again,
  // writing the same engine-N.out and engine-N.log (the tests read them by the start's number).
  // Any other failure prints what the engine wrote, so that a CI log says why.
  bool start() {
    ++starts_;
    for (int attempt = 1;; ++attempt) {
      if (start_once()) return true;
      stop(SIGKILL);  // if it still runs (it did not say so within the limit)
      const std::string said = slurp(out_path()) + slurp(log_path());
      if (attempt < 3 && said.find("Address already in use") != std::string::npos) {
        std::fprintf(stderr, "EngineProcess: a port was taken, starting again on new ports:\n%s\n",
                     said.c_str());
        pick_ports();
        write_config();
        continue;
      }
      std::fprintf(stderr, "EngineProcess: the engine did not start; it wrote:\n%s\n",
                   said.c_str());
      return false;
    }
  }

  // SIGTERM: graceful; SIGKILL: a crash. Returns the exit status (or -signal).
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return 0;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return WEXITSTATUS(status);
  }

  // Waits up to `timeout` for the engine to exit by itself; its exit status (or -signal),
  // or nullopt while it still runs.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    while (pid_ > 0) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
      }
      if (std::chrono::steady_clock::now() >= until) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return std::nullopt;
  }

  // Drops a file into the inbox the safe way: write to a dotfile, then rename.
  void drop(const std::string& name, const std::string& bytes) const {
    const auto tmp = inbox() / ("." + name + ".tmp");
    {
      std::ofstream o(tmp, std::ios::binary);
      o << bytes;
    }
    std::filesystem::rename(tmp, inbox() / name);
  }

  // What the current start's engine wrote to its log so far (for a failing test's report).
  std::string log_text() const { return slurp(log_path()); }

  size_t files_in(const std::string& sub) const {
    size_t n = 0;
    std::error_code ec;
    const auto p = sub.empty() ? inbox() : inbox() / sub;
    for (const auto& e : std::filesystem::directory_iterator(p, ec)) {
      const auto name = e.path().filename().string();
      if (e.is_regular_file() && name[0] != '.' && name.find(".reason") == std::string::npos) ++n;
    }
    return n;
  }

 private:
  std::filesystem::path out_path() const {
    return dir_ / ("engine-" + std::to_string(starts_) + ".out");
  }
  std::filesystem::path log_path() const {
    return dir_ / ("engine-" + std::to_string(starts_) + ".log");
  }
  static std::string slurp(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  void write_config() const {
    // The admin API on a free port unless the test configures it: its default, 8081, may be
    // held by a developer's engine or by an engine another test has not finished stopping.
    const bool own_admin =
        extra_yaml_.rfind("admin:", 0) == 0 || extra_yaml_.find("\nadmin:") != std::string::npos;
    std::ofstream(config()) << "kafka:\n  bootstrap_servers: " << kafka_bootstrap()
                            << "\n  topic_prefix: \"" << prefix_ << "\"\n"
                            << kafka_yaml_ << "privacy:\n  key_secret: e2e-test-secret-0123456789\n"
                            << "  claim_check_dir: " << (dir_ / "claims").string() << "\n"
                            << "schemas:\n  directory: " << (standards_dir() / "xsd").string()
                            << "\n"
                            << "log:\n  level: info\n"
                            << (own_admin ? "" : "admin:\n  port: 0\n") << "sources:\n"
                            << "  - name: inbox\n    type: folder\n    path: " << inbox().string()
                            << "\n    poll_interval_ms: 50\n    retry_interval_ms: 500\n"
                            << "  - name: http\n    type: http\n    port: " << port_ << "\n"
                            << "  - name: mllp\n    type: mllp\n    port: " << mllp_port_ << "\n"
                            << with_extra_port(extra_yaml_);
  }

  std::string with_extra_port(std::string yaml) const {
    static constexpr std::string_view kMark = "{extra_port}";
    const std::string port = std::to_string(extra_port_);
    for (auto at = yaml.find(kMark); at != std::string::npos; at = yaml.find(kMark, at))
      yaml.replace(at, kMark.size(), port);
    return yaml;
  }

  bool start_once() {
    const auto out = out_path();
    const auto err = log_path();
    const std::string bin = (binary_dir() / "bin/budstikke").string();
    std::fflush(stdout);
    std::fflush(stderr);
    pid_ = fork_ending_with_parent(SIGTERM);  // a graceful stop: it ends its transactions
    if (pid_ == 0) {
      freopen(out.c_str(), "w", stdout);
      freopen(err.c_str(), "w", stderr);
      execl(bin.c_str(), bin.c_str(), "run", "-c", config().c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    // Up to two minutes: with a registry the engine first creates ~400 delivery topics.
    for (int i = 0; i < 2400; ++i) {
      if (slurp(out).find("running on") != std::string::npos) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  void pick_ports() {
    port_ = free_port();
    do mllp_port_ = free_port();
    while (mllp_port_ == port_);
    do extra_port_ = free_port();
    while (extra_port_ == port_ || extra_port_ == mllp_port_);
  }

  std::filesystem::path dir_;
  std::string prefix_;
  bool owns_prefix_;
  std::string extra_yaml_;
  std::string kafka_yaml_;
  int port_ = 0;
  int mllp_port_ = 0;
  int extra_port_ = 0;
  pid_t pid_ = -1;
  int starts_ = 0;
};

}  // namespace budstikke::testenv
