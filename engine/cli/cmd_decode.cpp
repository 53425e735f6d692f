// budstikke decode: check partners' messages without Kafka.

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <variant>

#include "adapters/emelding/apprec.hpp"
#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/fast_xsd.hpp"
#include "adapters/hl7v2/canonical.hpp"
#include "engine/cli/commands.hpp"
#include "engine/config/engine_config.hpp"

namespace budstikke::cli {
namespace {

bool read_file(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream o;
  o << in.rdbuf();
  out = o.str();
  return true;
}

}  // namespace

int cmd_decode(const Args& args) {
  std::string schemas;
  std::string config_file;
  bool validate = true;
  bool apprec = false;
  bool with_original = false;
  bool schema_info = false;
  std::vector<std::string> gets;
  std::vector<std::string> files;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if ((a == "--schemas" || a == "-c" || a == "--config") && i + 1 < args.size()) {
      (a == "--schemas" ? schemas : config_file) = args[++i];
    } else if (a == "--schemas" || a == "-c" || a == "--config") {
      std::fprintf(stderr, "budstikke decode: %s needs a value\n", a.c_str());
      return 2;
    } else if (a == "--get" && i + 1 < args.size()) {
      gets.push_back(args[++i]);
    } else if (a == "--get") {
      std::fprintf(stderr, "budstikke decode: --get needs a path, e.g. PID-5-1\n");
      return 2;
    } else if (a == "--no-validate") {
      validate = false;
    } else if (a == "--apprec") {
      apprec = true;
    } else if (a == "--schema-info") {
      schema_info = true;
    } else if (a == "--with-original") {
      with_original = true;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "budstikke decode: unknown option %s (see budstikke decode --help)\n",
                   a.c_str());
      return 2;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty()) {
    std::fprintf(stderr, "budstikke decode: no files given (see budstikke decode --help)\n");
    return 2;
  }
  std::string secret = "budstikke-decode-local-key";
  if (schemas.empty()) {
    if (const char* env = std::getenv("BUDSTIKKE_SCHEMAS")) schemas = env;
  }
  if (!config_file.empty() || (schemas.empty() && std::filesystem::exists("config/engine.yaml"))) {
    config::Diagnostics d;
    const auto cfg = config::load_engine_config(
        config_file.empty() ? std::string("config/engine.yaml") : config_file, d);
    if (d.has_errors()) {
      std::fputs(d.format_all().c_str(), stderr);
      return 2;
    }
    if (schemas.empty()) schemas = cfg.schema_dir;
    secret = cfg.key_secret;
  }
  std::shared_ptr<const emelding::SchemaSet> set;
  if (validate) {
    if (schemas.empty()) {
      std::fprintf(stderr,
                   "budstikke decode: warning: no schema directory (--schemas DIR); XSD "
                   "validation is OFF\n");
    } else {
      auto loaded = emelding::SchemaSet::load(schemas);
      if (!loaded) {
        std::fprintf(stderr, "budstikke decode: warning: %s; XSD validation is OFF\n",
                     loaded.error().message.c_str());
      } else {
        set = *loaded;
        if (schema_info) {
          std::fprintf(stderr, "%zu grammars from %s\n", set->grammar_count(),
                       set->directory().c_str());
          for (const auto& w : set->warnings()) std::fprintf(stderr, "  warning: %s\n", w.c_str());
          if (const auto& c = set->compiled()) {
            const auto& st = c->stats();
            std::fprintf(stderr,
                         "fast validator: %zu element declarations, %zu complex types (%zu "
                         "left to Xerces), %zu simple types (%zu decided natively), %zu automaton "
                         "states\n",
                         st.elements, st.complex_types, st.unsupported, st.simple_types,
                         st.native_simple, st.dfa_states);
            for (const auto& [why, n] : st.unsupported_why)
              std::fprintf(stderr, "  left to Xerces: %zu complex type(s): %s\n", n, why.c_str());
          }
        }
      }
    }
  }
  emelding::Decoder decoder(set);
  emelding::DecodeOptions opts;
  opts.validate = validate && set != nullptr;
  opts.channel = "cli:decode";
  opts.key_secret = secret;
  int rejected = 0;
  for (const auto& f : files) {
    std::string bytes;
    if (!read_file(f, bytes)) {
      std::printf("REJECTED %s: cannot read the file\n", f.c_str());
      ++rejected;
      continue;
    }
    if (hl7v2::looks_like_hl7(bytes)) {
      runtime::DecodeContext ctx{"cli:decode", std::filesystem::path(f).filename().string(), true,
                                 secret};
      auto parsed = hl7v2::parse_stream(bytes);
      if (auto* err = std::get_if<hl7v2::ParseError>(&parsed)) {
        ++rejected;
        std::printf("REJECTED %s: AR not a valid HL7 v2 message: %s\n", f.c_str(),
                    err->to_string().c_str());
        continue;
      }
      const auto& st = std::get<hl7v2::Stream>(parsed);
      if (!gets.empty()) {
        for (const auto& m : st.messages)
          for (const auto& g : gets) std::printf("%s\n", m.get(g).value_or("").c_str());
        continue;
      }
      auto r = hl7v2::Hl7Codec().decode(bytes, ctx);
      if (auto* rej = std::get_if<runtime::CodecRejection>(&r)) {
        ++rejected;
        std::printf("REJECTED %s: %s %s\n", f.c_str(), rej->code.c_str(), rej->reason.c_str());
        if (apprec && !rej->receipt.empty()) std::printf("%s\n", rej->receipt.c_str());
        continue;
      }
      for (auto& e : std::get<runtime::CodecOutput>(r).events) {
        auto j = to_json(e);
        if (!with_original && j.contains("original"))
          j["original"]["data_base64"] =
              "(" + std::to_string(e.original->size) + " bytes; --with-original shows them)";
        std::printf("%s\n",
                    j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      }
      continue;
    }
    if (!gets.empty()) {
      ++rejected;
      std::printf("REJECTED %s: --get paths apply to HL7 v2 messages only\n", f.c_str());
      continue;
    }
    auto result = decoder.decode(bytes, opts, std::filesystem::path(f).filename().string());
    if (auto* ok = std::get_if<emelding::Decoded>(&result)) {
      for (auto& e : ok->events) {
        auto j = to_json(e);
        if (!with_original && j.contains("original"))
          j["original"].erase("data_base64"),
              j["original"]["data_base64"] =
                  "(" + std::to_string(e.original->size) + " bytes; --with-original shows them)";
        std::printf("%s\n",
                    j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
      }
      for (const auto& w : ok->warnings)
        std::fprintf(stderr, "warning: %s: %s\n", f.c_str(), w.c_str());
      if (apprec) {
        auto xml = emelding::build_apprec(emelding::apprec_ok(ok->info));
        if (xml)
          std::printf("%s", xml->c_str());
        else
          std::fprintf(stderr, "no AppRec: %s\n", xml.error().message.c_str());
      }
    } else {
      const auto& rej = std::get<emelding::Rejection>(result);
      ++rejected;
      std::printf("REJECTED %s: %s %s: %s\n", f.c_str(), rej.code.code, rej.code.text,
                  rej.reason.c_str());
      if (apprec) {
        if (!rej.sender_known()) {
          std::printf("(no AppRec: the sender or the message id could not be identified)\n");
        } else {
          auto xml = emelding::build_apprec(emelding::apprec_rejected(rej));
          if (xml)
            std::printf("%s", xml->c_str());
          else
            std::printf("(no AppRec: %s)\n", xml.error().message.c_str());
        }
      }
    }
  }
  std::fprintf(stderr, "%zu file(s): %zu accepted, %d rejected\n", files.size(),
               files.size() - static_cast<size_t>(rejected), rejected);
  return rejected == 0 ? 0 : 1;
}

}  // namespace budstikke::cli
