// A real Prometheus (Debian package `prometheus`, loopback, temp dir, 1 s
// scrapes) scrapes a real spoold under the known workload, and a real
// worker process (the SDK's example, with its metrics) handling jobs, and loads
// deploy/prometheus/alerts.yml. Then every PromQL expression of the Grafana
// dashboard, and every alert expression (split at its comparisons, so a
// threshold that is not crossed still shows its series), is evaluated
// through /api/v1/query and must return series. The dashboard and the alerts
// can never silently reference a metric or label that does not exist.
#include <csignal>
#include <filesystem>
#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "tests/services/spoold/api_helpers.h"
#include "tests/services/spoold/metrics/metrics_test_util.h"
#include "tests/services/spoold/metrics/metrics_workload.h"
#include "tests/support/subprocess.h"

namespace spool::testing {
namespace {

using google::protobuf::Value;

const Value* Get(const Value& v, const std::string& key) {
  if (!v.has_struct_value()) return nullptr;
  auto it = v.struct_value().fields().find(key);
  return it == v.struct_value().fields().end() ? nullptr : &it->second;
}

class PrometheusServer {
 public:
  static absl::StatusOr<std::unique_ptr<PrometheusServer>> Start(
      int spoold_metrics_port, int worker_metrics_port) {
    auto binary = FindProgram("prometheus");
    if (!binary.ok()) return binary.status();
    auto dir = MakeTempDir("spool-prometheus-");
    if (!dir.ok()) return dir.status();
    auto server = std::unique_ptr<PrometheusServer>(new PrometheusServer(*dir));
    // The deploy rules, and the deploy job names, scraped every second.
    std::ofstream(*dir + "/prometheus.yml")
        << "global:\n"
           "  scrape_interval: 1s\n"
           "  evaluation_interval: 1s\n"
           "rule_files:\n"
           "  - "
        << SourcePath("deploy/prometheus/alerts.yml")
        << "\n"
           "scrape_configs:\n"
           "  - job_name: spoold\n"
           "    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << spoold_metrics_port
        << "']\n"
           "  - job_name: spool-workers\n"
           "    static_configs:\n"
           "      - targets: ['127.0.0.1:"
        << worker_metrics_port << "']\n";
    for (int attempt = 0; attempt < 5; ++attempt) {
      auto port = PickFreePort();
      if (!port.ok()) return port.status();
      SpawnOptions so;
      so.argv = {*binary, "--config.file=" + *dir + "/prometheus.yml",
                 "--storage.tsdb.path=" + *dir + "/data",
                 absl::StrCat("--web.listen-address=127.0.0.1:", *port),
                 "--log.level=warn"};
      so.output_path = *dir + "/prometheus.log";
      auto pid = Spawn(so);
      if (!pid.ok()) return pid.status();
      server->pid_ = *pid;
      server->port_ = *port;
      const absl::Time deadline = absl::Now() + absl::Seconds(30);
      while (absl::Now() < deadline && !TryReap(*pid).has_value()) {
        auto r = HttpGet(*port, "/-/ready", absl::Seconds(2));
        if (r.ok() && r->status == 200) return server;
        absl::SleepFor(absl::Milliseconds(100));
      }
      SignalAndReap(*pid, SIGKILL, absl::Seconds(5));
      server->pid_ = -1;
      if (!absl::StrContains(server->LogTail(), "address already in use"))
        break;
    }
    return absl::UnavailableError(
        absl::StrCat("prometheus did not become ready:\n", server->LogTail()));
  }

  ~PrometheusServer() {
    if (pid_ > 0) SignalAndReap(pid_, SIGTERM, absl::Seconds(10));
    std::filesystem::remove_all(dir_);
  }

  std::string LogTail() const {
    return ReadFileTail(dir_ + "/prometheus.log", 4096);
  }

  // GET an API path and return its `data`, failing unless status=success.
  absl::StatusOr<Value> Api(const std::string& path) {
    auto r = HttpGet(port_, path);
    if (!r.ok()) return r.status();
    auto json = ParseJson(r->body);
    if (!json.ok()) return json.status();
    const Value* status = Get(*json, "status");
    const Value* data = Get(*json, "data");
    if (r->status != 200 || status == nullptr ||
        status->string_value() != "success" || data == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("HTTP ", r->status, ": ", r->body));
    }
    return *data;
  }

  // Number of series (or 1 for a scalar) an instant query returns.
  absl::StatusOr<int> CountSeries(const std::string& expr) {
    auto data = Api("/api/v1/query?query=" + UrlEncode(expr));
    if (!data.ok()) return data.status();
    const Value* type = Get(*data, "resultType");
    const Value* result = Get(*data, "result");
    if (type == nullptr || result == nullptr) {
      return absl::InternalError("no result");
    }
    if (type->string_value() == "scalar") return 1;
    return result->list_value().values_size();
  }

  // The first value of an instant query, or nullopt when it has no series.
  std::optional<double> Scalar(const std::string& expr) {
    auto data = Api("/api/v1/query?query=" + UrlEncode(expr));
    if (!data.ok()) return std::nullopt;
    const Value* result = Get(*data, "result");
    if (result == nullptr || result->list_value().values_size() == 0) {
      return std::nullopt;
    }
    const Value* value = Get(result->list_value().values(0), "value");
    if (value == nullptr || value->list_value().values_size() != 2) {
      return std::nullopt;
    }
    return std::stod(value->list_value().values(1).string_value());
  }

 private:
  explicit PrometheusServer(std::string dir) : dir_(std::move(dir)) {}

  const std::string dir_;
  pid_t pid_ = -1;
  int port_ = 0;
};

TEST(PrometheusTest, EveryDashboardAndAlertExpressionReturnsSeries) {
  TestPostgres* pg = SharedPostgres();
  ASSERT_NE(pg, nullptr);
  auto url = pg->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  auto spoold = SpooldProcess::Start(
      *url,
      WithMetrics({"--maintenance_interval=100ms", "--metrics_refresh=500ms"}));
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  auto metrics_port = MetricsPort(**spoold);
  ASSERT_TRUE(metrics_port.ok()) << metrics_port.status();
  // The example worker, with its metrics, on queue "thumbnail": its
  // handler takes 200-800 ms, retries some first attempts and fails
  // "poison" for good.
  auto worker_metrics_port = PickFreePort();
  ASSERT_TRUE(worker_metrics_port.ok()) << worker_metrics_port.status();
  auto worker_dir = MakeTempDir("spool-prom-worker-");
  ASSERT_TRUE(worker_dir.ok()) << worker_dir.status();
  SpawnOptions wo;
  wo.argv = {SPOOL_EXAMPLE_WORKER,
             absl::StrCat("--target=", (*spoold)->Target()),
             "--queue=thumbnail", "--concurrency=4",
             absl::StrCat("--metrics_listen=127.0.0.1:", *worker_metrics_port)};
  wo.output_path = *worker_dir + "/worker.log";
  auto worker = Spawn(wo);
  ASSERT_TRUE(worker.ok()) << worker.status();
  struct Reaper {
    pid_t pid;
    std::string dir;
    ~Reaper() {
      SignalAndReap(pid, SIGTERM, absl::Seconds(20));
      std::filesystem::remove_all(dir);
    }
  } reaper{*worker, *worker_dir};

  auto prometheus =
      PrometheusServer::Start(*metrics_port, *worker_metrics_port);
  ASSERT_TRUE(prometheus.ok()) << prometheus.status();
  PrometheusServer& prom = **prometheus;

  Api api((*spoold)->Channel());
  constexpr int kThumbnails = 12;
  for (int i = 0; i < kThumbnails; ++i) {
    api.MustEnqueue("thumbnail", i == 0 ? "poison" : absl::StrCat("img", i));
  }
  RunKnownWorkload(api);
  // A long-poll that times out empty.
  EXPECT_TRUE(api.LeaseJobs("idle", 1, absl::Milliseconds(200)).empty());

  // Wait for a few scrapes of the finished workload, and for the rules to
  // have been evaluated.
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < deadline) {
    auto n = prom.Scalar(
        "count_over_time(spool_jobs_acked_total{job=\"spoold\",queue=\"work\"}["
        "1m])");
    auto expired =
        prom.Scalar("max(spool_leases_expired_total{queue=\"expiry\"})");
    auto handled = prom.Scalar(
        "sum(spool_worker_jobs_finished_total{job=\"spool-workers\","
        "queue=\"thumbnail\",outcome!=\"retry\"})");
    if (n.value_or(0) >= 4 && expired.value_or(0) >= 1 &&
        handled.value_or(0) >= kThumbnails) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(250));
  }
  ASSERT_EQ(prom.Scalar("up{job=\"spoold\"}").value_or(0), 1) << prom.LogTail();
  ASSERT_EQ(prom.Scalar("up{job=\"spool-workers\"}").value_or(0), 1)
      << prom.LogTail() << ReadFileTail(*worker_dir + "/worker.log", 4096);
  ASSERT_EQ(prom.Scalar("sum(spool_worker_jobs_finished_total{queue="
                        "\"thumbnail\",outcome!=\"retry\"})")
                .value_or(0),
            kThumbnails)
      << ReadFileTail(*worker_dir + "/worker.log", 4096);
  ASSERT_EQ(
      prom.Scalar("max(spool_jobs_acked_total{queue=\"work\"})").value_or(0),
      60)
      << prom.LogTail();

  // The dashboard.
  auto text = ReadFile(SourcePath("deploy/grafana/dashboards/spool.json"));
  ASSERT_TRUE(text.ok()) << text.status();
  auto dashboard = ParseJson(*text);
  ASSERT_TRUE(dashboard.ok()) << dashboard.status();
  std::vector<std::string> exprs = DashboardExpressions(*dashboard, "30s");
  ASSERT_GE(exprs.size(), 30u);
  std::vector<std::string> empty;
  for (const std::string& expr : exprs) {
    auto n = prom.CountSeries(expr);
    ASSERT_TRUE(n.ok()) << expr << "\n" << n.status();
    if (*n == 0) empty.push_back(expr);
  }
  EXPECT_TRUE(empty.empty()) << "dashboard expressions without series:\n"
                             << absl::StrJoin(empty, "\n");

  // The alert rules, as Prometheus loaded them.
  auto alerts_text = ReadFile(SourcePath("deploy/prometheus/alerts.yml"));
  ASSERT_TRUE(alerts_text.ok());
  size_t declared = 0;
  for (size_t i = alerts_text->find("- alert:"); i != std::string::npos;
       i = alerts_text->find("- alert:", i + 1)) {
    ++declared;
  }
  std::vector<std::pair<std::string, std::string>> rules;  // (name, query)
  absl::Time rules_deadline = absl::Now() + absl::Seconds(10);
  while (true) {
    auto data = prom.Api("/api/v1/rules?type=alert");
    ASSERT_TRUE(data.ok()) << data.status();
    rules.clear();
    bool evaluated = true;
    for (const Value& group : Get(*data, "groups")->list_value().values()) {
      for (const Value& rule : Get(group, "rules")->list_value().values()) {
        rules.emplace_back(Get(rule, "name")->string_value(),
                           Get(rule, "query")->string_value());
        const std::string health = Get(rule, "health")->string_value();
        if (health != "ok") {
          evaluated = false;
          if (absl::Now() > rules_deadline) {
            ADD_FAILURE() << rules.back().first << " health " << health << ": "
                          << Get(rule, "lastError")->string_value();
          }
        }
      }
    }
    if (evaluated || absl::Now() > rules_deadline) break;
    absl::SleepFor(absl::Milliseconds(200));
  }
  ASSERT_EQ(rules.size(), declared) << "Prometheus did not load every rule";
  int operands = 0;
  for (const auto& [name, query] : rules) {
    for (const std::string& operand : AlertOperands(query)) {
      ++operands;
      auto n = prom.CountSeries(operand);
      ASSERT_TRUE(n.ok()) << name << ": " << operand << "\n" << n.status();
      EXPECT_GT(*n, 0) << name << ": no series for " << operand;
    }
  }
  EXPECT_GE(operands, static_cast<int>(declared));
}

}  // namespace
}  // namespace spool::testing
