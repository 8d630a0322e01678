#include "core/prometheus.h"

#include <gtest/gtest.h>

namespace hafab {
namespace {

TEST(PrometheusTest, FamiliesSamplesAndEscapedLabels) {
  MetricsWriter w;
  w.Family("hafab_x_total", "counter", "Things counted");
  w.Sample("hafab_x_total", {{"role", "kvd"}, {"why", "a \"b\"\\\nc"}}, 3);
  w.Sample("hafab_x_total", {}, 0.25);
  EXPECT_EQ(w.text(),
            "# HELP hafab_x_total Things counted\n"
            "# TYPE hafab_x_total counter\n"
            "hafab_x_total{role=\"kvd\",why=\"a \\\"b\\\"\\\\\\nc\"} 3\n"
            "hafab_x_total 0.25\n");
}

TEST(PrometheusTest, HistogramBucketsAreCumulativeWithInf) {
  Histogram h({0.1, 1});
  h.Observe(0.05);
  h.Observe(0.5);
  h.Observe(7);
  EXPECT_EQ(h.counts(), (std::vector<uint64_t>{1, 2}));
  MetricsWriter w;
  w.Samples("d_seconds", {{"step", "fence"}}, h);
  EXPECT_EQ(w.text(),
            "d_seconds_bucket{step=\"fence\",le=\"0.1\"} 1\n"
            "d_seconds_bucket{step=\"fence\",le=\"1\"} 2\n"
            "d_seconds_bucket{step=\"fence\",le=\"+Inf\"} 3\n"
            "d_seconds_sum{step=\"fence\"} 7.55\n"
            "d_seconds_count{step=\"fence\"} 3\n");
}

}  // namespace
}  // namespace hafab
