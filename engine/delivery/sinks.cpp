#include "engine/delivery/sinks.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "engine/runtime/loop_send.hpp"

namespace budstikke::delivery {
namespace fs = std::filesystem;
namespace asio = boost::asio;

namespace {

std::string suffix_for(const registry::System& s, const std::string& format) {
  if (!s.connector.file_suffix.empty()) return s.connector.file_suffix;
  if (format.rfind("kith", 0) == 0) return ".xml";
  if (format.rfind("hl7v2", 0) == 0) return ".hl7";
  return ".json";
}

std::string safe_name(const std::string& s) {
  std::string out;
  for (char c : s)
    out.push_back((std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_');
  return out.substr(0, 120);
}

class FileSink final : public runtime::Sink {
 public:
  explicit FileSink(const registry::System& s) : sys_(s) {}

  runtime::DeliveryResult send(const runtime::DeliveryJob& job) override {
    std::error_code ec;
    const fs::path dir = sys_.connector.path;
    fs::create_directories(dir, ec);
    if (ec)
      return runtime::DeliveryResult::retriable("cannot create " + dir.string() + ": " +
                                                ec.message());
    // The job id names the file: a redelivery writes the same name (idempotent).
    const std::string name = safe_name(job.job_id.empty() ? job.idempotency_key : job.job_id) +
                             suffix_for(sys_, job.format);
    const fs::path final_path = dir / name;
    const fs::path tmp = dir / ("." + name + ".tmp");
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
      return runtime::DeliveryResult::retriable("cannot write " + tmp.string() + ": " +
                                                std::strerror(errno));
    size_t off = 0;
    while (off < job.payload.size()) {
      const ssize_t n = ::write(fd, job.payload.data() + off, job.payload.size() - off);
      if (n < 0) {
        if (errno == EINTR) continue;
        const std::string why = std::strerror(errno);
        ::close(fd);
        return runtime::DeliveryResult::retriable("write " + tmp.string() + ": " + why);
      }
      off += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      return runtime::DeliveryResult::retriable("fsync " + tmp.string() + " failed");
    }
    ::close(fd);
    fs::rename(tmp, final_path, ec);
    if (ec) return runtime::DeliveryResult::retriable("rename: " + ec.message());
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    return runtime::DeliveryResult::ok(final_path.string());
  }
  bool healthy() override { return fs::is_directory(sys_.connector.path); }

 private:
  const registry::System& sys_;
};

// Made on a loop, a delivery to Kafka waits for its delivery report without a thread: the
// report (on the producer's callback thread) is posted to the loop, and a timer on the loop
// gives up after the connector's timeout_ms as send_sync does (a report after that is
// dropped; the job is tried again, as a timed-out send would be). Producing only queues the
// record; with the producer's queue full (Kafka unreachable for long) it waits for room on
// the loop's thread, as the stage's own outcome records then wait too.
class KafkaSink final : public runtime::Sink {
 public:
  KafkaSink(const registry::System& s, bus::Producer& p, std::string prefix,
            asio::io_context* loop = nullptr)
      : sys_(s), producer_(p), prefix_(std::move(prefix)) {
    if (loop) loop_ = std::make_shared<LoopRef>(loop);
  }
  ~KafkaSink() override {
    if (!loop_) return;
    // Reports still to come must not post to a loop that may be gone after this sink.
    const std::lock_guard lock(loop_->mu);
    loop_->io = nullptr;
  }

  runtime::DeliveryResult send(const runtime::DeliveryJob& job) override {
    if (loop_) return runtime::send_on_loop(*loop_->io, *this, job);
    return verdict(producer_.send_sync(record(job), timeout()));
  }

  void send_async(const runtime::DeliveryJob& job, Done done) override {
    if (!loop_) {
      done(send(job));
      return;
    }
    auto st = std::make_shared<Pending>(std::move(done), *loop_->io);
    st->timer.expires_after(timeout());
    st->timer.async_wait([st, topic = prefix_ + sys_.connector.path,
                          ms = sys_.connector.timeout_ms](boost::system::error_code ec) {
      if (ec) return;  // the report came first
      end(*st, runtime::DeliveryResult::retriable("no delivery report for " + topic + " within " +
                                                  std::to_string(ms) + " ms"));
    });
    // The report holds the send weakly: the send's timer belongs to the loop, and must not
    // be destroyed on the producer's thread (a report after the timeout, when the timer's
    // handler has let go of it) or after the loop is gone.
    auto sent = producer_.send(record(job), [weak = std::weak_ptr<Pending>(st),
                                             ref = loop_](const Result<bus::Delivery>& d) {
      const std::lock_guard lock(ref->mu);
      if (!ref->io) return;
      if (auto p = weak.lock())
        asio::post(*ref->io, [p = std::move(p), r = verdict(d)] { end(*p, r); });
    });
    if (!sent)
      asio::post(*loop_->io,
                 [st, r = verdict(Result<bus::Delivery>(sent.error()))] { end(*st, r); });
  }

  bool healthy() override { return true; }

 private:
  struct LoopRef {
    explicit LoopRef(asio::io_context* l) : io(l) {}
    std::mutex mu;
    asio::io_context* io;
  };
  // One send on the loop; touched on the loop's thread only. Until it ends, its timer's
  // handler (queued on the loop) holds it.
  struct Pending {
    Pending(Done d, asio::io_context& io) : done(std::move(d)), timer(io) {}
    Done done;
    asio::steady_timer timer;
  };
  static void end(Pending& p, const runtime::DeliveryResult& r) {
    if (!p.done) return;  // the other of report and timeout ended it
    p.timer.cancel();
    auto d = std::move(p.done);
    p.done = nullptr;
    d(r);
  }

  bus::Record record(const runtime::DeliveryJob& job) const {
    bus::Record r;
    r.topic = prefix_ + sys_.connector.path;
    r.key = job.key;
    r.value = job.payload;
    for (const auto& [k, v] : job.headers) r.headers.push_back({k, v});
    return r;
  }
  std::chrono::milliseconds timeout() const {
    return std::chrono::milliseconds(sys_.connector.timeout_ms);
  }
  static runtime::DeliveryResult verdict(const Result<bus::Delivery>& d) {
    if (!d)
      return d.error().retriable ? runtime::DeliveryResult::retriable(d.error().message)
                                 : runtime::DeliveryResult::permanent(d.error().message);
    return runtime::DeliveryResult::ok(d->topic + "/" + std::to_string(d->partition) + "@" +
                                       std::to_string(d->offset));
  }

  const registry::System& sys_;
  bus::Producer& producer_;
  std::string prefix_;
  std::shared_ptr<LoopRef> loop_;
};

}  // namespace

void add_builtin_sinks(SinkFactories& f, bus::Producer& producer, const std::string& prefix) {
  f.add("file", [](const registry::System& s) -> Result<std::unique_ptr<runtime::Sink>> {
    return std::unique_ptr<runtime::Sink>(std::make_unique<FileSink>(s));
  });
  bus::Producer* p = &producer;
  f.add("kafka", [p, prefix](const registry::System& s) -> Result<std::unique_ptr<runtime::Sink>> {
    return std::unique_ptr<runtime::Sink>(std::make_unique<KafkaSink>(s, *p, prefix));
  });
  f.add_on_loop(
      "kafka",
      [p, prefix](const registry::System& s,
                  asio::io_context& loop) -> Result<std::unique_ptr<runtime::Sink>> {
        return std::unique_ptr<runtime::Sink>(std::make_unique<KafkaSink>(s, *p, prefix, &loop));
      });
}

}  // namespace budstikke::delivery
