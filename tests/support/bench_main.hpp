#pragma once
// A benchmark's main: runs its body and reports an exception (a bad argument, a library's
// error) in one line with exit code 2 instead of aborting.
#include <cstdio>
#include <exception>

namespace budstikke::testenv {

inline int run_bench(int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 2;
  }
}

}  // namespace budstikke::testenv
