#include "adapters/mllp/framer.hpp"

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

Deframer::Status Deframer::feed(std::string_view bytes, std::vector<std::string>& out) {
  Status st = Status::kOk;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const char c = bytes[i];
    if (!in_frame_) {
      if (c == kStart) {
        in_frame_ = true;
        end_seen_ = false;
        discarding_ = false;
        buf_.clear();
      } else {
        ++skipped_;
      }
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
      if (c != kCr) --i;
      continue;
    }
    if (c == kEnd) {
      end_seen_ = true;
      continue;
    }
    if (c == kStart && buf_.empty()) continue;  // repeated start byte
    if (discarding_) continue;
    if (buf_.size() >= max_) {
      discarding_ = true;
      buf_.clear();
      st = Status::kTooLarge;
      continue;
    }
    buf_.push_back(c);
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
