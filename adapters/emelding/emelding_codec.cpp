#include "adapters/emelding/emelding_codec.hpp"

#include "adapters/emelding/apprec.hpp"
#include "adapters/emelding/standards.hpp"

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

Result<std::string> EmeldingCodec::render(const Event& e, std::string_view original,
                                          const runtime::RenderRequest& r) const {
  const std::string own = format_of(e);
  if (r.format != "kith" && r.format != own)
    return Error::permanent(ErrorDomain::kCodec,
                            "cannot convert " + own + " to " + r.format +
                                " (KITH messages are re-rendered in their own standard and "
                                "version)");
  if (!r.readdress) {
    if (original.empty()) return encode_original(e);
    return std::string(original);
  }
  if (e.type == EventType::kAppRec)
    return Error::permanent(ErrorDomain::kCodec, "an AppRec is never readdressed");
  Readdress rd;
  rd.receiver = r.receiver;
  rd.new_msg_id = r.message_id;
  return encode_readdressed(e, rd);
}

std::optional<nlohmann::json> EmeldingCodec::receipt_context(const Event& e) const {
  if (e.type == EventType::kAppRec || e.source.format != "kith") return std::nullopt;
  const auto slash = e.source.version.find('/');
  if (slash == std::string::npos) return std::nullopt;
  const StandardInfo* st =
      standard_by_name(e.source.version.substr(0, slash), e.source.version.substr(slash + 1));
  nlohmann::json j = {{"apprec_version", st && st->apprec_version ? st->apprec_version : "1.0"},
                      {"msg_type", e.source.message_type},
                      {"msg_id", e.source.message_id},
                      {"issue_date", e.occurred_at},
                      {"sender", party_to_json(e.sender)},
                      {"receiver", party_to_json(e.receiver)}};
  return j;
}

Result<std::string> EmeldingCodec::build_receipt(const nlohmann::json& c,
                                                 const runtime::ReceiptOutcome& outcome,
                                                 std::string& format) const {
  if (!c.is_object())
    return Error::permanent(ErrorDomain::kCodec, "receipt context: not an object");
  // The context travels in a delivery job's bs-receipt header, which a record written by
  // anyone but the route stage may carry in any shape: a member of another type is refused
  // (nlohmann's value() would throw it at the delivery stage).
  std::string wrong;
  auto text = [&](const char* key, const char* absent) {
    const auto it = c.find(key);
    if (it == c.end()) return std::string(absent);
    if (it->is_string()) return it->get<std::string>();
    if (wrong.empty()) wrong = key;
    return std::string();
  };
  AppRecRequest r;
  r.version = text("apprec_version", "1.0");
  r.status = outcome.ok ? 1 : 2;
  r.original_msg_type = text("msg_type", "");
  r.original_msg_type_dn = r.original_msg_type;
  r.original_issue_date = text("issue_date", "");
  // KITH dateTime: no zone designator needed; keep what the original said.
  r.original_msg_id = text("msg_id", "");
  if (!wrong.empty())
    return Error::permanent(ErrorDomain::kCodec,
                            "receipt context: /" + wrong + " must be a string");
  auto sender = party_from_json(c.value("sender", nlohmann::json::object()));
  auto receiver = party_from_json(c.value("receiver", nlohmann::json::object()));
  if (!sender || !receiver)
    return Error::permanent(ErrorDomain::kCodec, "receipt context: unreadable parties");
  // Mirrored: the AppRec goes from the original's receiver back to its sender.
  r.sender = *receiver;
  r.receiver = *sender;
  if (!outcome.ok)
    r.errors.push_back({outcome.code.empty() ? kOther.code : outcome.code,
                        outcome.text.empty() ? kOther.text : outcome.text, outcome.detail});
  format = "kith/apprec/" + r.version;
  return build_apprec(r);
}

}  // namespace budstikke::emelding
