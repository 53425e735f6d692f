#pragma once
// A minimal blocking HTTP/1.1 client for tests (Boost.Beast), loopback only.

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <sstream>
#include <string>

namespace budstikke::testenv {

struct HttpReply {
  int status = 0;
  std::string body;
  std::string error;
};

// Any method, with an optional bearer token; the reply's status and body.
inline HttpReply http_request(const std::string& method, const std::string& host, int port,
                              const std::string& target, const std::string& token = "",
                              const std::string& body = "",
                              const std::string& content_type = "application/json") {
  namespace beast = boost::beast;
  namespace http = beast::http;
  using tcp = boost::asio::ip::tcp;
  HttpReply out;
  try {
    boost::asio::io_context io;
    tcp::resolver resolver(io);
    beast::tcp_stream stream(io);
    stream.expires_after(std::chrono::seconds(120));
    stream.connect(resolver.resolve(host, std::to_string(port)));
    http::request<http::string_body> req{http::string_to_verb(method), target, 11};
    req.set(http::field::host, host);
    if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
    if (!body.empty()) req.set(http::field::content_type, content_type);
    req.body() = body;
    req.prepare_payload();
    http::write(stream, req);
    beast::flat_buffer buffer;
    http::response<http::string_body> res;
    http::read(stream, buffer, res);
    out.status = static_cast<int>(res.result_int());
    out.body = res.body();
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  return out;
}

inline HttpReply http_post(const std::string& host, int port, const std::string& target,
                           const std::string& body) {
  return http_request("POST", host, port, target, "", body, "application/xml");
}

// The sum of a metric's series in a /metrics text (0 when it has none).
inline double metric_total(const std::string& text, const std::string& name) {
  double sum = 0;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind(name, 0) != 0) continue;
    const char next = line.size() > name.size() ? line[name.size()] : '\0';
    if (next != ' ' && next != '{') continue;
    sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

}  // namespace budstikke::testenv
