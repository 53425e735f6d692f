#include "adapters/mllp/framer.hpp"

#include <cstring>

namespace budstikke::mllp {

std::string frame(std::string_view payload) {
  std::string out;
  out.reserve(payload.size() + 3);
  out.push_back(kStart);
  out.append(payload);
  out.push_back(kEnd);
  out.push_back(kCr);
  return out;
}

// Whole runs of payload bytes are found with memchr and appended at once (byte by byte, a
// 1 KB message cost a dozen reallocations and showed in the ingest profile).
Deframer::Status Deframer::feed(std::string_view bytes, std::vector<std::string>& out) {
  Status st = Status::kOk;
  const char* const data = bytes.data();
  const size_t n = bytes.size();
  size_t i = 0;
  while (i < n) {
    if (!in_frame_) {
      const auto* start = static_cast<const char*>(std::memchr(data + i, kStart, n - i));
      if (!start) {
        skipped_ += n - i;
        break;
      }
      const auto at = static_cast<size_t>(start - data);
      skipped_ += at - i;
      i = at + 1;
      in_frame_ = true;
      end_seen_ = false;
      discarding_ = false;
      buf_.clear();
      continue;
    }
    if (end_seen_) {
      // 0x1C must be followed by 0x0D. Anything else: the 0x1C ended the frame anyway
      // (lenient towards senders that omit the CR), and this byte is looked at again.
      if (!discarding_) out.push_back(std::move(buf_));
      buf_.clear();
      in_frame_ = false;
      end_seen_ = false;
      discarding_ = false;
      if (data[i] == kCr) ++i;
      continue;
    }
    // Repeated start bytes before any payload are not payload.
    if (buf_.empty())
      while (i < n && data[i] == kStart) ++i;
    const auto* end = static_cast<const char*>(std::memchr(data + i, kEnd, n - i));
    const size_t stop = end ? static_cast<size_t>(end - data) : n;
    const size_t len = stop - i;
    if (!discarding_ && len > 0) {
      if (buf_.size() + len > max_) {
        discarding_ = true;
        buf_.clear();
        st = Status::kTooLarge;
      } else {
        buf_.append(data + i, len);
      }
    }
    i = stop;
    if (end) {
      end_seen_ = true;
      ++i;
    }
  }
  return st;
}

std::vector<std::string> deframe_all(std::string_view bytes, bool* incomplete) {
  Deframer d(bytes.size() + 1);
  std::vector<std::string> out;
  (void)d.feed(bytes, out);
  d.finish(out);
  if (incomplete) *incomplete = d.in_frame() && d.buffered() > 0;
  return out;
}

}  // namespace budstikke::mllp
