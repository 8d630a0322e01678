// Prometheus text exposition (format 0.0.4) for a daemon's GET /metrics: a writer of metric
// families and their samples, and a histogram to keep observations in.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hafab {

using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// Cumulative buckets (upper bounds, ascending), the sum and the count of what was observed.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  // Seconds from 5 ms to 30 s: step and request durations.
  static Histogram Seconds();

  void Observe(double value);
  const std::vector<double>& bounds() const { return bounds_; }
  // counts()[i]: observations <= bounds()[i] (cumulative); count(): all of them (+Inf).
  const std::vector<uint64_t>& counts() const { return counts_; }
  uint64_t count() const { return count_; }
  double sum() const { return sum_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  double sum_ = 0;
};

class MetricsWriter {
 public:
  // Starts the family `name` ("# HELP" and "# TYPE"): type is counter, gauge or histogram.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  // One sample of the current family; label values are escaped.
  void Sample(std::string_view name, const MetricLabels& labels, double value);
  // The _bucket (with le), _sum and _count samples of a histogram family `name`.
  void Samples(std::string_view name, const MetricLabels& labels, const Histogram& h);

  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

// "text/plain; version=0.0.4": the Content-Type of the exposition.
inline constexpr char kMetricsContentType[] = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace hafab
