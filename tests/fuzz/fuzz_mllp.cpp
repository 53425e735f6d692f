// libFuzzer target: the MLLP de-framer, fed the input in chunks whose sizes come from the
// input itself, must never crash and must find the same frames as a one-shot pass.

#include <cstdint>
#include <string>
#include <vector>

#include "adapters/mllp/framer.hpp"

using namespace budstikke;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> whole;
  mllp::Deframer one(1 << 20);
  (void)one.feed(bytes, whole);
  std::vector<std::string> chunked;
  mllp::Deframer d(1 << 20);
  size_t i = 0;
  size_t step = 1;
  while (i < bytes.size()) {
    step = 1 + (static_cast<unsigned char>(bytes[i]) % 13);
    (void)d.feed(bytes.substr(i, step), chunked);
    i += step;
  }
  if (whole != chunked) __builtin_trap();  // chunking must not change the frames
  for (const auto& f : whole) {
    std::vector<std::string> again;
    mllp::Deframer e(1 << 20);
    (void)e.feed(mllp::frame(f), again);
    if (f.find('\x1C') == std::string::npos && f.find('\x0B') == std::string::npos &&
        (again.size() != 1 || again[0] != f))
      __builtin_trap();  // framing round trip
  }
  return 0;
}
