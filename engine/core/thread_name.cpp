#include "engine/core/thread_name.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace budstikke {

void set_thread_name(std::string_view name) {
  std::array<char, 16> buf{};
  const size_t n = std::min(name.size(), buf.size() - 1);
  std::memcpy(buf.data(), name.data(), n);
  (void)pthread_setname_np(pthread_self(), buf.data());
}

}  // namespace budstikke
