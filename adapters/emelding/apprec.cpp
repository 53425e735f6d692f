#include "adapters/emelding/apprec.hpp"

#include <chrono>
#include <ctime>

#include "adapters/emelding/standards.hpp"
#include "engine/core/crypto.hpp"

namespace budstikke::emelding {
namespace {

constexpr const char* kNs10 = "http://www.kith.no/xmlstds/apprec/2004-11-21";
constexpr const char* kNs11 = "http://www.kith.no/xmlstds/apprec/2012-02-15";

void unit(std::string& o, const char* tag, const Organisation& org, const std::string& indent) {
  o += indent + "<" + tag + ">";
  if (!org.name.empty()) o += "<Name>" + xml_escape(org.name) + "</Name>";
  if (!org.her_id.empty()) {
    o += "<Id>" + xml_escape(org.her_id) + "</Id><TypeId V=\"HER\" DN=\"HER-id\"/>";
    if (!org.org_number.empty())
      o += "<AdditionalId><Id>" + xml_escape(org.org_number) +
           "</Id><Type V=\"ENH\" DN=\"Organisasjonsnummeret i Enhetsregisteret\"/></AdditionalId>";
  } else if (!org.org_number.empty()) {
    o += "<Id>" + xml_escape(org.org_number) +
         "</Id><TypeId V=\"ENH\" DN=\"Organisasjonsnummeret i Enhetsregisteret\"/>";
  }
  o += "</" + std::string(tag) + ">";
}

// <HCP><Inst>...<Dept/>...<HCPerson/></Inst></HCP>
std::string hcp(const Party& p) {
  std::string o = "<HCP><Inst>";
  if (!p.organisation.name.empty()) o += "<Name>" + xml_escape(p.organisation.name) + "</Name>";
  const Organisation& org = p.organisation;
  if (!org.her_id.empty()) {
    o += "<Id>" + xml_escape(org.her_id) + "</Id><TypeId V=\"HER\" DN=\"HER-id\"/>";
  } else if (!org.org_number.empty()) {
    o += "<Id>" + xml_escape(org.org_number) +
         "</Id><TypeId V=\"ENH\" DN=\"Organisasjonsnummeret i Enhetsregisteret\"/>";
  }
  if (!p.department.empty()) unit(o, "Dept", p.department, "");
  if (!org.her_id.empty() && !org.org_number.empty())
    o += "<AdditionalId><Id>" + xml_escape(org.org_number) +
         "</Id><Type V=\"ENH\" DN=\"Organisasjonsnummeret i Enhetsregisteret\"/></AdditionalId>";
  if (!p.person.name.empty() || !p.person.her_id.empty()) {
    o += "<HCPerson>";
    if (!p.person.name.empty()) o += "<Name>" + xml_escape(p.person.name) + "</Name>";
    if (!p.person.her_id.empty())
      o += "<Id>" + xml_escape(p.person.her_id) + "</Id><TypeId V=\"HER\" DN=\"HER-id\"/>";
    o += "</HCPerson>";
  }
  o += "</Inst></HCP>";
  return o;
}

}  // namespace

std::string xml_escape(std::string_view s) {
  std::string o;
  o.reserve(s.size());
  for (const char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&apos;";
        break;
      default:
        o.push_back(c);
    }
  }
  return o;
}

Result<std::string> build_apprec(const AppRecRequest& r) {
  if (r.version != "1.0" && r.version != "1.1")
    return Error::permanent(ErrorDomain::kCodec,
                            "AppRec version must be 1.0 or 1.1, not " + r.version);
  if (r.status < 1 || r.status > 3)
    return Error::permanent(ErrorDomain::kCodec, "AppRec status must be 1, 2 or 3");
  if (r.sender.organisation.name.empty() || r.receiver.organisation.name.empty())
    return Error::permanent(ErrorDomain::kCodec,
                            "AppRec needs the names of both sender and receiver organisations");
  if (r.original_msg_id.empty())
    return Error::permanent(ErrorDomain::kCodec, "AppRec needs the original message id");
  if (r.status != 1 && r.errors.empty())
    return Error::permanent(ErrorDomain::kCodec, "a negative AppRec needs at least one error code");
  const bool v11 = r.version == "1.1";
  static const char* const kStatusText[] = {"", "OK", "Avvist", "OK, feil i delmelding"};
  std::string o = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  o += std::string("<AppRec xmlns=\"") + (v11 ? kNs11 : kNs10) + "\">\n";
  o += "  <MsgType V=\"APPREC\" DN=\"Applikasjonskvittering\"/>\n";
  o += std::string("  <MIGversion>") + (v11 ? "v1.1 2012-02-15" : "v1.0 2004-11-21") +
       "</MIGversion>\n";
  o += "  <SoftwareName>Budstikke</SoftwareName>\n";
  o += "  <GenDate>" + xml_escape(r.gen_date.empty() ? kith_datetime_now() : r.gen_date) +
       "</GenDate>\n";
  o += "  <Id>" + xml_escape(r.id.empty() ? uuid_v4() : r.id) + "</Id>\n";
  o += "  <Sender>" + hcp(r.sender) + "</Sender>\n";
  o += "  <Receiver>" + hcp(r.receiver) + "</Receiver>\n";
  o += "  <Status V=\"" + std::to_string(r.status) + "\" DN=\"" + kStatusText[r.status] + "\"/>\n";
  for (const auto& e : r.errors) {
    o += "  <Error V=\"" + xml_escape(e.code) + "\" DN=\"" + xml_escape(e.text) +
         "\" S=\"2.16.578.1.12.4.1.1.8221\"";
    if (!e.detail.empty()) o += " OT=\"" + xml_escape(e.detail.substr(0, 900)) + "\"";
    o += "/>\n";
  }
  o += "  <OriginalMsgId>\n";
  o += "    <MsgType V=\"" +
       xml_escape(r.original_msg_type.empty() ? "UKJENT" : r.original_msg_type) + "\"";
  if (!r.original_msg_type_dn.empty()) o += " DN=\"" + xml_escape(r.original_msg_type_dn) + "\"";
  o += "/>\n";
  std::string issue = r.original_issue_date;
  if (issue.size() < 19) issue = kith_datetime_now();  // the schema needs a dateTime
  o += "    <IssueDate>" + xml_escape(issue) + "</IssueDate>\n";
  o += "    <Id>" + xml_escape(r.original_msg_id) + "</Id>\n";
  o += "  </OriginalMsgId>\n</AppRec>\n";
  return o;
}

AppRecRequest apprec_ok(const MessageInfo& original) {
  AppRecRequest r;
  r.version = original.apprec_version.empty() ? "1.0" : original.apprec_version;
  r.status = 1;
  r.original_msg_type = original.msg_type;
  r.original_msg_type_dn = original.msg_type_dn;
  r.original_issue_date = original.gen_date;
  r.original_msg_id = original.msg_id;
  r.sender = original.receiver;
  r.receiver = original.sender;
  return r;
}

AppRecRequest apprec_rejected(const Rejection& rej) {
  AppRecRequest r = apprec_ok(rej.info);
  r.status = 2;
  r.errors.push_back({rej.code.code, rej.code.text, rej.reason});
  return r;
}

}  // namespace budstikke::emelding
