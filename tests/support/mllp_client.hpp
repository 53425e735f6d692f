#pragma once
// A minimal blocking MLLP client for tests: send one framed message, wait for its ACK.

#include <poll.h>

#include <utility>

#include <boost/asio.hpp>

#include <chrono>
#include <optional>
#include <string>

#include "adapters/mllp/framer.hpp"

namespace budstikke::testenv {

class MllpClient {
 public:
  MllpClient(std::string host, int port) : host_(std::move(host)), port_(port) {}

  bool connect() {
    try {
      socket_ = std::make_unique<boost::asio::ip::tcp::socket>(io_);
      socket_->connect({boost::asio::ip::make_address(host_), static_cast<unsigned short>(port_)});
      deframer_.reset();
      frames_.clear();
      return true;
    } catch (...) {
      socket_.reset();
      return false;
    }
  }
  bool connected() const { return socket_ != nullptr; }
  int native_handle() { return socket_ ? socket_->native_handle() : -1; }
  void close() {
    boost::system::error_code ec;
    if (socket_) socket_->close(ec);
    socket_.reset();
  }

  // Sends and waits for one frame back; nullopt on any connection error or timeout.
  std::optional<std::string> send(const std::string& payload, std::chrono::milliseconds timeout) {
    if (!socket_) return std::nullopt;
    try {
      boost::asio::write(*socket_, boost::asio::buffer(mllp::frame(payload)));
      const auto deadline = std::chrono::steady_clock::now() + timeout;
      char buf[8192];
      while (frames_.empty()) {
        if (std::chrono::steady_clock::now() > deadline) {
          close();
          return std::nullopt;
        }
        socket_->non_blocking(false);
        // Poll with a short timeout using available() to keep this simple and bounded.
        boost::system::error_code ec;
        if (socket_->available(ec) == 0) {
          if (ec) {
            close();
            return std::nullopt;
          }
          pollfd p{socket_->native_handle(), POLLIN, 0};
          ::poll(&p, 1, 50);
          if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        }
        const size_t n = socket_->read_some(boost::asio::buffer(buf), ec);
        if (ec) {
          close();
          return std::nullopt;
        }
        deframer_.feed(std::string_view(buf, n), frames_);
      }
      std::string f = std::move(frames_.front());
      frames_.erase(frames_.begin());
      return f;
    } catch (...) {
      close();
      return std::nullopt;
    }
  }

 private:
  std::string host_;
  int port_;
  boost::asio::io_context io_;
  std::unique_ptr<boost::asio::ip::tcp::socket> socket_;
  mllp::Deframer deframer_;
  std::vector<std::string> frames_;
};

}  // namespace budstikke::testenv
