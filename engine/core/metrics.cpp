#include "engine/core/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <unordered_map>

#include "engine/core/redact.hpp"

namespace budstikke::metrics {

void Histogram::observe_ms(double ms) {
  if (!(ms >= 0)) ms = 0;
  const double s = ms / 1000.0;
  size_t i = 0;
  while (i < kBounds.size() && s > kBounds[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_us_.fetch_add(static_cast<uint64_t>(std::llround(ms * 1000.0)), std::memory_order_relaxed);
}

std::array<uint64_t, Histogram::kBounds.size() + 1> Histogram::cumulative() const {
  std::array<uint64_t, kBounds.size() + 1> out{};
  uint64_t run = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    run += buckets_[i].load(std::memory_order_relaxed);
    out[i] = run;
  }
  return out;
}

namespace {

std::string escape(const std::string& v) {
  std::string out;
  for (char c : redact_identity_numbers(v)) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  char buf[64];
  const int n = v == std::floor(v) && std::fabs(v) < 1e15
                    ? std::snprintf(buf, sizeof buf, "%.0f", v)
                    : std::snprintf(buf, sizeof buf, "%.6g", v);
  return {buf, static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof buf) - 1))};
}

// Label set with one more label appended (for histogram buckets).
std::string with_label(const std::string& rendered, const std::string& k, const std::string& v) {
  const std::string extra = k + "=\"" + v + "\"";
  if (rendered.empty()) return "{" + extra + "}";
  return rendered.substr(0, rendered.size() - 1) + "," + extra + "}";
}

}  // namespace

std::string render_labels(const Labels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i) out += ",";
    out += labels[i].first + "=\"" + escape(labels[i].second) + "\"";
  }
  return out + "}";
}

Registry::Family& Registry::family(const std::string& name, const std::string& help,
                                   const char* type) {
  auto& f = families_[name];
  if (f.type.empty()) {
    f.type = type;
    f.help = help;
  }
  return f;
}

namespace {

std::atomic<uint64_t> g_registries{0};

// Series already found by this thread, by registry, name and raw label values: hot paths
// (a counter per message) skip the lock, the escaping and the redaction after the first
// call. Series are never removed, so the pointers stay valid while their registry lives; a
// registry's id is never reused.
std::string cache_key(uint64_t registry, const std::string& name, const Labels& labels) {
  std::string k = std::to_string(registry) + '\x1f' + name;
  for (const auto& [n, v] : labels) {
    k += '\x1f';
    k += n;
    k += '=';
    k += v;
  }
  return k;
}

}  // namespace

Registry::Registry() : id_(++g_registries) {}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
  thread_local std::unordered_map<std::string, Counter*> cache;
  std::string key = cache_key(id_, name, labels);
  if (const auto it = cache.find(key); it != cache.end()) return *it->second;
  std::lock_guard<std::mutex> lk(mu_);
  auto& f = family(name, help, "counter");
  auto& slot = f.counters[render_labels(labels)];
  if (!slot) slot = std::make_unique<Counter>();
  cache.emplace(std::move(key), slot.get());
  return *slot;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const Labels& labels) {
  thread_local std::unordered_map<std::string, Histogram*> cache;
  std::string key = cache_key(id_, name, labels);
  if (const auto it = cache.find(key); it != cache.end()) return *it->second;
  std::lock_guard<std::mutex> lk(mu_);
  auto& f = family(name, help, "histogram");
  auto& slot = f.histograms[render_labels(labels)];
  if (!slot) slot = std::make_unique<Histogram>();
  cache.emplace(std::move(key), slot.get());
  return *slot;
}

void Registry::gauge(const std::string& name, const std::string& help, GaugeFn fn) {
  std::lock_guard<std::mutex> lk(mu_);
  auto& f = family(name, help, "gauge");
  f.gauge = std::move(fn);
}

void Registry::remove_gauge(const std::string& name) {
  std::lock_guard<std::mutex> lk(mu_);
  const auto it = families_.find(name);
  if (it != families_.end() && it->second.type == "gauge") families_.erase(it);
}

std::string Registry::render() const {
  // Gauge functions may be slow (they ask Kafka): copy them out and call them unlocked.
  std::vector<std::pair<std::string, std::pair<std::string, GaugeFn>>> gauges;
  std::string out;
  {
    std::lock_guard<std::mutex> lk(mu_);
    for (const auto& [name, f] : families_) {
      if (f.type == "gauge") {
        gauges.push_back({name, {f.help, f.gauge}});
        continue;
      }
      out += "# HELP " + name + " " + f.help + "\n# TYPE " + name + " " + f.type + "\n";
      for (const auto& [labels, c] : f.counters)
        out += name + labels + " " + std::to_string(c->value()) + "\n";
      for (const auto& [labels, h] : f.histograms) {
        const auto cum = h->cumulative();
        for (size_t i = 0; i < cum.size(); ++i) {
          const std::string le =
              i < Histogram::kBounds.size() ? number(Histogram::kBounds[i]) : "+Inf";
          out +=
              name + "_bucket" + with_label(labels, "le", le) + " " + std::to_string(cum[i]) + "\n";
        }
        out += name + "_sum" + labels + " " + number(h->sum_seconds()) + "\n";
        out += name + "_count" + labels + " " + std::to_string(cum.back()) + "\n";
      }
    }
  }
  for (const auto& [name, hf] : gauges) {
    out += "# HELP " + name + " " + hf.first + "\n# TYPE " + name + " gauge\n";
    if (!hf.second) continue;
    for (const auto& s : hf.second())
      out += name + render_labels(s.labels) + " " + number(s.value) + "\n";
  }
  return out;
}

Registry& global() {
  static Registry r;
  return r;
}

}  // namespace budstikke::metrics
