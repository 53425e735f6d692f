#pragma once
// CPU time of local processes, for benchmarks that report what a figure cost: the engine's,
// the broker's and the benchmark's own CPU over a measured phase.
//
// The scheduler's accounting in /proc/PID/task/*/schedstat (nanoseconds a thread has run)
// is used, not utime + stime from /proc/PID/stat: those are sampled per clock tick, and a
// window read around a listing of ~120 threads, one file each, is longer than it looks.
// Session 25 found a measuring script that divided such a window by its nominal 5 s
// overstating the engine's cores by 30-50%.

#include <dirent.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>

namespace budstikke::testenv {

// Nanoseconds of CPU the threads of `pid` that are alive now have used; -1 when the process
// cannot be read. Threads that have ended are not counted (compare two readings of a process
// whose threads live across them).
inline int64_t process_cpu_ns(pid_t pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  DIR* d = opendir(dir.c_str());
  if (!d) return -1;
  int64_t total = 0;
  while (const dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    std::ifstream in(dir + "/" + e->d_name + "/schedstat");
    long long ns = 0;
    if (in >> ns) total += ns;
  }
  closedir(d);
  return total;
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
