#include "engine/runtime/tcp_listener.hpp"

#include <poll.h>

#include <array>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using budstikke::runtime::TcpListener;

// A connection shaped like the sources' own: it keeps a read pending on its socket, and it
// holds its listener strongly (a source's connection holds the source's state, which owns
// the listener), so its queued read closes a cycle through the listener's io_context.
class EchoConnection final : public TcpListener::Connection,
                             public std::enable_shared_from_this<EchoConnection> {
 public:
  EchoConnection(tcp::socket s, std::shared_ptr<TcpListener> listener)
      : socket_(std::move(s)), listener_(std::move(listener)) {}

  void start() { read(); }

  void close_for_stop() override {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      boost::system::error_code ec;
      self->socket_.close(ec);
    });
  }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buf_),
                            [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                              if (ec) return;  // closed: nothing holds the connection any more
                              asio::write(self->socket_, asio::buffer(self->buf_.data(), n), ec);
                              self->read();
                            });
  }

  tcp::socket socket_;
  std::shared_ptr<TcpListener> listener_;
  std::array<char, 256> buf_{};
};

struct Accepted {
  std::mutex mu;
  std::vector<std::weak_ptr<EchoConnection>> connections;
  std::atomic<int> count{0};
};

// Waits up to `ms` for the peer to close: true when a read returns end of stream.
bool peer_closes_within(tcp::socket& s, int ms) {
  pollfd p{s.native_handle(), POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return false;
  std::array<char, 16> b{};
  boost::system::error_code ec;
  const size_t n = s.read_some(asio::buffer(b), ec);
  return n == 0 && ec;
}

void wait_for(const std::atomic<int>& n, int want) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (n.load() < want && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
}

TEST(TcpListener, StopClosesTheConnectionsStillOpenAndLetsGoOfThem) {
  auto listener = TcpListener::create();
  auto accepted = std::make_shared<Accepted>();
  std::weak_ptr<TcpListener> weak_listener = listener;
  auto port = listener->start("source test", "127.0.0.1", 0, 2, [=](tcp::socket s) {
    auto l = weak_listener.lock();
    if (!l) return;
    auto c = std::make_shared<EchoConnection>(std::move(s), l);
    l->track(c);
    {
      const std::lock_guard lock(accepted->mu);
      accepted->connections.push_back(c);
    }
    c->start();
    accepted->count.fetch_add(1);
  });
  ASSERT_TRUE(port) << port.error().to_string();

  asio::io_context client_io;
  std::vector<tcp::socket> clients;
  for (int i = 0; i < 3; ++i) {
    clients.emplace_back(client_io);
    clients.back().connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), *port));
  }
  // One of them is answered first, so the connections are known to be running.
  asio::write(clients[0], asio::buffer(std::string("ping")));
  std::array<char, 4> echo{};
  asio::read(clients[0], asio::buffer(echo));
  EXPECT_EQ(std::string(echo.data(), 4), "ping");
  wait_for(accepted->count, 3);
  ASSERT_EQ(accepted->count.load(), 3);

  const auto t0 = std::chrono::steady_clock::now();
  listener->stop(std::chrono::seconds(0));
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2))
      << "the loop did not run out of work once its connections were closed";

  // Each sender sees its connection closed by the listener, not left open until the process
  // ends, and each connection is gone: nothing queued in the loop holds it any more.
  for (auto& c : clients) EXPECT_TRUE(peer_closes_within(c, 3000));
  const std::lock_guard lock(accepted->mu);
  for (const auto& c : accepted->connections) EXPECT_TRUE(c.expired());
  EXPECT_EQ(listener.use_count(), 1) << "a connection still holds the listener";
}

TEST(TcpListener, ConnectionsThatCloseThemselvesAreForgotten) {
  auto listener = TcpListener::create();
  std::atomic<int> accepted{0};
  std::weak_ptr<TcpListener> weak_listener = listener;
  auto port = listener->start("source test", "127.0.0.1", 0, 1, [&](tcp::socket s) {
    auto l = weak_listener.lock();
    if (!l) return;
    auto c = std::make_shared<EchoConnection>(std::move(s), l);
    l->track(c);
    c->start();
    accepted.fetch_add(1);
  });
  ASSERT_TRUE(port) << port.error().to_string();
  // 300 senders come and go one after another; each connection ends when its sender hangs
  // up. The listener must not keep them (it prunes what has expired as it tracks new ones).
  asio::io_context client_io;
  for (int i = 0; i < 300; ++i) {
    tcp::socket s(client_io);
    s.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), *port));
    s.close();
  }
  wait_for(accepted, 300);
  EXPECT_EQ(accepted.load(), 300);
  // Their reads end with end of stream; once they have, nothing holds the listener.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (listener.use_count() > 1 && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_EQ(listener.use_count(), 1);
  EXPECT_LE(listener->tracked(), 128U) << "closed connections are kept track of for good";
  listener->stop(std::chrono::seconds(0));
}

}  // namespace
