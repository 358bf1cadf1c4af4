// The Grafana dashboard's worker panels (deploy/grafana) may only use metric
// families spool::PrometheusWorkerObserver exports; spoold's own families are
// checked by spoold_metrics_exporter_test, and spoold_prometheus_pgtest then
// evaluates every panel against a real Prometheus scraping a real worker.
#include <set>
#include <string>

#include "gtest/gtest.h"
#include "prometheus/registry.h"
#include "spool/prometheus.h"
#include "tests/services/spoold/metrics/metrics_test_util.h"

namespace spool::testing {
namespace {

TEST(WorkerDashboardTest, WorkerPanelsUseOnlyFamiliesTheSdkExports) {
  PrometheusWorkerObserver observer;
  observer.OnLeased("q", 0);  // Every family gets its series.
  std::set<std::string> known;
  for (const prometheus::MetricFamily& f : observer.registry()->Collect()) {
    known.insert(f.name);
    if (f.type == prometheus::MetricType::Histogram) {
      for (const char* s : {"_bucket", "_sum", "_count"}) {
        known.insert(f.name + s);
      }
    }
  }
  ASSERT_GE(known.size(), 8u);

  auto text = ReadFile(SourcePath("deploy/grafana/dashboards/spool.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  auto dashboard = ParseJson(*text);
  ASSERT_TRUE(dashboard.ok()) << dashboard.status();
  std::set<std::string> used;
  for (const std::string& expr : DashboardExpressions(*dashboard)) {
    for (const std::string& name : MetricNames(expr, "spool_worker_")) {
      used.insert(name);
      EXPECT_TRUE(known.contains(name))
          << expr << "\nuses " << name << ", which the SDK does not export";
    }
  }
  // Every worker family has a panel.
  for (const char* family :
       {"spool_worker_jobs_finished_total",
        "spool_worker_handler_duration_seconds_bucket",
        "spool_worker_handlers_in_flight", "spool_worker_jobs_leased_total",
        "spool_worker_job_failures_total",
        "spool_worker_lease_extension_failures_total",
        "spool_worker_lease_errors_total",
        "spool_worker_ack_latency_seconds_bucket"}) {
    EXPECT_TRUE(used.contains(family)) << family << " has no panel";
    EXPECT_TRUE(known.contains(family)) << family;
  }
}

}  // namespace
}  // namespace spool::testing
