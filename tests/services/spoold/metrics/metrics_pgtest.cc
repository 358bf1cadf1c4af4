// spoold's /metrics against real PostgreSQL: after a known workload the
// counters, histograms and database gauges say what happened, every label
// takes values from a small fixed set (or the queues used), the output is
// valid Prometheus text (our parser and `promtool check metrics`), and the
// live gauges (waiting long-polls, oldest open transaction) follow reality.
#include <grpcpp/generic/generic_stub.h>

#include <filesystem>
#include <functional>
#include <pqxx/pqxx>
#include <regex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "tests/services/spoold/api_helpers.h"
#include "tests/services/spoold/metrics/metrics_test_util.h"
#include "tests/services/spoold/metrics/metrics_workload.h"
#include "tests/support/subprocess.h"

namespace spool::testing {
namespace {

using ::testing::IsSubsetOf;

class MetricsTest : public ::testing::Test {
 protected:
  void SetUp() override { StartServer({}); }

  // `password` goes into the URL spoold gets (the test server trusts
  // loopback connections, so any password works).
  void StartServer(std::vector<std::string> extra,
                   const std::string& password = "") {
    TestPostgres* pg = SharedPostgres();
    ASSERT_NE(pg, nullptr);
    auto url = pg->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    database_ = url_.substr(url_.rfind('/') + 1);
    std::string spoold_url = url_;
    if (!password.empty()) {
      const size_t at = spoold_url.find('@');
      ASSERT_NE(at, std::string::npos) << spoold_url;
      spoold_url.insert(at, ":" + password);
    }
    // Metrics on a port the kernel picks, read back from the log.
    std::vector<std::string> flags = WithMetrics(
        {"--maintenance_interval=100ms", "--metrics_refresh=200ms"});
    flags.insert(flags.end(), extra.begin(), extra.end());
    auto server = SpooldProcess::Start(spoold_url, flags);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    auto port = MetricsPort(*server_);
    ASSERT_TRUE(port.ok()) << port.status();
    metrics_port_ = *port;
    api_ = std::make_unique<Api>(server_->Channel());
  }

  absl::StatusOr<std::string> ScrapeText() {
    auto r = HttpGet(metrics_port_, "/metrics");
    if (!r.ok()) return r.status();
    if (r->status != 200) {
      return absl::InternalError(absl::StrCat("HTTP ", r->status));
    }
    return r->body;
  }

  Exposition Scrape() {
    auto text = ScrapeText();
    EXPECT_TRUE(text.ok()) << text.status();
    if (!text.ok()) return Exposition();
    auto e = ParsePrometheusText(*text);
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *std::move(e) : Exposition();
  }

  // Scrapes until `done` holds (returning that scrape) or `timeout` passes
  // (returning the last one; the caller's expectations then say what is
  // missing).
  Exposition ScrapeUntil(const std::function<bool(const Exposition&)>& done,
                         absl::Duration timeout = absl::Seconds(15)) {
    const absl::Time deadline = absl::Now() + timeout;
    Exposition e = Scrape();
    while (!done(e) && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(100));
      e = Scrape();
    }
    return e;
  }

  std::string url_;
  std::string database_;
  int metrics_port_ = 0;
  std::unique_ptr<SpooldProcess> server_;
  std::unique_ptr<Api> api_;
};

double Jobs(const Exposition& e, const std::string& queue,
            const std::string& state) {
  return e.Sum("spool_queue_jobs", {{"queue", queue}, {"state", state}});
}

TEST_F(MetricsTest, KnownWorkloadShowsInCountersHistogramsAndGauges) {
  const absl::Time start = absl::Now();
  Workload w = RunKnownWorkload(*api_);
  ASSERT_EQ(w.created, 100);
  ASSERT_EQ(w.duplicates, 5);
  ASSERT_EQ(w.leased, 70);
  ASSERT_EQ(w.acked, 60);
  ASSERT_EQ(w.dead, 10);
  const int ready = w.created - w.acked - w.dead;  // 30

  // Counters move at once; gauges after the next refresh, expiry after the
  // 1 s lease plus a maintenance pass.
  Exposition e = ScrapeUntil([&](const Exposition& e) {
    return e.Sum("spool_leases_expired_total", {{"queue", "expiry"}}) == 1 &&
           Jobs(e, "work", "ready") == ready &&
           Jobs(e, "work", "dead") == w.dead &&
           Jobs(e, "work", "leased") == 0 && Jobs(e, "expiry", "ready") == 1 &&
           Jobs(e, "retry", "ready") == 1;
  });
  const Labels work{{"queue", "work"}};
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total", work), w.created);
  EXPECT_EQ(e.Sum("spool_jobs_deduplicated_total", work), w.duplicates);
  EXPECT_EQ(e.Sum("spool_jobs_leased_total", work), w.leased);
  EXPECT_EQ(e.Sum("spool_jobs_acked_total", work), w.acked);
  EXPECT_EQ(e.Sum("spool_jobs_nacked_total", work), 0);
  EXPECT_EQ(e.Sum("spool_jobs_dead_lettered_total",
                  {{"queue", "work"}, {"reason", "nack"}}),
            w.dead);
  EXPECT_EQ(e.Sum("spool_jobs_dead_lettered_total",
                  {{"queue", "work"}, {"reason", "lease_expired"}}),
            0);
  EXPECT_EQ(e.Sum("spool_leases_expired_total", work), 0);
  EXPECT_EQ(e.Sum("spool_jobs_nacked_total", {{"queue", "retry"}}), 1);
  EXPECT_EQ(e.Sum("spool_leases_expired_total", {{"queue", "expiry"}}), 1);

  // Histograms: one observation per job, with plausible sums.
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  EXPECT_EQ(e.Sum("spool_job_time_in_queue_seconds_count", work), w.leased);
  EXPECT_LE(e.Sum("spool_job_time_in_queue_seconds_sum", work),
            w.leased * elapsed);
  const Labels acked{{"queue", "work"}, {"outcome", "acked"}};
  const Labels dead{{"queue", "work"}, {"outcome", "dead"}};
  EXPECT_EQ(e.Sum("spool_job_processing_seconds_count", acked), w.acked);
  EXPECT_EQ(e.Sum("spool_job_processing_seconds_count", dead), w.dead);
  // Each job was held at least the workload's 20 ms pause.
  EXPECT_GE(e.Sum("spool_job_processing_seconds_sum", acked), w.acked * 0.02);
  EXPECT_GE(e.Sum("spool_job_processing_seconds_sum", dead), w.dead * 0.02);
  EXPECT_LE(e.Sum("spool_job_processing_seconds_sum", acked),
            w.acked * elapsed);
  // Statement rows add up to the jobs the statements carried.
  EXPECT_EQ(e.Sum("spool_batch_jobs_sum", {{"operation", "lease"}}),
            e.Sum("spool_jobs_leased_total"));
  EXPECT_EQ(e.Sum("spool_batch_jobs_sum", {{"operation", "enqueue"}}),
            e.Sum("spool_jobs_enqueued_total") +
                e.Sum("spool_jobs_deduplicated_total"));
  EXPECT_EQ(e.Sum("spool_batch_jobs_sum", {{"operation", "ack"}}), w.acked);
  EXPECT_GE(
      e.Sum("spool_db_round_trip_seconds_count", {{"operation", "lease"}}), 4);

  // RPCs by method and code, exactly as the workload made them.
  for (const auto& [key, n] : w.calls) {
    EXPECT_EQ(e.Sum("spool_rpc_duration_seconds_count",
                    {{"service", "spool.v1.JobService"},
                     {"method", key.first},
                     {"code", key.second}}),
              n)
        << key.first << " " << key.second;
  }
  EXPECT_GT(e.Sum("spool_rpc_duration_seconds_count",
                  {{"service", "grpc.health.v1.Health"}, {"method", "Check"}}),
            0);

  // Gauges from PostgreSQL.
  EXPECT_EQ(Jobs(e, "work", "ready"), ready);
  EXPECT_EQ(Jobs(e, "work", "dead"), w.dead);
  EXPECT_EQ(Jobs(e, "work", "leased"), 0);
  EXPECT_EQ(Jobs(e, "work", "scheduled"), 0);
  EXPECT_EQ(Jobs(e, "work", "succeeded"), 0);  // Deleted at ack by default.
  EXPECT_EQ(e.Sum("spool_stats_sampled_fraction"), 1);  // Small table: exact.
  const double age =
      e.Sum("spool_queue_oldest_ready_age_seconds", {{"queue", "work"}});
  EXPECT_GT(age, 0);
  EXPECT_LE(age, absl::ToDoubleSeconds(absl::Now() - start) + 1);
  EXPECT_GT(e.Sum("spool_db_table_size_bytes", {{"table", "spool_jobs"}}), 0);
  EXPECT_TRUE(e.Find("spool_db_table_dead_tuples", {{"table", "spool_jobs"}}));
  EXPECT_TRUE(e.Find("spool_db_table_last_autovacuum_timestamp_seconds",
                     {{"table", "spool_jobs"}}));
  EXPECT_GT(e.Sum("spool_stats_last_success_timestamp_seconds"),
            absl::ToDoubleSeconds(start - absl::UnixEpoch()));
  EXPECT_EQ(e.Sum("spool_stats_refresh_failures_total"), 0);

  // Live gauges.
  EXPECT_EQ(e.Sum("spool_database_up"), 1);
  EXPECT_EQ(e.Sum("spool_db_pool_size"), 4);  // The default --db_pool_size.
  EXPECT_LE(e.Sum("spool_db_pool_connections"), 4);
  EXPECT_TRUE(e.Find("spool_db_pool_waiting_tasks"));
  EXPECT_EQ(e.Sum("spool_long_polls_waiting"), 0);
  const std::set<std::string> versions = e.LabelValues("version");
  ASSERT_EQ(versions.size(), 1u);
  EXPECT_TRUE(
      std::regex_match(*versions.begin(), std::regex(R"(\d+\.\d+\.\d+)")));
  EXPECT_EQ(e.LabelValues("revision").size(), 1u);
  EXPECT_EQ(e.Sum("spool_build_info"), 1);
}

TEST_F(MetricsTest, LabelsAreBoundedAndOutputPassesPromtool) {
  Workload w = RunKnownWorkload(*api_);
  // Calls to methods that do not exist must not mint label values.
  grpc::GenericStub generic(server_->Channel());
  for (const char* method : {"/spool.v1.JobService/Bogus", "/made.up.Svc/X"}) {
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    grpc::ByteBuffer request, response;
    auto call = generic.PrepareUnaryCall(&ctx, method, request, &cq);
    call->StartCall();
    grpc::Status status;
    call->Finish(&response, &status, reinterpret_cast<void*>(1));
    void* tag;
    bool ok;
    ASSERT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(status.error_code(), grpc::StatusCode::UNIMPLEMENTED);
    cq.Shutdown();
    while (cq.Next(&tag, &ok)) {
    }
  }
  Exposition e = ScrapeUntil(
      [](const Exposition& e) { return Jobs(e, "work", "ready") == 30; });
  ASSERT_FALSE(e.samples.empty());
  auto text = ScrapeText();
  ASSERT_TRUE(text.ok()) << text.status();

  const std::set<std::string> queues = {"work", "retry", "expiry"};
  const std::set<std::string> states = {"scheduled", "ready", "leased",
                                        "succeeded", "dead",  "cancelled"};
  const std::set<std::string> codes = {"OK",
                                       "CANCELLED",
                                       "UNKNOWN",
                                       "INVALID_ARGUMENT",
                                       "DEADLINE_EXCEEDED",
                                       "NOT_FOUND",
                                       "ALREADY_EXISTS",
                                       "PERMISSION_DENIED",
                                       "RESOURCE_EXHAUSTED",
                                       "FAILED_PRECONDITION",
                                       "ABORTED",
                                       "OUT_OF_RANGE",
                                       "UNIMPLEMENTED",
                                       "INTERNAL",
                                       "UNAVAILABLE",
                                       "DATA_LOSS",
                                       "UNAUTHENTICATED"};
  const std::set<std::string> services = {
      "spool.v1.JobService", "grpc.health.v1.Health",
      "grpc.reflection.v1alpha.ServerReflection", "unknown"};
  const std::set<std::string> methods = {
      "Enqueue", "EnqueueBatch",         "Lease",  "Ack",
      "Nack",    "ExtendLease",          "GetJob", "Check",
      "Watch",   "ServerReflectionInfo", "unknown"};
  EXPECT_THAT(e.LabelValues("queue"), IsSubsetOf(queues));
  std::set<std::string> pool_states = {"in_use", "idle"};
  pool_states.insert(states.begin(), states.end());
  EXPECT_THAT(e.LabelValues("state"), IsSubsetOf(pool_states));
  EXPECT_THAT(e.LabelValues("code"), IsSubsetOf(codes));
  EXPECT_THAT(e.LabelValues("service"), IsSubsetOf(services));
  EXPECT_THAT(e.LabelValues("method"), IsSubsetOf(methods));
  EXPECT_THAT(e.LabelValues("reason"),
              IsSubsetOf(std::set<std::string>{"nack", "lease_expired"}));
  EXPECT_THAT(e.LabelValues("outcome"),
              IsSubsetOf(std::set<std::string>{"acked", "retried", "dead"}));
  EXPECT_THAT(e.LabelValues("table"),
              IsSubsetOf(std::set<std::string>{"spool_jobs",
                                               "spool_idempotency_keys"}));
  EXPECT_LE(e.LabelValues("operation").size(), 33u);
  for (const std::string& op : e.LabelValues("operation")) {
    EXPECT_TRUE(std::regex_match(op, std::regex("[a-z_]+"))) << op;
  }
  // Label names from a fixed set; no job id or error text anywhere.
  const std::set<std::string> label_names = {
      "queue",     "state", "code", "service", "method",   "reason",  "outcome",
      "operation", "table", "le",   "version", "revision", "quantile"};
  const std::set<std::string> ids(w.job_ids.begin(), w.job_ids.end());
  for (const Sample& s : e.samples) {
    for (const auto& [name, value] : s.labels) {
      EXPECT_TRUE(label_names.contains(name))
          << s.name << " has label " << name;
      // (Bucket bounds may look like small job ids.)
      if (name != "le" && name != "quantile") {
        EXPECT_FALSE(ids.contains(value)) << s.name << " has a job id label";
      }
      EXPECT_EQ(value.find(' '), std::string::npos) << s.name << "=" << value;
    }
  }
  EXPECT_LT(e.samples.size(), 2000u);

  // promtool's own parser and linter.
  auto promtool = FindProgram("promtool");
  ASSERT_TRUE(promtool.ok()) << promtool.status();
  auto dir = MakeTempDir("spool-metrics-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  const std::string input = *dir + "/metrics.txt";
  const std::string output = *dir + "/promtool.txt";
  AppendToFile(input, *text);
  SpawnOptions so;
  so.argv = {"/bin/sh", "-c",
             absl::StrCat(*promtool, " check metrics < ", input)};
  so.output_path = output;
  auto rc = RunToCompletion(so, absl::Seconds(30));
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << ReadFileTail(output, 8192);
  std::filesystem::remove_all(*dir);
}

TEST_F(MetricsTest, WaitingLongPollsAndTheirTimeouts) {
  std::thread poller([this] {
    Api api(server_->NewChannel());
    EXPECT_TRUE(api.LeaseJobs("idle", 1, absl::Seconds(3)).empty());
  });
  Exposition during = ScrapeUntil(
      [](const Exposition& e) {
        return e.Sum("spool_long_polls_waiting") == 1;
      },
      absl::Seconds(10));
  EXPECT_EQ(during.Sum("spool_long_polls_waiting"), 1);
  poller.join();
  Exposition after = Scrape();
  EXPECT_EQ(after.Sum("spool_long_polls_waiting"), 0);
  EXPECT_EQ(after.Sum("spool_long_poll_timeouts_total", {{"queue", "idle"}}),
            1);
  EXPECT_EQ(after.Sum("spool_rpc_duration_seconds_count",
                      {{"method", "Lease"}, {"code", "OK"}}),
            1);
  // The wait counts in the call's latency.
  EXPECT_GE(after.Sum("spool_rpc_duration_seconds_sum", {{"method", "Lease"}}),
            2.9);
}

TEST_F(MetricsTest, OldestOpenTransactionAndTableActivity) {
  api_->MustEnqueue("tx", "a");
  {
    pqxx::connection conn(url_);
    pqxx::work tx(conn);
    tx.exec("SELECT txid_current()");
    Exposition e = ScrapeUntil([](const Exposition& e) {
      return e.Sum("spool_db_oldest_transaction_age_seconds") >= 1.0;
    });
    EXPECT_GE(e.Sum("spool_db_oldest_transaction_age_seconds"), 1.0);
    tx.abort();
  }
  Exposition e = ScrapeUntil([](const Exposition& e) {
    return e.Sum("spool_db_oldest_transaction_age_seconds") < 1.0;
  });
  EXPECT_LT(e.Sum("spool_db_oldest_transaction_age_seconds"), 1.0);
  // Deleting acked rows leaves dead tuples until (auto)vacuum removes them.
  // (Backends flush their table statistics within ~10 s of going idle.)
  auto jobs = api_->LeaseJobs("tx", 1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(api_->AckOne(jobs[0].job_id(), jobs[0].lease_id()), 0);
  e = ScrapeUntil(
      [](const Exposition& e) {
        const Labels t{{"table", "spool_jobs"}};
        return e.Sum("spool_db_table_dead_tuples", t) > 0 ||
               e.Sum("spool_db_table_last_autovacuum_timestamp_seconds", t) > 0;
      },
      absl::Seconds(40));
  const Labels t{{"table", "spool_jobs"}};
  EXPECT_TRUE(e.Sum("spool_db_table_dead_tuples", t) > 0 ||
              e.Sum("spool_db_table_last_autovacuum_timestamp_seconds", t) > 0);
}

class MetricsQueueLimitTest : public MetricsTest {
 protected:
  void SetUp() override { StartServer({"--metrics_max_queues=2"}); }
};

TEST_F(MetricsQueueLimitTest, QueuesPastTheLimitShareOneLabel) {
  for (int i = 1; i <= 5; ++i) api_->MustEnqueue(absl::StrCat("q", i), "x");
  Exposition e = ScrapeUntil([](const Exposition& e) {
    return e.Sum("spool_queue_jobs", {{"state", "ready"}}) == 5;
  });
  const std::set<std::string> labels = e.LabelValues("queue");
  EXPECT_EQ(labels.size(), 3u);
  EXPECT_TRUE(labels.contains("_other"));
  // Nothing is lost, only merged.
  EXPECT_EQ(e.Sum("spool_jobs_enqueued_total"), 5);
  EXPECT_EQ(e.Sum("spool_queue_jobs", {{"state", "ready"}}), 5);
}

// JSON log lines of a spoold that loses its database for a while: start-up
// config with the password redacted, client errors at debug, server errors
// at warning with their gRPC code, reconnects; and the matching metrics.
class MetricsOutageTest : public MetricsTest {
 protected:
  void SetUp() override {
    StartServer({"--log_level=debug", "--log_json"}, kPassword);
  }

  static constexpr char kPassword[] = "hunter2-secret";

  // Parsed JSON log lines with this msg.
  std::vector<google::protobuf::Value> LogLines(const std::string& msg) {
    std::vector<google::protobuf::Value> out;
    auto text = ReadFile(server_->LogPath());
    EXPECT_TRUE(text.ok()) << text.status();
    if (!text.ok()) return out;
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      if (line.empty() || line[0] != '{') continue;
      auto v = ParseJson(std::string(line));
      EXPECT_TRUE(v.ok()) << line;
      if (v.ok() &&
          v->struct_value().fields().at("msg").string_value() == msg) {
        out.push_back(*std::move(v));
      }
    }
    return out;
  }

  static std::string FieldOf(const google::protobuf::Value& v,
                             const std::string& key) {
    auto it = v.struct_value().fields().find(key);
    return it == v.struct_value().fields().end() ? ""
                                                 : it->second.string_value();
  }

  grpc::StatusCode EnqueueOne() {
    v1::JobSpec spec;
    spec.set_queue("outage");
    spec.set_payload("p");
    v1::EnqueueResponse resp;
    return api_->Enqueue(spec, &resp, absl::Seconds(5)).error_code();
  }

  void SetConnections(bool allowed) {
    ExecSql(SharedPostgres()->AdminUrl(),
            absl::StrCat("ALTER DATABASE \"", database_,
                         "\" ALLOW_CONNECTIONS ", allowed ? "true" : "false"));
    if (!allowed) {
      ExecSql(SharedPostgres()->AdminUrl(),
              absl::StrCat("SELECT pg_terminate_backend(pid) FROM "
                           "pg_stat_activity WHERE datname = '",
                           database_, "' AND pid <> pg_backend_pid()"));
    }
  }
};

TEST_F(MetricsOutageTest, OutageShowsInLogsAndMetrics) {
  v1::JobSpec bad;
  bad.set_queue("outage");
  bad.set_priority(1000);
  v1::EnqueueResponse resp;
  EXPECT_EQ(api_->Enqueue(bad, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  ASSERT_EQ(EnqueueOne(), grpc::StatusCode::OK);

  SetConnections(false);
  grpc::StatusCode code = grpc::StatusCode::OK;
  const absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (code != grpc::StatusCode::UNAVAILABLE && absl::Now() < deadline) {
    code = EnqueueOne();
    if (code != grpc::StatusCode::UNAVAILABLE) {
      absl::SleepFor(absl::Milliseconds(50));
    }
  }
  EXPECT_EQ(code, grpc::StatusCode::UNAVAILABLE);
  Exposition down = ScrapeUntil([](const Exposition& e) {
    return e.Sum("spool_database_up") == 0 &&
           e.Sum("spool_stats_refresh_failures_total") > 0;
  });
  EXPECT_EQ(down.Sum("spool_database_up"), 0);
  EXPECT_GT(down.Sum("spool_stats_refresh_failures_total"), 0);
  EXPECT_GT(down.Sum("spool_rpc_duration_seconds_count",
                     {{"method", "Enqueue"}, {"code", "UNAVAILABLE"}}),
            0);

  SetConnections(true);
  const absl::Time back_deadline = absl::Now() + absl::Seconds(15);
  while (EnqueueOne() != grpc::StatusCode::OK && absl::Now() < back_deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  Exposition up = ScrapeUntil([](const Exposition& e) {
    return e.Sum("spool_database_up") == 1 &&
           e.Sum("spool_db_pool_reconnects_total") > 0 &&
           e.Sum("spool_queue_jobs",
                 {{"queue", "outage"}, {"state", "ready"}}) >= 2;
  });
  EXPECT_EQ(up.Sum("spool_database_up"), 1);
  EXPECT_GT(up.Sum("spool_db_pool_reconnects_total"), 0);
  EXPECT_GE(
      up.Sum("spool_queue_jobs", {{"queue", "outage"}, {"state", "ready"}}), 2);

  // The log.
  auto all = ReadFile(server_->LogPath());
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->find(kPassword), std::string::npos) << "password in the log";
  auto start = LogLines("starting spoold");
  ASSERT_EQ(start.size(), 1u);
  EXPECT_NE(FieldOf(start[0], "database_url").find("***"), std::string::npos);
  EXPECT_EQ(FieldOf(start[0], "metrics_listen"), "127.0.0.1:0");
  EXPECT_EQ(FieldOf(start[0], "metrics_refresh"), "200ms");
  auto listening = LogLines("metrics listening");
  ASSERT_EQ(listening.size(), 1u);
  EXPECT_EQ(FieldOf(listening[0], "port"), absl::StrCat(metrics_port_));

  bool refused = false;
  for (const auto& v : LogLines("rpc refused")) {
    refused |= FieldOf(v, "level") == "debug" &&
               FieldOf(v, "method") == "Enqueue" &&
               FieldOf(v, "code") == "INVALID_ARGUMENT" &&
               !FieldOf(v, "error").empty();
  }
  EXPECT_TRUE(refused) << "no debug line for the INVALID_ARGUMENT call";
  bool failed = false;
  for (const auto& v : LogLines("rpc failed")) {
    failed |= FieldOf(v, "level") == "warning" &&
              FieldOf(v, "method") == "Enqueue" &&
              FieldOf(v, "code") == "UNAVAILABLE";
  }
  EXPECT_TRUE(failed) << "no warning for the UNAVAILABLE call";
  EXPECT_FALSE(LogLines("database unreachable").empty());
  EXPECT_FALSE(LogLines("database reconnected").empty());
  EXPECT_FALSE(LogLines("metrics: database gauges not refreshed").empty());
  EXPECT_FALSE(LogLines("metrics: database gauges refreshed again").empty());
}

}  // namespace
}  // namespace spool::testing
