// The MLLP delivery client against a fake HL7 receiver: a real server on 127.0.0.1, port 0,
// answering each frame as the test scripts it.

#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include <boost/asio.hpp>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"
#include "adapters/mllp/mllp_client.hpp"

using namespace budstikke;
using namespace std::chrono_literals;
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

enum class Reply { kAA, kAE, kAR, kSilent, kWrongId, kClose, kGarbage };

// One thread; accepts connections one after another; answers frames by the script.
class FakeReceiver {
 public:
  explicit FakeReceiver(std::deque<Reply> script)
      : script_(std::move(script)), acceptor_(io_, {asio::ip::make_address("127.0.0.1"), 0}) {
    port_ = acceptor_.local_endpoint().port();
    thread_ = std::thread([this] { run(); });
  }
  ~FakeReceiver() {  // NOLINT(bugprone-exception-escape): a failed join ends the test run
    stop_ = true;
    // A blocking accept() is not woken by closing the acceptor from another thread: connect
    // once so it returns and sees stop_.
    boost::system::error_code ec;
    asio::io_context io;
    tcp::socket wake(io);
    wake.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port_)}, ec);
    wake.close(ec);
    if (thread_.joinable()) thread_.join();
    acceptor_.close(ec);
  }
  int port() const { return port_; }
  int connections() const { return connections_.load(); }
  int frames() const { return frames_.load(); }

 private:
  void run() {
    while (!stop_) {
      boost::system::error_code ec;
      tcp::socket s(io_);
      acceptor_.accept(s, ec);
      if (ec || stop_) return;
      ++connections_;
      mllp::Deframer d;
      std::vector<std::string> frames;
      char buf[8192];
      bool open = true;
      while (open && !stop_) {
        const size_t n = s.read_some(asio::buffer(buf), ec);
        if (ec) break;
        d.feed(std::string_view(buf, n), frames);
        while (!frames.empty()) {
          const std::string f = frames.front();
          frames.erase(frames.begin());
          ++frames_;
          Reply r = Reply::kAA;
          {
            std::lock_guard lock(mu_);
            if (!script_.empty()) {
              r = script_.front();
              script_.pop_front();
            }
          }
          const auto m = std::get<hl7v2::Message>(hl7v2::Message::parse(f));
          auto ack = [&](hl7v2::AckCode c) {
            return *hl7v2::make_ack(m,
                                    {c, c == hl7v2::AckCode::kAccept ? "" : "scripted", "207", ""});
          };
          std::string out;
          switch (r) {
            case Reply::kAA:
              out = ack(hl7v2::AckCode::kAccept);
              break;
            case Reply::kAE:
              out = ack(hl7v2::AckCode::kError);
              break;
            case Reply::kAR:
              out = ack(hl7v2::AckCode::kReject);
              break;
            case Reply::kWrongId:
              out = "MSH|^~\\&|R||S||2026||ACK|X|P|2.5\rMSA|AA|SOMETHING-ELSE\r";
              break;
            case Reply::kGarbage:
              out = "not an ack";
              break;
            case Reply::kSilent:
              continue;
            case Reply::kClose:
              open = false;
              continue;
          }
          asio::write(s, asio::buffer(mllp::frame(out)), ec);
        }
      }
    }
  }
  std::mutex mu_;
  std::deque<Reply> script_;
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> frames_{0};
  int port_ = 0;
};

runtime::DeliveryJob job(const std::string& id) {
  runtime::DeliveryJob j;
  j.payload =
      "MSH|^~\\&|BUDSTIKKE|REGION|LIS|LAB|20261120||ORU^R01|" + id + "|P|2.5\rPID|1||1^^^X^PI\r";
  j.idempotency_key = id;
  j.content_type = "application/hl7-v2";
  return j;
}

}  // namespace

TEST(MllpClient, AckCodesMapToOutcomes) {
  FakeReceiver r({Reply::kAA, Reply::kAE, Reply::kAR, Reply::kAA});
  adapters::MllpClient c({"127.0.0.1", r.port(), 2000ms, 2000ms});
  EXPECT_TRUE(c.send(job("M1")).is_ok());
  auto ae = c.send(job("M2"));
  EXPECT_EQ(ae.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_NE(ae.reason.find("AE"), std::string::npos);
  auto ar = c.send(job("M3"));
  EXPECT_EQ(ar.kind, runtime::DeliveryResult::Kind::kPermanent);
  EXPECT_NE(ar.reason.find("scripted"), std::string::npos);
  EXPECT_TRUE(c.send(job("M4")).is_ok());
  EXPECT_EQ(c.connects(), 1u);  // one connection reused for all four
  EXPECT_EQ(r.connections(), 1);
}

TEST(MllpClient, TimeoutsWrongAcksAndLostConnectionsAreRetriableAndReconnect) {
  FakeReceiver r({Reply::kSilent, Reply::kAA, Reply::kWrongId, Reply::kAA, Reply::kClose,
                  Reply::kAA, Reply::kGarbage, Reply::kAA});
  adapters::MllpClient c({"127.0.0.1", r.port(), 2000ms, 500ms});
  auto silent = c.send(job("T1"));
  EXPECT_EQ(silent.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_NE(silent.reason.find("no acknowledgement"), std::string::npos);
  EXPECT_TRUE(c.send(job("T1")).is_ok());  // resent on a new connection
  auto wrong = c.send(job("T2"));
  EXPECT_EQ(wrong.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_NE(wrong.reason.find("SOMETHING-ELSE"), std::string::npos);
  EXPECT_NE(wrong.reason.find("not for 'T2'"), std::string::npos) << wrong.reason;
  EXPECT_TRUE(c.send(job("T2")).is_ok());
  auto closed = c.send(job("T3"));
  EXPECT_EQ(closed.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_TRUE(c.send(job("T3")).is_ok());
  auto garbage = c.send(job("T4"));
  EXPECT_EQ(garbage.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_TRUE(c.send(job("T4")).is_ok());
  EXPECT_GE(c.connects(), 4u);
}

TEST(MllpClient, NothingListeningIsRetriable) {
  int port = 0;
  {
    asio::io_context io;
    tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    port = a.local_endpoint().port();
  }  // closed again: nothing listens there now
  adapters::MllpClient c({"127.0.0.1", port, 1000ms, 1000ms});
  auto r = c.send(job("N1"));
  EXPECT_EQ(r.kind, runtime::DeliveryResult::Kind::kRetriable);
  EXPECT_NE(r.reason.find("cannot connect"), std::string::npos);
  EXPECT_FALSE(c.healthy());
}
