#pragma once
// The e-melding codec as the engine sees it (runtime::Codec): thread-safe, with a pool of
// Decoders sharing one SchemaSet, and negative AppRecs built for rejected messages.

#include <memory>
#include <mutex>
#include <vector>

#include "adapters/emelding/codec.hpp"
#include "engine/runtime/codec.hpp"

namespace budstikke::emelding {

class EmeldingCodec final : public runtime::Codec {
 public:
  // schemas may be null: XSD validation off.
  explicit EmeldingCodec(std::shared_ptr<const SchemaSet> schemas) : schemas_(std::move(schemas)) {}
  std::string_view name() const override { return "kith"; }
  bool detect(std::string_view bytes) const override;
  runtime::DecodeResult decode(std::string_view bytes,
                               const runtime::DecodeContext& ctx) const override;
  // Routes: the original bytes (kith/<standard>/<version> of the event itself), or a copy
  // readdressed to the destination (new MsgId, GenDate, Receiver).
  Result<std::string> render(const Event& e, std::string_view original,
                             const runtime::RenderRequest& r) const override;
  // AppRec context: the answered message's id, type, date, parties and AppRec version.
  std::optional<nlohmann::json> receipt_context(const Event& e) const override;
  Result<std::string> build_receipt(const nlohmann::json& context,
                                    const runtime::ReceiptOutcome& outcome,
                                    std::string& format) const override;
  bool validating() const { return schemas_ != nullptr; }

 private:
  std::unique_ptr<Decoder> take() const;
  void give(std::unique_ptr<Decoder> d) const;
  std::shared_ptr<const SchemaSet> schemas_;
  mutable std::mutex mu_;
  mutable std::vector<std::unique_ptr<Decoder>> pool_;
};

}  // namespace budstikke::emelding
