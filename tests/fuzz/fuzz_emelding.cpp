// libFuzzer target: the e-melding decoder (parse, validate against the official XSDs,
// canonicalise, and AppRec building for rejections) must never crash, hang or leak on any
// input. Schemas: $BUDSTIKKE_SCHEMAS, default ../shared/standards/xsd from the source tree.
//
// Build and run (see tests/fuzz/README.md):
//   cmake --preset fuzz && cmake --build --preset fuzz --target fuzz_emelding
//   tests/fuzz/run.sh fuzz_emelding 600

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "adapters/emelding/apprec.hpp"
#include "adapters/emelding/codec.hpp"

using namespace budstikke;

namespace {
std::unique_ptr<emelding::Decoder> g_decoder;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("BUDSTIKKE_SCHEMAS");
  const std::string dir =
      env ? env : std::string(BUDSTIKKE_SOURCE_DIR) + "/../shared/standards/xsd";
  auto set = emelding::SchemaSet::load(dir);
  g_decoder = std::make_unique<emelding::Decoder>(set.ok() ? *set : nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  emelding::DecodeOptions opts;
  opts.key_secret = "fuzz-secret-0123456789";
  auto r = g_decoder->decode(bytes, opts, "fuzz");
  if (auto* rej = std::get_if<emelding::Rejection>(&r)) {
    if (rej->sender_known()) (void)emelding::build_apprec(emelding::apprec_rejected(*rej));
  } else {
    auto& ok = std::get<emelding::Decoded>(r);
    for (const auto& e : ok.events) {
      // Envelope and payload tree are written without nlohmann: exactly nlohmann's bytes.
      if (to_json_string(e) !=
          to_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace))
        __builtin_trap();
      (void)emelding::encode_original(e);
    }
    (void)emelding::build_apprec(emelding::apprec_ok(ok.info));
  }
  return 0;
}
