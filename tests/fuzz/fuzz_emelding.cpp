// libFuzzer target: the e-melding decoder (parse, validate against the official XSDs,
// canonicalise, and AppRec building for rejections) must never crash, hang or leak on any
// input. Differential too: the fast path (native parser + compiled validator) and Xerces
// alone must give the same verdict and, on acceptance, the same tree, validating or not;
// any difference traps. Schemas: $BUDSTIKKE_SCHEMAS, default ../shared/standards/xsd.
//
// Build and run (see tests/fuzz/README.md):
//   cmake --preset fuzz && cmake --build --preset fuzz --target fuzz_emelding
//   tests/fuzz/run.sh fuzz_emelding 600

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "adapters/emelding/apprec.hpp"
#include "adapters/emelding/codec.hpp"
#include "adapters/emelding/tree.hpp"

using namespace budstikke;

namespace {
std::unique_ptr<emelding::Decoder> g_decoder;  // fast path on
std::unique_ptr<emelding::Decoder> g_xerces;   // Xerces only

void dump(const emelding::tree::Node* n, std::string& out) {
  out += '{';
  out += n->ns;
  out += '}';
  out += n->name;
  std::vector<std::pair<std::string_view, std::string_view>> attrs(n->attrs.begin(),
                                                                   n->attrs.end());
  std::stable_sort(attrs.begin(), attrs.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [k, v] : attrs) {
    out += ' ';
    out += k;
    out += "=[";
    out += v;
    out += ']';
  }
  out += "[" + n->text + "](";
  for (const auto* k : n->kids) dump(k, out);
  out += ')';
}

// "accepted <tree>" or "rejected <code> <reason>".
std::string verdict(emelding::Decoder& d, std::string_view bytes, bool validate) {
  emelding::DecodeOptions opts;
  opts.key_secret = "fuzz-secret-0123456789";
  opts.validate = validate;
  auto r = d.decode(bytes, opts, "fuzz");
  if (auto* rej = std::get_if<emelding::Rejection>(&r))
    return std::string("rejected ") + rej->code.code + " " + rej->reason;
  std::string out = "accepted ";
  if (const auto* root = d.last_tree().root) dump(root, out);
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* env = std::getenv("BUDSTIKKE_SCHEMAS");
  const std::string dir =
      env ? env : std::string(BUDSTIKKE_SOURCE_DIR) + "/../shared/standards/xsd";
  auto set = emelding::SchemaSet::load(dir);
  g_decoder = std::make_unique<emelding::Decoder>(set.ok() ? *set : nullptr);
  g_xerces = std::make_unique<emelding::Decoder>(set.ok() ? *set : nullptr);
  g_xerces->set_fast_path(false);
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
  for (const bool validate : {true, false})
    if (verdict(*g_decoder, bytes, validate) != verdict(*g_xerces, bytes, validate))
      __builtin_trap();
  return 0;
}
