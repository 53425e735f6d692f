#include "adapters/file/folder_source.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "engine/core/crypto.hpp"
#include "engine/core/log.hpp"
#include "engine/core/redact.hpp"
#include "engine/core/thread_name.hpp"
#include "engine/core/time.hpp"

namespace budstikke::adapters {

namespace fs = std::filesystem;
namespace {
constexpr std::string_view kModule = "source.folder";
constexpr const char* kJournal = ".budstikke-journal";

bool skip_name(const std::string& n) {
  auto ends = [&](const char* s) {
    const size_t k = std::strlen(s);
    return n.size() >= k && n.compare(n.size() - k, k, s) == 0;
  };
  return n.empty() || n[0] == '.' || ends(".tmp") || ends(".part") || ends(".reason");
}

void fsync_dir(const fs::path& dir) {
  if (const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY); fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

FolderSource::FolderSource(FolderSourceSettings s, runtime::Ingest& ingest)
    : s_(std::move(s)), ingest_(ingest) {}

FolderSource::~FolderSource() {
  stop();
}

Status FolderSource::start() {
  std::error_code ec;
  fs::create_directories(fs::path(s_.path) / "done", ec);
  fs::create_directories(fs::path(s_.path) / "failed", ec);
  if (ec || !fs::is_directory(s_.path))
    return Error::permanent(ErrorDomain::kConfig, "source " + s_.name + ": cannot use folder " +
                                                      s_.path + ": " + ec.message());
  // Load the journal: records Kafka already has for files that were not moved yet.
  const fs::path jp = fs::path(s_.path) / kJournal;
  {
    std::ifstream in(jp);
    for (std::string line; std::getline(in, line);)
      if (line.size() == 64) journal_.insert(line);
  }
  journal_fd_ = ::open(jp.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0640);
  if (journal_fd_ < 0)
    return Error::permanent(ErrorDomain::kIo,
                            "source " + s_.name + ": cannot write " + jp.string());
  stop_ = false;
  thread_ = std::thread([this] {
    set_thread_name("folder:" + s_.name);
    run();
  });
  log::info(kModule, "watching folder", {{"source", s_.name}, {"path", s_.path}});
  return {};
}

void FolderSource::stop() {
  if (!thread_.joinable()) return;
  stop_ = true;
  cv_.notify_all();
  thread_.join();
  // Wait (bounded) for in-flight files to be acknowledged; the rest stay in the inbox.
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::seconds(30), [&] { return in_flight_.empty(); });
  if (!in_flight_.empty())
    log::warn(kModule, "stopping with files still in flight; they stay in the inbox",
              {{"source", s_.name}, {"count", std::to_string(in_flight_.size())}});
  if (journal_fd_ >= 0) {
    ::close(journal_fd_);
    journal_fd_ = -1;
  }
}

void FolderSource::run() {
  while (!stop_) {
    scan();
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::milliseconds(s_.poll_interval_ms),
                 [&] { return stop_.load(); });
  }
}

void FolderSource::scan() {
  std::vector<fs::directory_entry> files;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(s_.path, ec)) {
    if (!e.is_regular_file(ec)) continue;
    if (skip_name(e.path().filename().string())) continue;
    files.push_back(e);
  }
  std::sort(files.begin(), files.end(),
            [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });
  const int64_t now = now_epoch_ms();
  for (const auto& e : files) {
    if (stop_) return;
    const std::string file = e.path().string();
    {
      std::unique_lock lock(mu_);
      if (in_flight_.count(file)) continue;
      if (auto it = retry_after_.find(file); it != retry_after_.end() && it->second > now) continue;
      // Backpressure: bounded number of files in flight.
      cv_.wait(lock, [&] {
        return stop_.load() || static_cast<int>(in_flight_.size()) < s_.max_in_flight;
      });
      if (stop_) return;
    }
    const auto size = e.file_size(ec);
    const std::string fname = e.path().filename().string();
    if (ec) continue;
    if (static_cast<int64_t>(size) > s_.max_bytes) {
      // Too large to read: it still gets a record in ingest.rejected (without the bytes).
      runtime::CodecRejection rej;
      rej.code = "T10";
      rej.code_text = "Støtter ikke meldingsformatet";
      rej.reason = fname + ": " + std::to_string(size) + " bytes is more than the limit of " +
                   std::to_string(s_.max_bytes) + " bytes (max_bytes of source " + s_.name + ")";
      runtime::Inbound inb;
      inb.channel = "file:" + s_.name;
      inb.name = fname;
      {
        std::lock_guard lock(mu_);
        in_flight_.insert(file);
      }
      ingest_.reject(std::move(inb), std::move(rej),
                     [this, file](const runtime::IngestResult& r) { finish(file, "", r); });
      continue;
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) continue;  // vanished or unreadable; next scan
    std::ostringstream o;
    o << in.rdbuf();
    std::string bytes = o.str();
    const std::string channel = "file:" + s_.name;
    const std::string key = channel + "|" + fname + "|" + sha256_hex(bytes);
    const std::string key_hash = sha256_hex(key);
    bool already = false;
    {
      std::lock_guard lock(mu_);
      already = journal_.count(key_hash) > 0;
      if (already) in_flight_.insert(file);
    }
    if (already) {
      // Kafka already has it (crash after the ack, before the move): just move it.
      log::info(kModule, "already ingested before a restart; moving it",
                {{"source", s_.name}, {"file", fname}});
      runtime::IngestResult r;
      r.outcome = runtime::Outcome::kAccepted;
      finish(file, "", r);
      continue;
    }
    {
      std::lock_guard lock(mu_);
      in_flight_.insert(file);
    }
    runtime::Inbound inb;
    inb.bytes = std::move(bytes);
    inb.channel = channel;
    inb.name = fname;
    inb.validate = s_.validate;
    inb.source_key = key;
    ingest_.submit(std::move(inb), [this, file, key_hash](const runtime::IngestResult& r) {
      finish(file, key_hash, r);
    });
  }
}

void FolderSource::journal_append(const std::string& key_hash) {
  if (key_hash.empty() || journal_fd_ < 0) return;
  const std::string line = key_hash + "\n";
  if (::write(journal_fd_, line.data(), line.size()) == static_cast<ssize_t>(line.size()))
    ::fdatasync(journal_fd_);
  journal_.insert(key_hash);
}

void FolderSource::move_to(const std::string& file, const std::string& dir) {
  const fs::path src(file);
  fs::path dst = fs::path(s_.path) / dir / src.filename();
  std::error_code ec;
  if (fs::exists(dst, ec)) dst += "." + std::to_string(now_epoch_ms());
  fs::rename(src, dst, ec);
  if (ec) {
    log::error(kModule, "cannot move file",
               {{"file", file}, {"to", dst.string()}, {"error", ec.message()}});
    return;
  }
  fsync_dir(fs::path(s_.path) / dir);
  fsync_dir(fs::path(s_.path));
}

void FolderSource::finish(const std::string& file, const std::string& key_hash,
                          const runtime::IngestResult& r) {
  std::lock_guard lock(mu_);
  const std::string fname = fs::path(file).filename().string();
  switch (r.outcome) {
    case runtime::Outcome::kAccepted:
      journal_append(key_hash);
      move_to(file, "done");
      ++done_;
      break;
    case runtime::Outcome::kRejected: {
      journal_append(key_hash);
      const fs::path reason = fs::path(s_.path) / "failed" / (fname + ".reason");
      std::ofstream out(reason);
      out << r.rejection.code << " " << r.rejection.code_text << "\n"
          << redact_identity_numbers(r.rejection.reason) << "\n";
      if (r.receipt_produced)
        out << "A negative AppRec was queued for the sender (apprec.outbound).\n";
      out.close();
      move_to(file, "failed");
      ++failed_;
      break;
    }
    case runtime::Outcome::kRetry:
      retry_after_[file] = now_epoch_ms() + s_.retry_interval_ms;
      log::warn(kModule, "Kafka did not take the records; the file stays and is retried",
                {{"source", s_.name}, {"file", fname}, {"error", r.error}});
      break;
  }
  if (r.outcome != runtime::Outcome::kRetry) retry_after_.erase(file);
  in_flight_.erase(file);
  // Once nothing is in flight, entries for moved files are no longer needed.
  if (in_flight_.empty() && journal_.size() > 10000 && journal_fd_ >= 0) {
    journal_.clear();
    if (::ftruncate(journal_fd_, 0) == 0) ::fdatasync(journal_fd_);
  }
  cv_.notify_all();
}

runtime::SourceFactory folder_source_factory() {
  using config::Kind;
  auto spec = std::make_shared<config::Spec>();
  spec->name = "sources[] (type: folder)";
  spec->description = "Picks up files from a folder; moves them to done/ or failed/.";
  spec->fields = {
      config::make_field("name", Kind::kString,
                         "Unique name of the source (used in the channel: file:<name>).",
                         std::nullopt, true),
      config::make_field("type", Kind::kString, "folder", std::nullopt, true),
      config::make_field("path", Kind::kString, "The inbox folder (relative to engine.yaml).",
                         std::nullopt, true),
      config::make_field("validate", Kind::kBool, "Validate e-meldinger against the XSDs.", "true"),
      config::make_int("poll_interval_ms", "How often the folder is scanned.", 250, 10),
      config::make_int("retry_interval_ms", "Wait before offering a file again when Kafka failed.",
                       2000, 100),
      config::make_int("max_bytes", "Largest file accepted; larger ones are rejected.", 52428800,
                       1),
      config::make_int("max_in_flight", "Files handed to the ingest stage at once.", 256, 1),
  };
  runtime::SourceFactory fac;
  fac.type = "folder";
  fac.description = spec->description;
  fac.spec = spec;
  fac.create = [spec](const YAML::Node& n,
                      runtime::SourceContext& ctx) -> Result<std::unique_ptr<runtime::Source>> {
    FolderSourceSettings s;
    s.name = config::get_string(n, *spec, "name");
    s.path = config::resolve_path(ctx.engine, config::get_string(n, *spec, "path"));
    s.validate = config::get_bool(n, *spec, "validate");
    s.poll_interval_ms = static_cast<int>(config::get_int(n, *spec, "poll_interval_ms"));
    s.retry_interval_ms = static_cast<int>(config::get_int(n, *spec, "retry_interval_ms"));
    s.max_bytes = config::get_int(n, *spec, "max_bytes");
    s.max_in_flight = static_cast<int>(config::get_int(n, *spec, "max_in_flight"));
    return std::unique_ptr<runtime::Source>(new FolderSource(s, ctx.ingest));
  };
  return fac;
}

}  // namespace budstikke::adapters
