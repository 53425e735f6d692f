#pragma once
// Helpers shared by tests: repository paths, the shared standards folder, temp dirs.

#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

namespace budstikke::testenv {

inline std::filesystem::path source_dir() {
  if (const char* s = std::getenv("BUDSTIKKE_SOURCE_DIR")) return s;
#ifdef BUDSTIKKE_SOURCE_DIR_DEFAULT
  return BUDSTIKKE_SOURCE_DIR_DEFAULT;
#else
  return std::filesystem::current_path();
#endif
}

inline std::filesystem::path binary_dir() {
  if (const char* s = std::getenv("BUDSTIKKE_BINARY_DIR")) return s;
#ifdef BUDSTIKKE_BINARY_DIR_DEFAULT
  return BUDSTIKKE_BINARY_DIR_DEFAULT;
#else
  return std::filesystem::current_path();
#endif
}

// ../shared/standards beside the checkout, or $BUDSTIKKE_STANDARDS.
inline std::filesystem::path standards_dir() {
  if (const char* s = std::getenv("BUDSTIKKE_STANDARDS")) return s;
  return source_dir().parent_path() / "shared" / "standards";
}

inline std::filesystem::path corpora_dir() {
  if (const char* s = std::getenv("BUDSTIKKE_CORPORA")) return s;
  return source_dir().parent_path() / "shared" / "corpora";
}

// BUDSTIKKE_TEST_KEEP=1 keeps what a test leaves behind (its temporary directory with the
// engine's logs, its topics) for a look afterwards; the path is printed.
inline bool keep_artifacts() {
  const char* k = std::getenv("BUDSTIKKE_TEST_KEEP");
  return k && *k && std::string(k) != "0";
}

// Bootstrap address of the local test broker (scripts/kafka), or $BUDSTIKKE_KAFKA.
inline std::string kafka_bootstrap() {
  if (const char* s = std::getenv("BUDSTIKKE_KAFKA")) return s;
  return "127.0.0.1:19092";
}

// A child process a test or benchmark forks (an engine, a fake receiver) must not outlive it:
// one killed by a signal skips the destructors that stop its children, and a left-over
// engine goes on using the CPU, its ports and the broker under the next run. fork() through
// this: the kernel then sends the child `sig` when the process that forked it ends, however
// it ends. The kernel ties that to the forking *thread*, so it is only armed when that is
// the process's main thread (whose end is the process's end); a child forked from another
// thread is stopped by its owner's destructor alone.
inline pid_t fork_ending_with_parent(int sig) {
  const pid_t parent = getpid();
  const bool main_thread = gettid() == parent;
  const pid_t pid = fork();
  if (pid == 0 && main_thread) {
    (void)prctl(PR_SET_PDEATHSIG, sig);
    // The parent may have ended between fork() and prctl(): then nothing would send it.
    if (getppid() != parent) _exit(128 + sig);
  }
  return pid;
}

class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("budstikke-test-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    if (keep_artifacts()) {
      std::fprintf(stderr, "BUDSTIKKE_TEST_KEEP: kept %s\n", path_.c_str());
      return;
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream o;
  o << in.rdbuf();
  return o.str();
}

inline std::string unique_suffix() {
  std::random_device rd;
  return std::to_string(rd()) + std::to_string(rd());
}

// n characters of seeded random base64 text: no codec shrinks it (kafka.compression is lz4 by
// default), so a record padded with it is as large on the wire as in memory.
inline std::string incompressible(size_t n) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::mt19937_64 rng(20261206);
  std::string out(n, ' ');
  for (auto& c : out) c = kAlphabet[rng() % 64];
  return out;
}

}  // namespace budstikke::testenv
