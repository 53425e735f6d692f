// budstikke send: send HL7 v2 files over MLLP and print each acknowledgement.

#include <utility>

#include <boost/asio.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "adapters/hl7v2/ack.hpp"
#include "adapters/hl7v2/message.hpp"
#include "adapters/mllp/framer.hpp"
#include "engine/cli/commands.hpp"

namespace budstikke::cli {

int cmd_send(const Args& args) {
  namespace asio = boost::asio;
  if (args.size() < 2) {
    std::fprintf(stderr, "usage: budstikke send HOST:PORT FILE...\n");
    return 2;
  }
  const std::string& target = args[0];
  const auto colon = target.rfind(':');
  if (colon == std::string::npos) {
    std::fprintf(stderr, "budstikke send: '%s' is not HOST:PORT\n", target.c_str());
    return 2;
  }
  const std::string host = target.substr(0, colon);
  const std::string port = target.substr(colon + 1);
  // Every file first: a typo in a name should not cost a connection to a hospital system.
  for (size_t i = 1; i < args.size(); ++i)
    if (!std::ifstream(args[i], std::ios::binary)) {
      std::fprintf(stderr, "budstikke send: %s: cannot read the file\n", args[i].c_str());
      return 2;
    }
  int failures = 0;
  try {
    asio::io_context io;
    asio::ip::tcp::resolver resolver(io);
    asio::ip::tcp::socket socket(io);
    asio::connect(socket, resolver.resolve(host, port));
    mllp::Deframer deframer;
    std::vector<std::string> frames;
    for (size_t i = 1; i < args.size(); ++i) {
      std::ifstream in(args[i], std::ios::binary);
      if (!in) {
        std::printf("%s: cannot read the file\n", args[i].c_str());
        ++failures;
        continue;
      }
      std::ostringstream o;
      o << in.rdbuf();
      std::string payload = o.str();
      // Files often use LF line ends; MLLP peers expect CR between segments.
      for (auto& c : payload)
        if (c == '\n') c = '\r';
      std::string cleaned;
      for (size_t k = 0; k < payload.size(); ++k)
        if (!(payload[k] == '\r' && k + 1 < payload.size() && payload[k + 1] == '\r'))
          cleaned.push_back(payload[k]);
      asio::write(socket, asio::buffer(mllp::frame(cleaned)));
      char buf[8192];
      while (frames.empty()) {
        const size_t n = socket.read_some(asio::buffer(buf));
        deframer.feed(std::string_view(buf, n), frames);
      }
      const std::string ack = std::move(frames.front());
      frames.erase(frames.begin());
      auto parsed = hl7v2::Message::parse(ack);
      if (auto* m = std::get_if<hl7v2::Message>(&parsed)) {
        const auto info = hl7v2::read_ack(*m);
        const std::string code = info ? info->code : "?";
        std::printf("%s: %s %s%s%s\n", args[i].c_str(), code.c_str(),
                    info ? info->acknowledged_id.c_str() : "",
                    m->get("ERR-8").value_or("").empty() ? "" : " ",
                    m->get("ERR-8").value_or("").c_str());
        if (code != "AA" && code != "CA") ++failures;
      } else {
        std::printf("%s: unreadable acknowledgement\n", args[i].c_str());
        ++failures;
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "budstikke send: %s: %s\n", target.c_str(), e.what());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}

}  // namespace budstikke::cli
