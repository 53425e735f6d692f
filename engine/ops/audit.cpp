#include "engine/ops/audit.hpp"

#include <fcntl.h>
#include <pwd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include "engine/core/crypto.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/time.hpp"
#include "engine/runtime/topics.hpp"

namespace budstikke::ops {

using json = nlohmann::json;

AuditLog::AuditLog(const config::EngineConfig& cfg, bus::Producer* producer)
    : cfg_(cfg), producer_(producer) {}

AuditLog::~AuditLog() {
  if (own_) (void)own_->flush(std::chrono::seconds(10));
}

Status AuditLog::record(const AuditEntry& e) {
  json j = {{"audit_id", uuid_v4()},
            {"at", now_rfc3339()},
            {"actor", redact_identity_numbers(e.actor)},
            {"action", e.action}};
  if (!e.message_id.empty()) j["message_id"] = redact_identity_numbers(e.message_id);
  if (!e.system.empty()) j["system"] = e.system;
  if (!e.detail.empty()) j["detail"] = redact_identity_numbers(e.detail);
  j["patient_refs"] = e.patient_refs;
  j["count"] = e.count;
  const std::string line = j.dump(-1, ' ', false, json::error_handler_t::replace);
  // 1. The local file, synced: the action goes ahead only when this holds.
  if (cfg_.audit_file.empty())
    return Error::permanent(ErrorDomain::kConfig, "audit.file is not set");
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(cfg_.audit_file).parent_path(), ec);
  const int fd = ::open(cfg_.audit_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0)
    return Error::permanent(ErrorDomain::kIo, "cannot write the audit log " + cfg_.audit_file +
                                                  ": " + std::strerror(errno));
  const std::string out = line + "\n";
  const bool wrote =
      ::write(fd, out.data(), out.size()) == static_cast<ssize_t>(out.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!wrote)
    return Error::permanent(ErrorDomain::kIo, "cannot write the audit log " + cfg_.audit_file);
  // 2. The audit topic.
  if (!producer_) {
    auto p = bus::Producer::create(cfg_.kafka.for_role("audit"));
    if (!p) return p.error();
    own_ = std::move(*p);
    producer_ = own_.get();
  }
  bus::Record r;
  r.topic = cfg_.topic_prefix + runtime::kAuditTopic;
  r.key = j["audit_id"].get<std::string>();
  r.value = line;
  r.headers = {{"bs-action", e.action}};
  auto d = producer_->send_sync(r, std::chrono::milliseconds(10000));
  if (!d) return d.error();
  return {};
}

std::string cli_actor(const config::EngineConfig& cfg) {
  if (!cfg.audit_actor.empty()) return cfg.audit_actor;
  if (const char* a = std::getenv("BUDSTIKKE_ACTOR"); a && *a) return a;
  std::string user = "unknown";
  if (const passwd* pw = getpwuid(getuid()); pw && pw->pw_name) user = pw->pw_name;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return user + "@" + (host[0] ? host : "localhost");
}

Result<AuditFindings> find_audit(const config::EngineConfig& cfg, const AuditQuery& q) {
  AuditFindings f;
  std::map<std::string, json> by_id;
  auto consider = [&](const json& j) {
    if (!j.is_object()) return;
    const auto refs = j.find("patient_refs");
    if (refs == j.end() || !refs->is_array()) return;
    if (std::find(refs->begin(), refs->end(), q.patient_ref) == refs->end()) return;
    by_id[j.value("audit_id", "")] = j;
  };
  if (q.from_file) {
    std::ifstream in(cfg.audit_file);
    if (!in) {
      f.warnings.push_back("no local audit file " + cfg.audit_file);
    } else {
      for (std::string line; std::getline(in, line);) consider(json::parse(line, nullptr, false));
    }
  }
  if (q.from_topic) {
    const std::string topic = cfg.topic_prefix + runtime::kAuditTopic;
    auto topics = bus::list_topics(cfg.kafka, std::chrono::milliseconds(5000));
    if (!topics) {
      f.warnings.push_back("audit topic not read: Kafka at " + cfg.kafka.bootstrap() +
                           " is not reachable");
    } else if (std::find(topics->begin(), topics->end(), topic) == topics->end()) {
      f.warnings.push_back("no audit topic '" + topic + "'");
    } else {
      auto st = bus::scan_topics(cfg.kafka, {topic}, [&](const bus::Message& m) {
        consider(json::parse(m.value(), nullptr, false));
        return true;
      });
      if (!st) f.warnings.push_back("audit topic not read completely: " + st.error().message);
    }
  }
  if (!q.from_file && !q.from_topic)
    return Error::permanent(ErrorDomain::kConfig, "nothing to read");
  for (auto& [id, j] : by_id) f.records.push_back(std::move(j));
  std::stable_sort(f.records.begin(), f.records.end(), [](const json& a, const json& b) {
    return a.value("at", "") < b.value("at", "");
  });
  return f;
}

}  // namespace budstikke::ops
