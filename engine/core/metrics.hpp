#pragma once
// Metrics in the Prometheus text exposition format (version 0.0.4), served by the admin API.
//
// Counters and histograms are created once per label set and then updated lock-free; a
// thread's later lookups of the same series skip the registry's lock (hot paths may still
// keep the returned reference). Gauges are computed when scraped (DLQ depth, consumer
// lag). Label values are route names, system ids, channels, types and codes; never patient
// data: every label value passes through redact_identity_numbers() when the series is made.

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace budstikke::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void inc(uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Latency histogram in seconds with fixed buckets from 1 ms to 60 s.
class Histogram {
 public:
  static constexpr std::array<double, 15> kBounds = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
  void observe_ms(double ms);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Cumulative counts per bound (the last one is +Inf) and the sum in seconds.
  std::array<uint64_t, kBounds.size() + 1> cumulative() const;
  double sum_seconds() const {
    return static_cast<double>(sum_us_.load(std::memory_order_relaxed)) / 1e6;
  }

 private:
  std::array<std::atomic<uint64_t>, kBounds.size() + 1> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_us_{0};
};

struct GaugeSample {
  Labels labels;
  double value = 0;
};
using GaugeFn = std::function<std::vector<GaugeSample>()>;

class Registry {
 public:
  Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;
  // Get-or-create; a thread's later calls for the same series skip the lock.
  Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
  Histogram& histogram(const std::string& name, const std::string& help, const Labels& labels = {});
  // A gauge family computed at scrape time; registering the same name again replaces it.
  void gauge(const std::string& name, const std::string& help, GaugeFn fn);
  void remove_gauge(const std::string& name);
  // The whole registry in the Prometheus text format.
  std::string render() const;

 private:
  struct Family {
    std::string help;
    std::string type;                                              // counter | histogram | gauge
    std::map<std::string, std::unique_ptr<Counter>> counters;      // by rendered label set
    std::map<std::string, std::unique_ptr<Histogram>> histograms;  // by rendered label set
    GaugeFn gauge;
  };
  Family& family(const std::string& name, const std::string& help, const char* type);
  uint64_t id_;
  mutable std::mutex mu_;
  std::map<std::string, Family> families_;
};

// The process's registry.
Registry& global();

// {a="x",b="y"} with values escaped and identity numbers redacted; empty for no labels.
std::string render_labels(const Labels& labels);

}  // namespace budstikke::metrics
