// The exporter without a database: observer calls become the right counters
// and histograms, labels stay bounded, the output parses as the Prometheus
// text format, /metrics serves it, and every metric the dashboard and the
// alert rules use is one the exporter exports.
#include "metrics/exporter.h"

#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/services/spoold/metrics/metrics_test_util.h"

namespace spool::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::IsSupersetOf;

metrics::ExporterOptions Options(int max_queues = 100) {
  metrics::ExporterOptions o;
  o.listen = "127.0.0.1:0";
  o.max_queues = max_queues;
  o.version = "9.8.7";
  o.revision = "abcdef";
  return o;
}

Exposition MustParse(const std::string& text) {
  auto e = ParsePrometheusText(text);
  EXPECT_TRUE(e.ok()) << e.status() << "\n" << text;
  return e.ok() ? *std::move(e) : Exposition();
}

TEST(ExporterTest, ObserverCallsBecomeCountersAndHistograms) {
  metrics::Exporter exporter(Options());
  exporter.OnEnqueued("mail", 7, 2);
  exporter.OnEnqueued("mail", 3, 0);
  exporter.OnEnqueueBatch(12);
  exporter.OnLeaseBatch("mail", 4);
  for (int i = 0; i < 4; ++i) exporter.OnLeased("mail", absl::Milliseconds(30));
  exporter.OnAckBatch(2);
  exporter.OnAcked("mail", absl::Seconds(2));
  exporter.OnAcked("mail", absl::Seconds(4));
  exporter.OnNacked("mail", /*dead=*/false, absl::Milliseconds(500));
  exporter.OnNacked("mail", /*dead=*/true, absl::Milliseconds(700));
  exporter.OnLeasesExpired("mail", 3, 1);
  exporter.OnLongPollTimeout("sms");
  exporter.OnLeasesReleased("mail", 2);
  exporter.OnDatabaseRoundTrip("lease", absl::Microseconds(800));
  exporter.OnRpcDone("spool.v1.JobService", "Enqueue", grpc::StatusCode::OK,
                     absl::Milliseconds(3));
  exporter.OnRpcDone("spool.v1.JobService", "Enqueue",
                     grpc::StatusCode::INVALID_ARGUMENT, absl::Milliseconds(1));

  Exposition e = MustParse(exporter.Render());
  const Labels mail{{"queue", "mail"}};
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total", mail), 10);
  EXPECT_EQ(e.Sum("spool_jobs_deduplicated_total", mail), 2);
  EXPECT_EQ(e.Sum("spool_jobs_leased_total", mail), 4);
  EXPECT_EQ(e.Sum("spool_jobs_acked_total", mail), 2);
  EXPECT_EQ(e.Sum("spool_jobs_nacked_total", mail), 1);
  EXPECT_EQ(e.Sum("spool_jobs_dead_lettered_total",
                  {{"queue", "mail"}, {"reason", "nack"}}),
            1);
  EXPECT_EQ(e.Sum("spool_jobs_dead_lettered_total",
                  {{"queue", "mail"}, {"reason", "lease_expired"}}),
            1);
  EXPECT_EQ(e.Sum("spool_leases_expired_total", mail), 4);
  EXPECT_EQ(e.Sum("spool_long_poll_timeouts_total", {{"queue", "sms"}}), 1);
  EXPECT_EQ(e.Sum("spool_long_poll_timeouts_total", mail), 0);
  EXPECT_EQ(e.Sum("spool_leases_released_total", mail), 2);
  EXPECT_EQ(e.Sum("spool_leases_released_total", {{"queue", "sms"}}), 0);

  EXPECT_EQ(e.Sum("spool_job_time_in_queue_seconds_count", mail), 4);
  EXPECT_NEAR(e.Sum("spool_job_time_in_queue_seconds_sum", mail), 0.12, 1e-9);
  // 30 ms falls in the 0.05 bucket, not the 0.025 one.
  EXPECT_EQ(e.Sum("spool_job_time_in_queue_seconds_bucket",
                  {{"queue", "mail"}, {"le", "0.025"}}),
            0);
  EXPECT_EQ(e.Sum("spool_job_time_in_queue_seconds_bucket",
                  {{"queue", "mail"}, {"le", "0.05"}}),
            4);
  const Labels acked{{"queue", "mail"}, {"outcome", "acked"}};
  EXPECT_EQ(e.Sum("spool_job_processing_seconds_count", acked), 2);
  EXPECT_DOUBLE_EQ(e.Sum("spool_job_processing_seconds_sum", acked), 6);
  EXPECT_DOUBLE_EQ(e.Sum("spool_job_processing_seconds_sum",
                         {{"queue", "mail"}, {"outcome", "retried"}}),
                   0.5);
  EXPECT_DOUBLE_EQ(e.Sum("spool_job_processing_seconds_sum",
                         {{"queue", "mail"}, {"outcome", "dead"}}),
                   0.7);
  EXPECT_EQ(e.Sum("spool_batch_jobs_sum", {{"operation", "enqueue"}}), 12);
  EXPECT_EQ(e.Sum("spool_batch_jobs_sum", {{"operation", "lease"}}), 4);
  EXPECT_EQ(e.Sum("spool_batch_jobs_sum", {{"operation", "ack"}}), 2);
  EXPECT_EQ(
      e.Sum("spool_db_round_trip_seconds_count", {{"operation", "lease"}}), 1);
  EXPECT_EQ(e.Sum("spool_rpc_duration_seconds_count",
                  {{"method", "Enqueue"}, {"code", "INVALID_ARGUMENT"}}),
            1);
  EXPECT_EQ(e.Sum("spool_rpc_duration_seconds_count",
                  {{"service", "spool.v1.JobService"},
                   {"method", "Enqueue"},
                   {"code", "OK"}}),
            1);
  EXPECT_EQ(
      e.Sum("spool_build_info", {{"version", "9.8.7"}, {"revision", "abcdef"}}),
      1);
}

TEST(ExporterTest, QueueLabelsStopAtTheLimitAndTheRestShareOther) {
  metrics::Exporter exporter(Options(/*max_queues=*/2));
  for (const char* q : {"a", "b", "c", "d", "a"}) exporter.OnEnqueued(q, 1, 0);
  Exposition e = MustParse(exporter.Render());
  EXPECT_EQ(e.LabelValues("queue"),
            (std::set<std::string>{"a", "b", metrics::Exporter::kOtherQueue}));
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total", {{"queue", "a"}}), 2);
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total", {{"queue", "_other"}}), 2);
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total"), 5);
}

TEST(ExporterTest, DatabaseOperationLabelsAreCapped) {
  metrics::Exporter exporter(Options());
  std::vector<std::string> ops;
  for (int i = 0; i < 100; ++i) ops.push_back("op" + std::to_string(i));
  for (const std::string& op : ops) {
    exporter.OnDatabaseRoundTrip(op.c_str(), absl::Milliseconds(1));
  }
  Exposition e = MustParse(exporter.Render());
  EXPECT_LE(e.LabelValues("operation").size(), 32u + 1u + 3u);
  EXPECT_EQ(e.Sum("spool_db_round_trip_seconds_count"), 100);
}

TEST(ExporterTest, ServesMetricsOverHttp) {
  metrics::Exporter exporter(Options());
  ASSERT_TRUE(exporter.Start().ok());
  ASSERT_GT(exporter.port(), 0);
  exporter.OnEnqueued("http", 5, 0);
  auto r = HttpGet(exporter.port(), "/metrics");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  Exposition e = MustParse(r->body);
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total", {{"queue", "http"}}), 5);
  exporter.Stop();
  EXPECT_FALSE(HttpGet(exporter.port(), "/metrics", absl::Seconds(2)).ok());
}

TEST(ExporterTest, StartFailsWhenThePortIsTaken) {
  metrics::Exporter first(Options());
  ASSERT_TRUE(first.Start().ok());
  metrics::ExporterOptions o = Options();
  o.listen = "127.0.0.1:" + std::to_string(first.port());
  metrics::Exporter second(o);
  EXPECT_FALSE(second.Start().ok());
}

store::DatabaseStats SomeStats() {
  store::DatabaseStats s;
  s.queues = {"mail", "sms"};
  s.jobs = {{"mail", store::JobState::kReady, 12, true},
            {"mail", store::JobState::kDead, 3, true},
            {"sms", store::JobState::kScheduled, 1000.5, false}};
  s.sampled_fraction = 0.25;
  s.oldest_ready = {{"mail", absl::Seconds(42)}};
  store::TableStats t;
  t.table = "spool_jobs";
  t.live_tuples = 100;
  t.dead_tuples = 7;
  t.total_bytes = 8192;
  t.last_autovacuum = absl::FromUnixSeconds(1700000000);
  s.tables = {t};
  s.oldest_transaction_age = absl::Seconds(9);
  return s;
}

TEST(ExporterTest, DatabaseStatsBecomeZeroFilledGauges) {
  metrics::Exporter exporter(Options());
  exporter.ApplyStats(SomeStats());
  Exposition e = MustParse(exporter.Render());
  auto jobs = [&](const char* q, const char* state) {
    return e.Find("spool_queue_jobs", {{"queue", q}, {"state", state}});
  };
  EXPECT_EQ(jobs("mail", "ready"), 12);
  EXPECT_EQ(jobs("mail", "dead"), 3);
  EXPECT_EQ(jobs("mail", "leased"), 0);  // Present, at 0.
  EXPECT_EQ(jobs("sms", "scheduled"), 1000.5);
  EXPECT_EQ(jobs("sms", "cancelled"), 0);
  std::set<std::string> states;
  for (const Sample& s : e.samples) {
    if (s.name == "spool_queue_jobs") states.insert(s.labels.at("state"));
  }
  EXPECT_EQ(states.size(), 6u);
  EXPECT_EQ(e.Find("spool_queue_oldest_ready_age_seconds", {{"queue", "mail"}}),
            42);
  EXPECT_EQ(e.Find("spool_queue_oldest_ready_age_seconds", {{"queue", "sms"}}),
            0);
  EXPECT_EQ(e.Find("spool_stats_sampled_fraction"), 0.25);
  const Labels t{{"table", "spool_jobs"}};
  EXPECT_EQ(e.Find("spool_db_table_live_tuples", t), 100);
  EXPECT_EQ(e.Find("spool_db_table_dead_tuples", t), 7);
  EXPECT_EQ(e.Find("spool_db_table_size_bytes", t), 8192);
  EXPECT_EQ(e.Find("spool_db_table_last_autovacuum_timestamp_seconds", t),
            1700000000);
  EXPECT_EQ(e.Find("spool_db_table_last_vacuum_timestamp_seconds", t), 0);
  EXPECT_EQ(e.Find("spool_db_oldest_transaction_age_seconds"), 9);

  // A queue that is gone loses its series instead of keeping stale values.
  store::DatabaseStats later = SomeStats();
  later.queues = {"mail"};
  later.jobs.pop_back();
  exporter.ApplyStats(later);
  e = MustParse(exporter.Render());
  EXPECT_FALSE(jobs("sms", "scheduled").has_value());
  EXPECT_FALSE(
      e.Find("spool_queue_oldest_ready_age_seconds", {{"queue", "sms"}}));
  EXPECT_EQ(jobs("mail", "ready"), 12);
}

TEST(ExporterTest, DatabaseGaugesOfQueuesPastTheLimitAreMerged) {
  metrics::Exporter exporter(Options(/*max_queues=*/1));
  exporter.ApplyStats(SomeStats());
  Exposition e = MustParse(exporter.Render());
  EXPECT_EQ(e.LabelValues("queue"),
            (std::set<std::string>{"mail", metrics::Exporter::kOtherQueue}));
  EXPECT_EQ(
      e.Find("spool_queue_jobs", {{"queue", "_other"}, {"state", "scheduled"}}),
      1000.5);
}

// The dashboard and the alert rules may only use metric families the
// exporter exports (the Prometheus test then checks they have series);
// spool_worker_* families are the worker SDK's.
TEST(ExporterTest, DeployFilesUseOnlyExportedMetrics) {
  metrics::Exporter exporter(Options());
  // One series in every family.
  exporter.ApplyStats(SomeStats());
  exporter.OnEnqueued("mail", 1, 1);
  exporter.OnDatabaseRoundTrip("lease", absl::Milliseconds(1));
  exporter.OnRpcDone("spool.v1.JobService", "Enqueue", grpc::StatusCode::OK,
                     absl::Milliseconds(1));
  Exposition e = MustParse(exporter.Render());
  std::set<std::string> known;
  for (const auto& [family, type] : e.types) {
    known.insert(family);
    if (type == "histogram") {
      for (const char* s : {"_bucket", "_sum", "_count"})
        known.insert(family + s);
    }
  }
  // Families the exporter declares even before any series exists.
  EXPECT_THAT(known, IsSupersetOf({"spool_queue_jobs",
                                   "spool_queue_oldest_ready_age_seconds",
                                   "spool_db_table_dead_tuples",
                                   "spool_db_oldest_transaction_age_seconds",
                                   "spool_rpc_duration_seconds_count"}));
  auto dashboard_text =
      ReadFile(SourcePath("deploy/grafana/dashboards/spool.json"));
  ASSERT_TRUE(dashboard_text.ok()) << dashboard_text.status();
  auto dashboard = ParseJson(*dashboard_text);
  ASSERT_TRUE(dashboard.ok()) << dashboard.status();
  auto alerts_text = ReadFile(SourcePath("deploy/prometheus/alerts.yml"));
  ASSERT_TRUE(alerts_text.ok()) << alerts_text.status();
  std::vector<std::string> exprs = DashboardExpressions(*dashboard);
  const std::vector<std::string> alerts = RuleExpressionsFromYaml(*alerts_text);
  EXPECT_EQ(alerts.size(), 11u);
  exprs.insert(exprs.end(), alerts.begin(), alerts.end());
  std::set<std::string> used;
  for (const std::string& expr : exprs) {
    std::set<std::string> names = MetricNames(expr);
    EXPECT_FALSE(names.empty() && !absl::StrContains(expr, "up{"))
        << "no metric in " << expr;
    for (const std::string& name : names) {
      // The worker SDK's families (checked by its prometheus_observer_test).
      if (absl::StartsWith(name, "spool_worker_")) continue;
      used.insert(name);
      EXPECT_TRUE(known.contains(name))
          << expr << "\nuses " << name << ", which spoold does not export";
    }
  }
  EXPECT_GT(used.size(), 25u);
}

TEST(ExporterTest, DashboardHasDatasourceAndQueueVariables) {
  auto text = ReadFile(SourcePath("deploy/grafana/dashboards/spool.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  auto dashboard = ParseJson(*text);
  ASSERT_TRUE(dashboard.ok()) << dashboard.status();
  const auto& fields = dashboard->struct_value().fields();
  std::map<std::string, std::string> variables;  // name -> type
  for (const auto& v : fields.at("templating")
                           .struct_value()
                           .fields()
                           .at("list")
                           .list_value()
                           .values()) {
    variables[v.struct_value().fields().at("name").string_value()] =
        v.struct_value().fields().at("type").string_value();
  }
  EXPECT_EQ(variables["datasource"], "datasource");
  EXPECT_EQ(variables["queue"], "query");
  // Every panel with queries reads the chosen data source.
  int panels = 0;
  for (const auto& p : fields.at("panels").list_value().values()) {
    const auto& pf = p.struct_value().fields();
    if (!pf.contains("targets")) continue;
    ++panels;
    EXPECT_EQ(
        pf.at("datasource").struct_value().fields().at("uid").string_value(),
        "${datasource}")
        << pf.at("title").string_value();
  }
  EXPECT_GE(panels, 15);
  std::vector<std::string> exprs = DashboardExpressions(*dashboard);
  EXPECT_GE(exprs.size(), 30u);
  for (const std::string& x : exprs)
    EXPECT_EQ(x.find('$'), std::string::npos) << x;
}

TEST(MetricsTestUtilTest, AlertOperandsDropComparisonsAndThresholds) {
  EXPECT_THAT(AlertOperands("max by (queue) (x{a=~\"b|c\"}) > 300"),
              ElementsAre("max by (queue) (x{a=~\"b|c\"})"));
  EXPECT_THAT(AlertOperands("a / b > 0.5\n and c{d!=\"e>f\"} > 1e5"),
              ElementsAre("a / b", "c{d!=\"e>f\"}"));
  EXPECT_THAT(AlertOperands("up{job=\"x\"} == bool 0"),
              ElementsAre("up{job=\"x\"}"));
  EXPECT_THAT(AlertOperands("sum(rate(m[5m]))"),
              ElementsAre("sum(rate(m[5m]))"));
  EXPECT_THAT(AlertOperands("candor_total unless oregon"),
              ElementsAre("candor_total", "oregon"));
}

TEST(MetricsTestUtilTest, RuleExpressionsAndMetricNames) {
  EXPECT_THAT(RuleExpressionsFromYaml("  - alert: A\n    expr: up == 0\n"
                                      "    for: 1m\n  - alert: B\n"
                                      "    expr: >-\n      a\n      / b > 1\n"
                                      "    labels: {}\n"),
              ElementsAre("up == 0", "a\n/ b > 1"));
  EXPECT_EQ(MetricNames("max(spool_a{table=\"spool_jobs\"}) / spool_b_total"),
            (std::set<std::string>{"spool_a", "spool_b_total"}));
}

TEST(MetricsTestUtilTest, ParserRejectsMalformedExpositions) {
  EXPECT_FALSE(ParsePrometheusText("x 1\n").ok());  // No # TYPE.
  EXPECT_FALSE(ParsePrometheusText("# TYPE x gauge\nx{a=\"1} 1\n").ok());
  EXPECT_FALSE(ParsePrometheusText("# TYPE x gauge\nx{1a=\"1\"} 1\n").ok());
  EXPECT_FALSE(ParsePrometheusText("# TYPE x gauge\nx one\n").ok());
  EXPECT_FALSE(
      ParsePrometheusText("# TYPE h histogram\nh_bucket{le=\"1\"} 3\n"
                          "h_bucket{le=\"+Inf\"} 2\nh_count 2\nh_sum 1\n")
          .ok());  // Not cumulative.
  auto ok = ParsePrometheusText(
      "# HELP x A \"gauge\".\n# TYPE x gauge\nx{a=\"q\\\"\\\\\\n\"} NaN\n"
      "x{a=\"b\"} -Inf 1700000000000\n");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->LabelValues("a"), (std::set<std::string>{"q\"\\\n", "b"}));
}

}  // namespace
}  // namespace spool::testing
