#include "core/prometheus.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace hafab {

namespace {

std::string Escape(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out;
}

std::string Number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "NaN";
  return fmt::format("{}", v);  // shortest round-trip form: "3", "0.25", "1e+21"
}

std::string LabelText(const MetricLabels& labels) {
  if (labels.empty()) return "";
  std::string out = "{";
  for (const auto& [name, value] : labels) {
    if (out.size() > 1) out += ",";
    out += name + "=\"" + Escape(value) + "\"";
  }
  return out + "}";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size(), 0) {
  std::sort(bounds_.begin(), bounds_.end());
}

Histogram Histogram::Seconds() {
  return Histogram({0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
}

void Histogram::Observe(double value) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (value <= bounds_[i]) ++counts_[i];
  }
  ++count_;
  sum_ += value;
}

void MetricsWriter::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

void MetricsWriter::Sample(std::string_view name, const MetricLabels& labels, double value) {
  out_ += fmt::format("{}{} {}\n", name, LabelText(labels), Number(value));
}

void MetricsWriter::Samples(std::string_view name, const MetricLabels& labels, const Histogram& h) {
  for (size_t i = 0; i <= h.bounds().size(); ++i) {
    MetricLabels with_le = labels;
    bool inf = i == h.bounds().size();
    with_le.emplace_back("le", inf ? "+Inf" : Number(h.bounds()[i]));
    Sample(std::string(name) + "_bucket", with_le,
           static_cast<double>(inf ? h.count() : h.counts()[i]));
  }
  Sample(std::string(name) + "_sum", labels, h.sum());
  Sample(std::string(name) + "_count", labels, static_cast<double>(h.count()));
}

}  // namespace hafab
