#pragma once
// MLLP framing (HL7 v2 minimal lower layer protocol): <VT=0x0B> payload <FS=0x1C><CR=0x0D>.
// An incremental de-framer for byte streams arriving in arbitrary chunks, and the encoder.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace budstikke::mllp {

inline constexpr char kStart = 0x0B;
inline constexpr char kEnd = 0x1C;
inline constexpr char kCr = 0x0D;

std::string frame(std::string_view payload);

class Deframer {
 public:
  explicit Deframer(size_t max_payload = 16u << 20) : max_(max_payload) {}

  enum class Status { kOk, kTooLarge };
  // Appends bytes and moves every completed payload to `out`. Bytes between frames (line
  // noise, stray CR/LF) are skipped and counted. kTooLarge: a payload exceeded the limit;
  // the rest of that frame is discarded.
  Status feed(std::string_view bytes, std::vector<std::string>& out);
  bool in_frame() const { return in_frame_; }  // a frame started and has not ended
  // End of input: a frame whose 0x1C arrived without the CR is complete.
  void finish(std::vector<std::string>& out) {
    if (in_frame_ && end_seen_ && !discarding_) out.push_back(std::move(buf_));
    if (end_seen_) reset();
  }
  size_t buffered() const { return buf_.size(); }
  size_t skipped() const { return skipped_; }
  void reset() {
    buf_.clear();
    in_frame_ = false;
    end_seen_ = false;
    discarding_ = false;
  }

 private:
  size_t max_;
  std::string buf_;
  bool in_frame_ = false;
  bool end_seen_ = false;  // 0x1C seen, waiting for 0x0D
  bool discarding_ = false;
  size_t skipped_ = 0;
};

// All complete frames of a byte string (e.g. an MLLP-framed file). `incomplete` tells
// whether the bytes end inside a frame.
std::vector<std::string> deframe_all(std::string_view bytes, bool* incomplete = nullptr);

}  // namespace budstikke::mllp
