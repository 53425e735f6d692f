#pragma once
// Folder source: picks up files dropped in a folder.
//
//   <path>/            the inbox; files appear here (write as *.tmp or dotfile, then rename)
//   <path>/done/       moved here after Kafka has the canonical event(s)
//   <path>/failed/     moved here when rejected, with <name>.reason beside it
//   <path>/.budstikke-journal   content hashes whose records Kafka has, for files not yet
//                       moved: after a crash between the ack and the move, the file is moved
//                       on restart instead of being ingested a second time
//
// A file whose records Kafka did not take (broker down) stays in the inbox and is offered
// again after `retry_interval_ms`. Event ids derive from (source, file name, content hash),
// so a file that is ingested twice after a crash carries the same event ids.
//
// Threading: one polling thread; delivery callbacks run on the producer's thread and only
// touch the in-flight set and the file system under a mutex.

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "engine/runtime/source.hpp"

namespace budstikke::adapters {

struct FolderSourceSettings {
  std::string name;
  std::string path;
  bool validate = true;
  int poll_interval_ms = 250;
  int retry_interval_ms = 2000;
  int64_t max_bytes = 50 << 20;
  int max_in_flight = 256;
};

class FolderSource final : public runtime::Source {
 public:
  FolderSource(FolderSourceSettings s, runtime::Ingest& ingest);
  ~FolderSource() override;
  const std::string& name() const override { return s_.name; }
  Status start() override;
  void stop() override;

  // For tests and the demo: counts of files moved.
  uint64_t done_count() const { return done_.load(); }
  uint64_t failed_count() const { return failed_.load(); }

 private:
  void run();
  void scan();
  void finish(const std::string& file, const std::string& key_hash, const runtime::IngestResult& r);
  void journal_append(const std::string& key_hash);
  void move_to(const std::string& file, const std::string& dir);

  FolderSourceSettings s_;
  runtime::Ingest& ingest_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::set<std::string> in_flight_;
  std::set<std::string> journal_;  // key hashes whose records Kafka has
  std::map<std::string, int64_t> retry_after_;
  std::atomic<uint64_t> done_{0};
  std::atomic<uint64_t> failed_{0};
  int journal_fd_ = -1;
};

// The factory (with its declared spec) for the source registry.
runtime::SourceFactory folder_source_factory();

}  // namespace budstikke::adapters
