#pragma once
// The TCP part every listening source shares (HTTP, MLLP): bind and listen, accept on a
// strand per connection, run the io_context on N threads, count requests in flight, and
// stop gracefully (close the listener, let requests in flight finish, close the connections
// still open, then stop and join).

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>  // before boost/asio.hpp: Boost 1.74 needs std::exchange
#include <vector>

#include <boost/asio.hpp>

#include "engine/core/result.hpp"

namespace budstikke::runtime {

class TcpListener : public std::enable_shared_from_this<TcpListener> {
 public:
  // A connection the listener closes when it stops. close_for_stop() is called once, from
  // stop(), on any thread: it must close the connection on the connection's own executor.
  class Connection {
   public:
    virtual ~Connection() = default;
    virtual void close_for_stop() = 0;
  };

  using Socket = boost::asio::ip::tcp::socket;
  using OnAccept = std::function<void(Socket)>;

  static std::shared_ptr<TcpListener> create() {
    return std::shared_ptr<TcpListener>(new TcpListener());
  }
  ~TcpListener();

  // Listens on host:port (0: any free port) and returns the bound port. `what` names the
  // listener in errors, e.g. "source mllp".
  Result<int> start(const std::string& what, const std::string& host, int port, int threads,
                    OnAccept on_accept);
  // Stops accepting, waits up to `drain` for requests in flight, stops the threads.
  void stop(std::chrono::seconds drain = std::chrono::seconds(30));

  // In-flight accounting for graceful stops: call once a request is handed on, and once
  // it has been answered.
  void begin_request() { in_flight_.fetch_add(1); }
  void end_request();

  // Makes an accepted connection known, so that stop() closes it if it is still open. The
  // listener holds it weakly. A connection's pending read holds the connection, and the
  // connection its source, which owns this listener: left open, that cycle would outlive
  // stop() (the socket open, and all of it leaked at exit).
  void track(std::weak_ptr<Connection> c);
  // How many connections it keeps track of (closed ones until they are pruned).
  size_t tracked() const;

 private:
  TcpListener() = default;
  void accept();
  void close_connections();

  boost::asio::io_context io_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  boost::asio::ip::tcp::acceptor acceptor_{io_};
  std::vector<std::thread> threads_;
  OnAccept on_accept_;
  std::atomic<int> in_flight_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  mutable std::mutex connections_mu_;
  std::vector<std::weak_ptr<Connection>> connections_;
  size_t prune_at_ = 64;
};

}  // namespace budstikke::runtime
