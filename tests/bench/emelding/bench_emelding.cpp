// Decode + validate + canonicalise throughput of the e-melding codec on one core.
//
// usage: bench_emelding SCHEMA_DIR SECONDS FILE...
// Loads the files into memory, then decodes them round-robin for about SECONDS and prints
// messages/s and MB/s (one thread). Every decode must succeed (the files are valid).

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <variant>

#include "adapters/emelding/codec.hpp"
#include "tests/support/bench_main.hpp"

using namespace budstikke;

int bench_main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: bench_emelding SCHEMA_DIR SECONDS FILE...\n");
    return 2;
  }
  auto schemas = emelding::SchemaSet::load(argv[1]);
  if (!schemas) {
    std::fprintf(stderr, "%s\n", schemas.error().message.c_str());
    return 1;
  }
  const double seconds = std::atof(argv[2]);
  std::vector<std::string> files;
  size_t total_bytes = 0;
  for (int i = 3; i < argc; ++i) {
    std::ifstream in(argv[i], std::ios::binary);
    std::ostringstream o;
    o << in.rdbuf();
    files.push_back(o.str());
    total_bytes += files.back().size();
  }
  emelding::Decoder d(*schemas);
  emelding::DecodeOptions opts;
  opts.key_secret = "bench-secret-0123456789";
  // Warm-up and correctness: every file must decode.
  for (size_t i = 0; i < files.size(); ++i) {
    auto r = d.decode(files[i], opts, argv[3 + i]);
    if (auto* rej = std::get_if<emelding::Rejection>(&r)) {
      std::fprintf(stderr, "not accepted: %s\n", rej->reason.c_str());
      return 1;
    }
  }
  using Clock = std::chrono::steady_clock;
  // mode: full (decode + validate + canonicalise), xerces (the same with the fast path off:
  // every message through Xerces, as before session 6), validate (parse + validate only),
  // novalidate (decode + canonicalise without XSD validation), event (full, then the
  // canonical event's JSON text: what the ingest stage does per message)
  const char* mode_env = std::getenv("BENCH_MODE");
  const std::string mode = mode_env ? mode_env : "full";
  if (mode == "novalidate") opts.validate = false;
  if (mode == "xerces") d.set_fast_path(false);
  const auto stats0 = d.path_stats();
  const auto t0 = Clock::now();
  size_t n = 0;
  size_t bytes = 0;
  size_t ok = 0;
  size_t json_bytes = 0;
  while (std::chrono::duration<double>(Clock::now() - t0).count() < seconds) {
    for (const auto& f : files) {
      if (mode == "validate") {
        ok += d.validate(f).empty() ? 1 : 0;
      } else {
        auto r = d.decode(f, opts);
        const auto& events = std::get<emelding::Decoded>(r).events;
        ok += events.size();
        if (mode == "event")
          for (const auto& e : events) json_bytes += to_json_string(e).size();
      }
      ++n;
      bytes += f.size();
    }
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  const auto stats1 = d.path_stats();
  std::printf(
      "mode=%s files=%zu avg_size=%zu messages=%zu seconds=%.3f msg_per_s=%.0f mb_per_s=%.1f "
      "fast_path=%zu xerces_path=%zu\n",
      mode.c_str(), files.size(), total_bytes / files.size(), n, s, n / s, bytes / s / 1e6,
      stats1.fast - stats0.fast, stats1.xerces - stats0.xerces);
  if (mode == "event") std::printf("event_json_bytes=%zu\n", json_bytes);
  return ok == n ? 0 : 1;
}

int main(int argc, char** argv) {
  return budstikke::testenv::run_bench(bench_main, argc, argv);
}
