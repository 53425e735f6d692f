#pragma once
// Names the calling thread for `top -H`, `ps -L`, perf and gdb. Linux keeps 15 bytes of a
// name; a longer one is cut there. Names carry roles and system ids, never message content.

#include <string_view>

namespace budstikke {

void set_thread_name(std::string_view name);

}  // namespace budstikke
