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

TEST(ThreadName, NamesTheCallingThread) {
  std::string seen;
  std::thread([&] {
    budstikke::set_thread_name("r:adt-fanout");
    seen = name_of_this_thread();
  }).join();
  EXPECT_EQ(seen, "r:adt-fanout");
}

TEST(ThreadName, ALongNameIsCutToWhatLinuxKeeps) {
  std::string seen;
  std::thread([&] {
    budstikke::set_thread_name("d:nordvik-dips-kardiologi");
    seen = name_of_this_thread();
  }).join();
  EXPECT_EQ(seen, "d:nordvik-dips-");  // 15 bytes
}

}  // namespace
