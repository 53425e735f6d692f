#include "adapters/emelding/standards.hpp"

#include <array>
#include <chrono>
#include <ctime>

namespace budstikke::emelding {
namespace {

// AppRec version: standards published from 2012 on prescribe AppRec 1.1; older ones 1.0.
constexpr std::array<StandardInfo, 37> kStandards = {{
    {"http://www.kith.no/xmlstds/msghead/2006-05-24", "msghead", "1.2", EventType::kOther, "1.0"},
    {"http://www.kith.no/xmlstds/apprec/2004-11-21", "apprec", "1.0", EventType::kAppRec, "1.0"},
    {"http://www.kith.no/xmlstds/apprec/2012-02-15", "apprec", "1.1", EventType::kAppRec, "1.1"},
    {"http://www.kith.no/xmlstds/dialog/2006-10-11", "dialogmelding", "1.0", EventType::kDialog,
     "1.0"},
    {"http://www.kith.no/xmlstds/dialog/2013-01-23", "dialogmelding", "1.1", EventType::kDialog,
     "1.1"},
    {"http://www.kith.no/xmlstds/henvisning/2005-07-08", "henvisning", "1.0", EventType::kReferral,
     "1.0"},
    {"http://www.kith.no/xmlstds/henvisning/2012-02-15", "henvisning", "1.1", EventType::kReferral,
     "1.1"},
    {"http://ehelse.no/xmlstds/henvisning/2017-11-30", "henvisning", "2.0", EventType::kReferral,
     "1.1"},
    {"http://www.kith.no/xmlstds/epikrise", "epikrise", "1.0", EventType::kDischargeSummary, "1.0"},
    {"http://www.kith.no/xmlstds/epikrise/2006-09-23", "epikrise", "1.1",
     EventType::kDischargeSummary, "1.0"},
    {"http://www.kith.no/xmlstds/epikrise/2012-02-15", "epikrise", "1.2",
     EventType::kDischargeSummary, "1.1"},
    {"http://www.kith.no/xmlstds/rekvisisjon/2005-05-20", "rekvisisjon", "1.4",
     EventType::kLabRequisition, "1.0"},
    {"http://www.kith.no/xmlstds/rekvisisjon/2008-12-01", "rekvisisjon", "1.5",
     EventType::kLabRequisition, "1.0"},
    {"http://www.kith.no/xmlstds/rekvisisjon/2012-02-15", "rekvisisjon", "1.6",
     EventType::kLabRequisition, "1.1"},
    {"http://www.kith.no/xmlstds/labsvar/2005-03-14", "svarrapport", "1.2", EventType::kLabResult,
     "1.0"},
    {"http://www.kith.no/xmlstds/labsvar/2008-12-01", "svarrapport", "1.3", EventType::kLabResult,
     "1.0"},
    {"http://www.kith.no/xmlstds/labsvar/2012-02-15", "svarrapport", "1.4", EventType::kLabResult,
     "1.1"},
    {"http://www.kith.no/xmlstds/po/Konsultasjon/2009-06-30", "plo", "1.5", EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/HelseopplysningerVedSoknad/2009-06-30", "plo", "1.5",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/Innleggelsesrapport/2009-06-30", "plo", "1.5",
     EventType::kAdmission, "1.0"},
    {"http://www.kith.no/xmlstds/po/OverforingMedisinskeOpplysninger/2009-06-30", "plo", "1.5",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/MeldingFravar/2009-06-30", "plo", "1.5", EventType::kPlo,
     "1.0"},
    {"http://www.kith.no/xmlstds/po/OrienteringOmTjenestetilbud/2009-06-30", "plo", "1.5",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/Pasientlogistikk/2009-06-30", "plo", "1.5", EventType::kPlo,
     "1.0"},
    {"http://www.kith.no/xmlstds/po/TverrfagligEpikrise/2009-06-30", "plo", "1.5",
     EventType::kDischargeSummary, "1.0"},
    {"http://www.kith.no/xmlstds/po/HelseopplysningerVedSoknad/2012-04-01", "plo", "1.6",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/HelseopplysningerTilLege/2012-04-01", "plo", "1.6",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/Innleggelsesrapport/2012-04-01", "plo", "1.6",
     EventType::kAdmission, "1.0"},
    {"http://www.kith.no/xmlstds/po/MedisinskeOpplysninger/2012-04-01", "plo", "1.6",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/OrienteringOmTjenestetilbud/2012-04-01", "plo", "1.6",
     EventType::kPlo, "1.0"},
    {"http://www.kith.no/xmlstds/po/Pasientlogistikk/2012-04-01", "plo", "1.6", EventType::kPlo,
     "1.0"},
    {"http://www.kith.no/xmlstds/po/TverrfagligEpikrise/2012-04-01", "plo", "1.6",
     EventType::kDischargeSummary, "1.0"},
    {"http://ehelse.no/xmlstds/po/HelseopplysningerSaksbehandling/2016-05-30", "plo", "2.0",
     EventType::kPlo, "1.1"},
    {"http://ehelse.no/xmlstds/po/Pasientlogistikk/2016-05-30", "plo", "2.0", EventType::kPlo,
     "1.1"},
    {"http://ehelse.no/xmlstds/po/Sammenfatning/2016-05-30", "plo", "2.0", EventType::kPlo, "1.1"},
    {"http://www.nav.no/xml/eiff/2/", "fellesformat", "2", EventType::kOther, "1.0"},
    {"http://www.kith.no/xmlstds/po/poKomponent/2009-06-30", "plo-komponent", "1.5",
     EventType::kPlo, "1.0"},
}};

}  // namespace

const StandardInfo* standard_by_namespace(std::string_view ns) {
  for (const auto& s : kStandards)
    if (ns == s.namespace_uri) return &s;
  return nullptr;
}

const StandardInfo* standard_by_name(std::string_view standard, std::string_view version) {
  for (const auto& s : kStandards)
    if (standard == s.standard && version == s.version) return &s;
  return nullptr;
}

EventType type_for_msg_type(std::string_view code, EventType fallback) {
  if (code.rfind("DIALOG_", 0) == 0) return EventType::kDialog;
  if (code.rfind("HENVISNING", 0) == 0) return EventType::kReferral;
  if (code == "INNLEGGELSESRAPPORT" || code == "LOG_INNLAGT") return EventType::kAdmission;
  if (code == "LOG_UTSKREVET" || code == "LOG_DOD") return EventType::kDischarge;
  if (code == "UTSKRIVNINGSRAPPORT" || code == "EPIKRISE") return EventType::kDischargeSummary;
  if (code == "APPREC") return EventType::kAppRec;
  if (code.rfind("LOG_", 0) == 0 || code == "HELSEOPPL_SOKNAD" ||
      code == "HELSEOPPLYSNINGER_LEGE" || code == "ORIENTERING_TJENESTETILBUD" ||
      code == "MEDISINSKE_OPPLYSNINGER" || code == "FRAVARSMELDING")
    return EventType::kPlo;
  return fallback;
}

std::string kith_datetime_now() {
  const auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[32];
  return {buf, std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm)};
}

std::string code_system_name(std::string_view oid) {
  static constexpr std::pair<std::string_view, std::string_view> kSystems[] = {
      {"2.16.578.1.12.4.1.1.7170", "ICPC-2"},
      {"2.16.578.1.12.4.1.1.7110", "ICD-10"},
      {"2.16.578.1.12.4.1.1.7180", "ATC"},
      {"2.16.578.1.12.4.1.1.7280", "NLK"},
      {"2.16.578.1.12.4.1.1.7010", "Helsedirektoratets prosedyrekoder"},
      {"2.16.578.1.12.4.1.1.9051", "HER"},
      {"2.16.578.1.12.4.1.1.8116", "person-id-type"},
  };
  for (const auto& [k, v] : kSystems)
    if (k == oid) return std::string(v);
  return std::string(oid);
}

}  // namespace budstikke::emelding
