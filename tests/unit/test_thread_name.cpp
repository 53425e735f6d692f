#include "engine/core/thread_name.hpp"

#include <pthread.h>

#include <string>
#include <thread>

#include <gtest/gtest.h>

namespace {

std::string name_of_this_thread() {
  char buf[32] = {};
  EXPECT_EQ(pthread_getname_np(pthread_self(), buf, sizeof buf), 0);
  return buf;
}

// Names a new thread and reads the name back from the kernel.
std::string named_in_a_new_thread(const std::string& name) {
  std::string seen;
  std::thread([&] {
    budstikke::set_thread_name(name);
    seen = name_of_this_thread();
  }).join();
  return seen;
}

TEST(ThreadName, NamesTheCallingThread) {
  EXPECT_EQ(named_in_a_new_thread("r:adt-fanout"), "r:adt-fanout");
}

TEST(ThreadName, ALongNameIsCutToWhatLinuxKeeps) {
  EXPECT_EQ(named_in_a_new_thread("d:nordvik-dips-kardiologi"), "d:nordvik-dips-");  // 15 bytes
}

}  // namespace
