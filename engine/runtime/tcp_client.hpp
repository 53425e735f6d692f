#pragma once
// The client side every connector over TCP shares (HTTP, MLLP): one connection, kept open
// between sends, plain or TLS, opened under a deadline: resolve, connect, TCP_NODELAY, and
// for TLS the server name (SNI), the check of the certificate's host name and the handshake.
// The connector drives its exchange on the stream; it runs on the io_context it is given, and
// every call is made on that context's thread.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>  // before boost/asio.hpp: Boost 1.74 needs std::exchange

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>

namespace budstikke::runtime {

struct ClientTls {
  bool enabled = false;
  std::string ca_file = {};    // empty: the system's trust store
  std::string cert_file = {};  // with key_file: the client certificate (mutual TLS)
  std::string key_file = {};
  bool verify = true;  // the server's certificate and host name
};

class TcpClientConnection {
 public:
  using PlainStream = boost::beast::tcp_stream;
  using SecureStream = boost::beast::ssl_stream<boost::beast::tcp_stream>;

  TcpClientConnection(boost::asio::io_context& io, std::string host, int port, ClientTls tls);
  ~TcpClientConnection();
  TcpClientConnection(const TcpClientConnection&) = delete;
  TcpClientConnection& operator=(const TcpClientConnection&) = delete;

  // Why the TLS settings cannot be used (a file that will not load); empty when they can.
  // Such a connection never opens: the configuration is at fault, not the receiver.
  const std::string& tls_error() const { return tls_error_; }
  // "host:port", for messages.
  const std::string& where() const { return where_; }

  // Opens the connection unless it is open, each step within `timeout`, then calls `then`
  // with "" or why it could not ("cannot resolve ...", "cannot connect to ...", "TLS
  // handshake with ... failed: ..."). Called inline when it is open already.
  void connect(std::chrono::milliseconds timeout, std::function<void(std::string why)> then);
  bool open() const { return plain_ || secure_; }
  // Closes it; the next connect() opens a new one.
  void drop();
  // The TCP layer: its deadline (expires_after) and socket.
  PlainStream& lowest();
  // Runs f with the stream to read and write: the TLS stream or the plain one.
  template <class F>
  void with_stream(F&& f) {
    if (secure_)
      f(*secure_);
    else
      f(*plain_);
  }
  // Connections opened so far.
  size_t connects() const { return connects_; }

 private:
  void connected(boost::system::error_code ec, std::chrono::milliseconds timeout,
                 std::function<void(std::string)> then);

  boost::asio::io_context& io_;
  std::string host_;
  int port_;
  std::string where_;
  ClientTls tls_;
  std::unique_ptr<boost::asio::ssl::context> ctx_;
  std::string tls_error_;
  boost::asio::ip::tcp::resolver resolver_;
  std::unique_ptr<PlainStream> plain_;
  std::unique_ptr<SecureStream> secure_;
  size_t connects_ = 0;
};

}  // namespace budstikke::runtime
