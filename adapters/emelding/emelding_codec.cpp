#include "adapters/emelding/emelding_codec.hpp"

#include "adapters/emelding/apprec.hpp"

namespace budstikke::emelding {

bool EmeldingCodec::detect(std::string_view b) const {
  size_t i = 0;
  if (b.size() >= 3 && static_cast<unsigned char>(b[0]) == 0xEF &&
      static_cast<unsigned char>(b[1]) == 0xBB && static_cast<unsigned char>(b[2]) == 0xBF)
    i = 3;
  while (i < b.size() && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n')) ++i;
  return i < b.size() && b[i] == '<';
}

std::unique_ptr<Decoder> EmeldingCodec::take() const {
  {
    const std::lock_guard lock(mu_);
    if (!pool_.empty()) {
      auto d = std::move(pool_.back());
      pool_.pop_back();
      return d;
    }
  }
  return std::make_unique<Decoder>(schemas_);
}

void EmeldingCodec::give(std::unique_ptr<Decoder> d) const {
  const std::lock_guard lock(mu_);
  pool_.push_back(std::move(d));
}

runtime::DecodeResult EmeldingCodec::decode(std::string_view bytes,
                                            const runtime::DecodeContext& ctx) const {
  DecodeOptions opts;
  opts.validate = ctx.validate;
  opts.channel = ctx.channel;
  opts.key_secret = ctx.key_secret;
  auto decoder = take();
  auto r = decoder->decode(bytes, opts, ctx.name);
  give(std::move(decoder));
  if (auto* ok = std::get_if<Decoded>(&r)) {
    runtime::CodecOutput out;
    out.events = std::move(ok->events);
    out.warnings = std::move(ok->warnings);
    return out;
  }
  auto& rej = std::get<Rejection>(r);
  runtime::CodecRejection cr;
  cr.code = rej.code.code;
  cr.code_text = rej.code.text;
  cr.reason = rej.reason;
  cr.line = rej.line;
  cr.column = rej.column;
  cr.message_id = rej.info.msg_id;
  cr.sender = rej.info.sender;
  if (rej.sender_known() && !rej.info.receiver.organisation.name.empty()) {
    AppRecRequest req = apprec_rejected(rej);
    if (auto xml = build_apprec(req)) {
      cr.receipt = std::move(*xml);
      cr.receipt_format = "kith/apprec/" + req.version;
    }
  }
  return cr;
}

}  // namespace budstikke::emelding
