#pragma once
// CPU time of local processes, for benchmarks that report what a figure cost: the engine's,
// the broker's and the benchmark's own CPU over a measured phase.
//
// The whole process is read from /proc/PID/stat (utime + stime of every thread, also of
// threads that have ended, such as a benchmark's load threads), taken right before and right
// after the phase: what matters is the window, not the counter. Session 25 found a measuring
// script that read the counters around a listing of ~120 threads (one file each) and divided
// by its nominal 5 s, overstating the engine's cores by 30-50%.

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

namespace budstikke::testenv {

// Nanoseconds of CPU the process `pid` has used (all its threads, including ended ones, in
// clock ticks: 10 ms, well below a benchmark phase), or -1 when it cannot be read.
inline int64_t process_cpu_ns(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return -1;
  // After "pid (comm) ": state, then fields 4..13; utime and stime are fields 14 and 15. The
  // name may hold spaces and parentheses, so the fields start after its last ')'.
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream f(stat.substr(close + 2));
  std::string skip;
  for (int i = 3; i < 14; ++i) f >> skip;
  long long utime = 0, stime = 0;
  if (!(f >> utime >> stime)) return -1;
  const long hz = sysconf(_SC_CLK_TCK);
  return (utime + stime) * (1000000000LL / (hz > 0 ? hz : 100));
}

// The machine's CPU time in clock ticks, all CPUs together, from /proc/stat's first line:
// the whole, the idle part (idle + iowait) and the part the hypervisor gave to others
// (steal). Two readings around a phase say how busy the machine was and whether a slow run
// was the host's doing. All zero when it cannot be read.
struct MachineTicks {
  int64_t total = 0, idle = 0, steal = 0;
};
inline MachineTicks machine_ticks() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  int64_t f[10] = {};  // user nice system idle iowait irq softirq steal guest guest_nice
  if (!(in >> cpu) || cpu != "cpu") return {};
  for (auto& v : f)
    if (!(in >> v)) return {};
  MachineTicks t;
  for (int i = 0; i < 8; ++i) t.total += f[i];  // guest time is already in user and nice
  t.idle = f[3] + f[4];
  t.steal = f[7];
  return t;
}

// The pid of the local process with a socket listening on TCP `port` (IPv4 or IPv6), or 0
// when there is none this user may see (a remote broker, another user's process).
inline pid_t listener_pid(int port) {
  std::string inode;
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (inode.empty() && std::getline(in, line)) {
      std::istringstream f(line);
      std::string sl, local, remote, state, queues, timer, retr, uid, timeout, ino;
      if (!(f >> sl >> local >> remote >> state >> queues >> timer >> retr >> uid >> timeout >>
            ino))
        continue;
      const auto colon = local.rfind(':');
      if (state != "0A" || colon == std::string::npos) continue;  // 0A: LISTEN
      if (std::stoi(local.substr(colon + 1), nullptr, 16) == port) inode = ino;
    }
    if (!inode.empty()) break;
  }
  if (inode.empty()) return 0;
  const std::string want = "socket:[" + inode + "]";
  DIR* procs = opendir("/proc");
  if (!procs) return 0;
  pid_t found = 0;
  while (const dirent* p = readdir(procs)) {
    if (found || p->d_name[0] < '0' || p->d_name[0] > '9') continue;
    const std::string fds = std::string("/proc/") + p->d_name + "/fd";
    DIR* fd = opendir(fds.c_str());
    if (!fd) continue;
    while (const dirent* f = readdir(fd)) {
      char target[64];
      const ssize_t n = readlink((fds + "/" + f->d_name).c_str(), target, sizeof target - 1);
      if (n <= 0) continue;
      target[n] = '\0';
      if (want == target) {
        found = static_cast<pid_t>(std::stol(p->d_name));
        break;
      }
    }
    closedir(fd);
  }
  closedir(procs);
  return found;
}

// The local broker's port from a bootstrap address ("127.0.0.1:19092,..." -> 19092), or 0.
inline int bootstrap_port(const std::string& bootstrap) {
  const std::string first = bootstrap.substr(0, bootstrap.find(','));
  const auto colon = first.rfind(':');
  if (colon == std::string::npos) return 0;
  try {
    return std::stoi(first.substr(colon + 1));
  } catch (...) {
    return 0;
  }
}

}  // namespace budstikke::testenv
