#include "engine/runtime/tcp_client.hpp"

#include <boost/asio.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/ssl.hpp>

namespace budstikke::runtime {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

namespace {

// The client's TLS context: its CA (or the system's trust store), TLS 1.2 and up, the client
// certificate for mutual TLS, and whether the server's certificate is checked.
std::unique_ptr<ssl::context> make_tls(const ClientTls& t, std::string& why) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
  boost::system::error_code ec;
  ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                       ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1,
                   ec);
  if (t.ca_file.empty())
    ctx->set_default_verify_paths(ec);
  else
    ctx->load_verify_file(t.ca_file, ec);
  if (ec) {
    why = "TLS: cannot load the CA file '" + t.ca_file + "': " + ec.message();
    return nullptr;
  }
  if (!t.cert_file.empty()) {
    ctx->use_certificate_chain_file(t.cert_file, ec);
    if (!ec) ctx->use_private_key_file(t.key_file, ssl::context::pem, ec);
    if (ec) {
      why = "TLS: cannot load the client certificate '" + t.cert_file + "' / key '" + t.key_file +
            "': " + ec.message();
      return nullptr;
    }
  }
  ctx->set_verify_mode(t.verify ? ssl::verify_peer : ssl::verify_none);
  return ctx;
}

}  // namespace

TcpClientConnection::TcpClientConnection(asio::io_context& io, std::string host, int port,
                                         ClientTls tls)
    : io_(io),
      host_(std::move(host)),
      port_(port),
      where_(host_ + ":" + std::to_string(port_)),
      tls_(std::move(tls)),
      resolver_(io) {
  if (tls_.enabled) ctx_ = make_tls(tls_, tls_error_);
}

TcpClientConnection::~TcpClientConnection() {
  drop();
}

TcpClientConnection::PlainStream& TcpClientConnection::lowest() {
  return plain_ ? *plain_ : boost::beast::get_lowest_layer(*secure_);
}

void TcpClientConnection::drop() {
  if (!open()) return;
  boost::system::error_code ec;
  lowest().socket().shutdown(tcp::socket::shutdown_both, ec);
  lowest().socket().close(ec);
  plain_.reset();
  secure_.reset();
}

void TcpClientConnection::connect(std::chrono::milliseconds timeout,
                                  std::function<void(std::string)> then) {
  if (open()) return then("");
  if (tls_.enabled && !ctx_) return then(tls_error_);
  resolver_.async_resolve(
      host_, std::to_string(port_),
      [this, timeout, then = std::move(then)](boost::system::error_code ec,
                                              const tcp::resolver::results_type& r) mutable {
        if (ec) return then("cannot resolve " + host_ + ": " + ec.message());
        if (tls_.enabled)
          secure_ = std::make_unique<SecureStream>(io_, *ctx_);
        else
          plain_ = std::make_unique<PlainStream>(io_);
        lowest().expires_after(timeout);
        lowest().async_connect(r, [this, timeout, then = std::move(then)](
                                      boost::system::error_code e, const tcp::endpoint&) mutable {
          connected(e, timeout, std::move(then));
        });
      });
}

void TcpClientConnection::connected(boost::system::error_code ec, std::chrono::milliseconds timeout,
                                    std::function<void(std::string)> then) {
  if (ec) {
    drop();
    return then("cannot connect to " + where_ + ": " + ec.message());
  }
  lowest().socket().set_option(tcp::no_delay(true), ec);
  if (!tls_.enabled) {
    ++connects_;
    return then("");
  }
  // SNI (for names, never for IP literals) and the name the certificate must carry.
  boost::system::error_code not_ip;
  (void)asio::ip::make_address(host_, not_ip);
  if (not_ip)
    SSL_ctrl(secure_->native_handle(), SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
             const_cast<char*>(host_.c_str()));
  if (tls_.verify) secure_->set_verify_callback(ssl::host_name_verification(host_));
  lowest().expires_after(timeout);
  secure_->async_handshake(
      ssl::stream_base::client, [this, then = std::move(then)](boost::system::error_code e) {
        if (e) {
          drop();
          return then("TLS handshake with " + where_ + " failed: " + e.message());
        }
        ++connects_;
        then("");
      });
}

}  // namespace budstikke::runtime
