#include "engine/runtime/tcp_listener.hpp"

#include <algorithm>
#include <future>

#include "engine/core/thread_name.hpp"

namespace budstikke::runtime {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

TcpListener::~TcpListener() {
  stop(std::chrono::seconds(0));
}

Result<int> TcpListener::start(const std::string& what, const std::string& host, int port,
                               int threads, OnAccept on_accept) {
  boost::system::error_code ec;
  const auto addr = asio::ip::make_address(host, ec);
  if (ec) return Error::permanent(ErrorDomain::kConfig, what + ": bad host '" + host + "'");
  const tcp::endpoint ep(addr, static_cast<unsigned short>(port));
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    return Error::permanent(
        ErrorDomain::kTransport,
        what + ": cannot listen on " + host + ":" + std::to_string(port) + ": " + ec.message());
  on_accept_ = std::move(on_accept);
  work_.emplace(io_.get_executor());
  accept();
  // "source hl7-in" -> "io:hl7-in"
  std::string name = "io:" + (what.rfind("source ", 0) == 0 ? what.substr(7) : what);
  for (int i = 0; i < std::max(1, threads); ++i)
    threads_.emplace_back([this, name] {
      set_thread_name(name);
      io_.run();
    });
  return static_cast<int>(acceptor_.local_endpoint().port());
}

// The pending accept holds the listener weakly: stop() may stop the loop before the aborted
// accept has run, and a strong hold from a handler queued in the listener's own io_context
// would keep both alive for good (LeakSanitizer saw it at exit). While the threads run, the
// listener's owner holds it (stop() joins them before it lets go).
void TcpListener::accept() {
  acceptor_.async_accept(asio::make_strand(io_), [weak = weak_from_this()](
                                                     boost::system::error_code ec, tcp::socket s) {
    const auto self = weak.lock();
    if (!self || ec == asio::error::operation_aborted || !self->acceptor_.is_open()) return;
    if (!ec) {
      s.set_option(tcp::no_delay(true), ec);
      self->on_accept_(std::move(s));
    }
    self->accept();
  });
}

void TcpListener::end_request() {
  if (in_flight_.fetch_sub(1) == 1) {
    const std::lock_guard lock(mu_);
    cv_.notify_all();
  }
}

void TcpListener::track(std::weak_ptr<Connection> c) {
  const std::lock_guard lock(connections_mu_);
  if (connections_.size() >= prune_at_) {
    std::erase_if(connections_, [](const std::weak_ptr<Connection>& w) { return w.expired(); });
    prune_at_ = std::max<size_t>(64, 2 * connections_.size());
  }
  connections_.push_back(std::move(c));
}

size_t TcpListener::tracked() const {
  const std::lock_guard lock(connections_mu_);
  return connections_.size();
}

void TcpListener::close_connections() {
  std::vector<std::weak_ptr<Connection>> open;
  {
    const std::lock_guard lock(connections_mu_);
    open.swap(connections_);
  }
  for (const auto& w : open)
    if (const auto c = w.lock()) c->close_for_stop();
}

void TcpListener::stop(std::chrono::seconds drain) {
  if (threads_.empty()) return;
  // Close the acceptor on the io threads (it is not thread-safe) and wait for it.
  auto closed = std::make_shared<std::promise<void>>();
  auto done = closed->get_future();
  asio::post(io_, [this, closed] {
    boost::system::error_code ec;
    acceptor_.close(ec);
    closed->set_value();
  });
  (void)done.wait_for(std::chrono::seconds(5));
  {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, drain, [&] { return in_flight_.load() == 0; });
  }
  // Close what is still open (idle keep-alive connections, senders that did not hang up, a
  // request that outlived the drain): their aborted reads and timers run and let go of them.
  // The loop then runs out of work; it is stopped after two seconds in any case.
  close_connections();
  work_.reset();
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!io_.stopped() && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  io_.stop();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
  on_accept_ = nullptr;  // drops what the callback captured
}

}  // namespace budstikke::runtime
