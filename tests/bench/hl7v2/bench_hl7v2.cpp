// HL7 v2 parse throughput on one core. Two figures:
//   index: Message::parse (segment index, delimiters, charset) - what the engine needs to
//          route and ACK;
//   full:  parse + visit every field, repetition, component and sub-component and unescape
//          every leaf - the same work as a full parse into a tree (HAPI's PipeParser does
//          that, plus typing).
//   event: what the engine's ingest does per message before Kafka: the codec's decode
//          (parse, canonical event, the ACK) and the event's JSON (not compared with HAPI).
// usage: bench_hl7v2 SECONDS FILE...   (BENCH_MODES=index,full,event picks modes)

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "adapters/hl7v2/canonical.hpp"
#include "adapters/hl7v2/message.hpp"
#include "tests/support/bench_main.hpp"

using namespace budstikke::hl7v2;

namespace {

size_t visit_all(const Message& m) {
  const Delimiters& d = m.delimiters();
  size_t leaves = 0;
  std::string sink;
  for (size_t s = 0; s < m.segment_count(); ++s) {
    std::string_view seg = m.segment_raw(s);
    size_t start = seg.find(d.field);
    while (start != std::string_view::npos) {
      const size_t end = seg.find(d.field, start + 1);
      std::string_view field = seg.substr(
          start + 1, end == std::string_view::npos ? std::string_view::npos : end - start - 1);
      size_t a = 0;
      while (true) {  // leaves: split on any of the inner delimiters
        size_t b = a;
        while (b < field.size() && field[b] != d.repetition && field[b] != d.component &&
               field[b] != d.subcomponent)
          ++b;
        sink = m.unescape(field.substr(a, b - a));
        leaves += sink.empty() ? 0 : 1;
        if (b >= field.size()) break;
        a = b + 1;
      }
      start = end;
    }
  }
  return leaves;
}

}  // namespace

int bench_main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_hl7v2 SECONDS FILE...\n");
    return 2;
  }
  const double seconds = std::atof(argv[1]);
  std::vector<std::string> msgs;
  size_t total = 0;
  for (int i = 2; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::ostringstream o;
    o << in.rdbuf();
    std::string s = o.str();
    if (!std::holds_alternative<Message>(Message::parse(s))) continue;  // same set as HAPI parses
    msgs.push_back(std::move(s));
    total += msgs.back().size();
  }
  using Clock = std::chrono::steady_clock;
  const Hl7Codec codec;
  budstikke::runtime::DecodeContext ctx{"mllp:bench", "bench", false, "bench-secret-0123456789",
                                        true};
  for (const char* mode : {"index", "full", "event"}) {
    const bool full = std::string(mode) == "full";
    const bool event = std::string(mode) == "event";
    // BENCH_MODES=event (a comma-separated list) runs only those modes, e.g. under perf.
    if (const char* only = std::getenv("BENCH_MODES");
        only &&
        ("," + std::string(only) + ",").find("," + std::string(mode) + ",") == std::string::npos)
      continue;
    size_t n = 0;
    size_t bytes = 0;
    size_t leaves = 0;
    const auto t0 = Clock::now();
    while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
      for (const auto& s : msgs) {
        if (event) {
          auto d = codec.decode(s, ctx);
          if (auto* out = std::get_if<budstikke::runtime::CodecOutput>(&d))
            for (const auto& e : out->events) leaves += budstikke::to_json_string(e).size();
          ++n;
          bytes += s.size();
          continue;
        }
        auto r = Message::parse(s);
        const Message& m = std::get<Message>(r);
        if (full) leaves += visit_all(m);
        ++n;
        bytes += s.size();
      }
    }
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf(
        "mode=%s files=%zu avg_size=%zu messages=%zu seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f "
        "leaves=%zu\n",
        mode, msgs.size(), total / std::max<size_t>(1, msgs.size()), n, sec, n / sec,
        bytes / sec / 1e6, leaves);
  }
  return 0;
}

int main(int argc, char** argv) {
  return budstikke::testenv::run_bench(bench_main, argc, argv);
}
