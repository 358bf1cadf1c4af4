// spool::PrometheusWorkerObserver and ServeWorkerMetrics: exact metric
// values after a known sequence of events (fed directly, and produced by a
// real Worker against the in-memory JobService), bounded labels, and
// /metrics over HTTP in the Prometheus text format.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/notification.h"
#include "clocked_worker.h"
#include "fake_job_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manual_clock.h"
#include "prometheus/counter.h"
#include "prometheus/registry.h"
#include "spool/prometheus.h"
#include "spool/worker.h"
#include "test_util.h"

namespace spool::testing {
namespace {

using Labels = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------
// Reading a registry.

class Snapshot {
 public:
  explicit Snapshot(const prometheus::Registry& registry)
      : families_(registry.Collect()) {}

  const prometheus::MetricFamily* Family(const std::string& name) const {
    for (const prometheus::MetricFamily& f : families_) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }

  // The series of `name` with exactly `labels`, or null.
  const prometheus::ClientMetric* Find(const std::string& name,
                                       const Labels& labels) const {
    const prometheus::MetricFamily* family = Family(name);
    if (family == nullptr) return nullptr;
    for (const prometheus::ClientMetric& m : family->metric) {
      if (LabelsOf(m) == labels) return &m;
    }
    return nullptr;
  }

  // Counter or gauge value; NaN when the series does not exist.
  double Value(const std::string& name, const Labels& labels) const {
    const prometheus::ClientMetric* m = Find(name, labels);
    if (m == nullptr) return std::nan("");
    switch (Family(name)->type) {
      case prometheus::MetricType::Counter:
        return m->counter.value;
      case prometheus::MetricType::Gauge:
        return m->gauge.value;
      default:
        return std::nan("");
    }
  }

  // Histogram sample count; -1 when the series does not exist.
  int64_t Count(const std::string& name, const Labels& labels) const {
    const prometheus::ClientMetric* m = Find(name, labels);
    return m == nullptr ? -1 : static_cast<int64_t>(m->histogram.sample_count);
  }

  double Sum(const std::string& name, const Labels& labels) const {
    const prometheus::ClientMetric* m = Find(name, labels);
    return m == nullptr ? std::nan("") : m->histogram.sample_sum;
  }

  // Cumulative count of the bucket with upper bound `le`; -1 if none.
  int64_t Bucket(const std::string& name, const Labels& labels,
                 double le) const {
    const prometheus::ClientMetric* m = Find(name, labels);
    if (m == nullptr) return -1;
    for (const auto& b : m->histogram.bucket) {
      if (b.upper_bound == le) return static_cast<int64_t>(b.cumulative_count);
    }
    return -1;
  }

  // Sum over the series of `name` (counters and gauges).
  double Total(const std::string& name) const {
    const prometheus::MetricFamily* family = Family(name);
    if (family == nullptr) return std::nan("");
    double total = 0;
    for (const prometheus::ClientMetric& m : family->metric) {
      total += family->type == prometheus::MetricType::Gauge ? m.gauge.value
                                                             : m.counter.value;
    }
    return total;
  }

  const std::vector<prometheus::MetricFamily>& families() const {
    return families_;
  }

  static Labels LabelsOf(const prometheus::ClientMetric& m) {
    Labels labels;
    for (const auto& l : m.label) labels[l.name] = l.value;
    return labels;
  }

 private:
  std::vector<prometheus::MetricFamily> families_;
};

constexpr char kDuration[] = "spool_worker_handler_duration_seconds";
constexpr char kFinished[] = "spool_worker_jobs_finished_total";
constexpr char kFailures[] = "spool_worker_job_failures_total";
constexpr char kInFlight[] = "spool_worker_handlers_in_flight";
constexpr char kLeased[] = "spool_worker_jobs_leased_total";
constexpr char kExtensionFailures[] =
    "spool_worker_lease_extension_failures_total";
constexpr char kLeaseErrors[] = "spool_worker_lease_errors_total";
constexpr char kAckLatency[] = "spool_worker_ack_latency_seconds";

const std::vector<std::string>& AllFamilies() {
  static const auto* names = new std::vector<std::string>{
      kDuration, kFinished,          kFailures,    kInFlight,
      kLeased,   kExtensionFailures, kLeaseErrors, kAckLatency};
  return *names;
}

const std::vector<std::string>& Outcomes() {
  static const auto* v =
      new std::vector<std::string>{"success", "retry", "fail"};
  return *v;
}

const std::vector<std::string>& FailureKinds() {
  static const auto* v = new std::vector<std::string>{
      "handler_exception", "lease_lost", "settle_failed"};
  return *v;
}

Job MakeJob(std::string queue, std::string id) {
  Job job;
  job.queue = std::move(queue);
  job.id = std::move(id);
  job.attempt = 1;
  return job;
}

// Every label of every spool_worker_* series: names and values.
void ExpectBoundedLabels(const Snapshot& s,
                         const std::set<std::string>& queues) {
  const std::set<std::string> outcomes(Outcomes().begin(), Outcomes().end());
  const std::set<std::string> kinds(FailureKinds().begin(),
                                    FailureKinds().end());
  const std::map<std::string, std::set<std::string>> allowed_names = {
      {kDuration, {"queue", "outcome"}},
      {kFinished, {"queue", "outcome"}},
      {kFailures, {"queue", "kind"}},
      {kInFlight, {"queue"}},
      {kLeased, {"queue"}},
      {kExtensionFailures, {"queue"}},
      {kLeaseErrors, {"queue"}},
      {kAckLatency, {}},
  };
  int families = 0;
  for (const prometheus::MetricFamily& f : s.families()) {
    if (f.name.rfind("spool_worker_", 0) != 0) continue;
    ++families;
    ASSERT_EQ(allowed_names.count(f.name), 1u) << "unexpected " << f.name;
    const std::set<std::string>& names = allowed_names.at(f.name);
    for (const prometheus::ClientMetric& m : f.metric) {
      std::set<std::string> seen;
      for (const auto& label : m.label) {
        seen.insert(label.name);
        if (label.name == "queue") {
          EXPECT_EQ(queues.count(label.value), 1u)
              << f.name << " queue=" << label.value;
        } else if (label.name == "outcome") {
          EXPECT_EQ(outcomes.count(label.value), 1u) << label.value;
        } else if (label.name == "kind") {
          EXPECT_EQ(kinds.count(label.value), 1u) << label.value;
        }
      }
      EXPECT_EQ(seen, names) << f.name;
    }
  }
  EXPECT_EQ(families, static_cast<int>(AllFamilies().size()));
}

// ---------------------------------------------------------------------------
// Fed directly.

TEST(PrometheusWorkerObserverTest, KnownSequenceGivesExactValues) {
  PrometheusWorkerObserver observer;
  ASSERT_NE(observer.registry(), nullptr);
  const Job t1 = MakeJob("thumbnail", "job-1");
  const Job t2 = MakeJob("thumbnail", "job-2");
  const Job t3 = MakeJob("thumbnail", "job-3");
  const Job e1 = MakeJob("email", "job-4");

  observer.OnLeased("thumbnail", 3);
  observer.OnLeased("thumbnail", 0);
  observer.OnLeased("email", 1);
  for (const Job* job : {&t1, &t2, &t3, &e1}) observer.OnJobStarted(*job);
  {
    Snapshot s(*observer.registry());
    EXPECT_EQ(s.Value(kInFlight, {{"queue", "thumbnail"}}), 3);
    EXPECT_EQ(s.Value(kInFlight, {{"queue", "email"}}), 1);
  }
  observer.OnJobFinished(t1, Outcome::Success(), absl::Milliseconds(3));
  observer.OnJobFinished(t2, Outcome::Success("r"), absl::Milliseconds(40));
  // A thrown exception: reported as failed, finished as Retry.
  observer.OnJobFailed(t3, JobFailure::kHandlerException,
                       absl::UnknownError("boom"));
  observer.OnJobFinished(t3, Outcome::Retry("boom"), absl::Seconds(2));
  observer.OnJobFinished(e1, Outcome::Fail("bad address"),
                         absl::Milliseconds(150));
  observer.OnJobFailed(e1, JobFailure::kSettleFailed,
                       absl::UnavailableError("down"));
  observer.OnJobFailed(t1, JobFailure::kLeaseLost,
                       absl::FailedPreconditionError("stale"));
  observer.OnJobFailed(t2, JobFailure::kLeaseLost,
                       absl::FailedPreconditionError("stale"));
  observer.OnLeaseExtensionFailed(t1, absl::UnavailableError("down"));
  observer.OnLeaseExtensionFailed(t1, absl::UnavailableError("down"));
  for (int i = 0; i < 3; ++i) {
    observer.OnLeaseError("email", absl::UnavailableError("down"));
  }
  observer.OnAckLatency(absl::Milliseconds(2), 2);
  observer.OnAckLatency(absl::Milliseconds(30), 1);

  Snapshot s(*observer.registry());
  const Labels thumb = {{"queue", "thumbnail"}};
  const Labels email = {{"queue", "email"}};
  auto with = [](Labels labels, const std::string& name,
                 const std::string& value) {
    labels[name] = value;
    return labels;
  };

  // Outcomes.
  EXPECT_EQ(s.Value(kFinished, with(thumb, "outcome", "success")), 2);
  EXPECT_EQ(s.Value(kFinished, with(thumb, "outcome", "retry")), 1);
  EXPECT_EQ(s.Value(kFinished, with(thumb, "outcome", "fail")), 0);
  EXPECT_EQ(s.Value(kFinished, with(email, "outcome", "success")), 0);
  EXPECT_EQ(s.Value(kFinished, with(email, "outcome", "retry")), 0);
  EXPECT_EQ(s.Value(kFinished, with(email, "outcome", "fail")), 1);

  // Durations: counts, sums and buckets.
  const Labels thumb_ok = with(thumb, "outcome", "success");
  EXPECT_EQ(s.Count(kDuration, thumb_ok), 2);
  EXPECT_NEAR(s.Sum(kDuration, thumb_ok), 0.043, 1e-9);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, 0.001), 0);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, 0.0025), 0);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, 0.005), 1);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, 0.025), 1);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, 0.05), 2);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, 1800), 2);
  EXPECT_EQ(s.Bucket(kDuration, thumb_ok, INFINITY), 2);
  const Labels thumb_retry = with(thumb, "outcome", "retry");
  EXPECT_EQ(s.Count(kDuration, thumb_retry), 1);
  EXPECT_DOUBLE_EQ(s.Sum(kDuration, thumb_retry), 2.0);
  EXPECT_EQ(s.Bucket(kDuration, thumb_retry, 1), 0);
  EXPECT_EQ(s.Bucket(kDuration, thumb_retry, 2.5), 1);
  EXPECT_EQ(s.Count(kDuration, with(thumb, "outcome", "fail")), 0);
  const Labels email_fail = with(email, "outcome", "fail");
  EXPECT_EQ(s.Count(kDuration, email_fail), 1);
  EXPECT_NEAR(s.Sum(kDuration, email_fail), 0.15, 1e-9);
  EXPECT_EQ(s.Bucket(kDuration, email_fail, 0.1), 0);
  EXPECT_EQ(s.Bucket(kDuration, email_fail, 0.25), 1);

  // Failures by kind.
  EXPECT_EQ(s.Value(kFailures, with(thumb, "kind", "handler_exception")), 1);
  EXPECT_EQ(s.Value(kFailures, with(thumb, "kind", "lease_lost")), 2);
  EXPECT_EQ(s.Value(kFailures, with(thumb, "kind", "settle_failed")), 0);
  EXPECT_EQ(s.Value(kFailures, with(email, "kind", "handler_exception")), 0);
  EXPECT_EQ(s.Value(kFailures, with(email, "kind", "lease_lost")), 0);
  EXPECT_EQ(s.Value(kFailures, with(email, "kind", "settle_failed")), 1);

  // Handlers all returned.
  EXPECT_EQ(s.Value(kInFlight, thumb), 0);
  EXPECT_EQ(s.Value(kInFlight, email), 0);

  // Leasing.
  EXPECT_EQ(s.Value(kLeased, thumb), 3);
  EXPECT_EQ(s.Value(kLeased, email), 1);
  EXPECT_EQ(s.Value(kExtensionFailures, thumb), 2);
  EXPECT_EQ(s.Value(kExtensionFailures, email), 0);
  EXPECT_EQ(s.Value(kLeaseErrors, thumb), 0);
  EXPECT_EQ(s.Value(kLeaseErrors, email), 3);

  // Acks.
  EXPECT_EQ(s.Count(kAckLatency, {}), 2);
  EXPECT_NEAR(s.Sum(kAckLatency, {}), 0.032, 1e-9);
  EXPECT_EQ(s.Bucket(kAckLatency, {}, 0.001), 0);
  EXPECT_EQ(s.Bucket(kAckLatency, {}, 0.0025), 1);
  EXPECT_EQ(s.Bucket(kAckLatency, {}, 0.025), 1);
  EXPECT_EQ(s.Bucket(kAckLatency, {}, 0.05), 2);

  // The families are typed as Prometheus expects.
  EXPECT_EQ(s.Family(kDuration)->type, prometheus::MetricType::Histogram);
  EXPECT_EQ(s.Family(kAckLatency)->type, prometheus::MetricType::Histogram);
  EXPECT_EQ(s.Family(kInFlight)->type, prometheus::MetricType::Gauge);
  for (const char* counter :
       {kFinished, kFailures, kLeased, kExtensionFailures, kLeaseErrors}) {
    EXPECT_EQ(s.Family(counter)->type, prometheus::MetricType::Counter)
        << counter;
  }
}

TEST(PrometheusWorkerObserverTest, FirstEventForAQueueCreatesAllItsSeries) {
  PrometheusWorkerObserver observer;
  {
    // No queue seen yet: only the unlabelled ack latency has a series.
    Snapshot s(*observer.registry());
    EXPECT_EQ(s.Count(kAckLatency, {}), 0);
    EXPECT_EQ(s.Find(kLeased, {{"queue", "q"}}), nullptr);
  }
  // The worker reports every long-poll, empty ones too, so a queue's series
  // all exist (at zero) from its first poll on.
  observer.OnLeased("q", 0);
  Snapshot s(*observer.registry());
  for (const std::string& name : AllFamilies()) {
    ASSERT_NE(s.Family(name), nullptr) << name;
    EXPECT_FALSE(s.Family(name)->help.empty()) << name;
  }
  for (const std::string& outcome : Outcomes()) {
    EXPECT_EQ(s.Value(kFinished, {{"queue", "q"}, {"outcome", outcome}}), 0);
    EXPECT_EQ(s.Count(kDuration, {{"queue", "q"}, {"outcome", outcome}}), 0);
  }
  for (const std::string& kind : FailureKinds()) {
    EXPECT_EQ(s.Value(kFailures, {{"queue", "q"}, {"kind", kind}}), 0);
  }
  for (const char* name :
       {kInFlight, kLeased, kExtensionFailures, kLeaseErrors}) {
    EXPECT_EQ(s.Value(name, {{"queue", "q"}}), 0) << name;
  }
  ExpectBoundedLabels(s, {"q"});
}

TEST(PrometheusWorkerObserverTest, HostRegistryIsUsedAndCanBeShared) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::Counter& app_counter = prometheus::BuildCounter()
                                         .Name("app_requests_total")
                                         .Help("The host's own metric.")
                                         .Register(*registry)
                                         .Add({});
  app_counter.Increment(5);

  PrometheusWorkerObserver first(registry);
  EXPECT_EQ(first.registry(), registry);
  // A second observer on the same registry shares the series (two Workers
  // in one process): their numbers add up.
  PrometheusWorkerObserver second(registry);
  first.OnLeased("q", 2);
  second.OnLeased("q", 3);
  second.OnAckLatency(absl::Milliseconds(1), 1);

  Snapshot s(*registry);
  EXPECT_EQ(s.Value("app_requests_total", {}), 5);
  EXPECT_EQ(s.Value(kLeased, {{"queue", "q"}}), 5);
  EXPECT_EQ(s.Count(kAckLatency, {}), 1);
  EXPECT_EQ(s.Family(kLeased)->metric.size(), 1u);

  // Null means "make one"; a default observer has its own.
  PrometheusWorkerObserver own(nullptr);
  ASSERT_NE(own.registry(), nullptr);
  EXPECT_NE(own.registry(), registry);
  PrometheusWorkerObserver other;
  EXPECT_NE(other.registry(), own.registry());
}

TEST(PrometheusWorkerObserverTest, ConflictingHostFamilyThrows) {
  auto registry = std::make_shared<prometheus::Registry>();
  prometheus::BuildGauge()
      .Name(kLeased)
      .Help("not a counter")
      .Register(*registry);
  EXPECT_THROW(PrometheusWorkerObserver observer(registry),
               std::invalid_argument);
}

TEST(PrometheusWorkerObserverTest, LabelsAreBounded) {
  PrometheusWorkerObserver observer;
  const std::vector<std::string> queues = {"thumbnail", "email", "reports"};
  // Many jobs, each with its own id and error text: neither becomes a label.
  for (int i = 0; i < 300; ++i) {
    const Job job = MakeJob(queues[i % queues.size()], absl::StrCat("id-", i));
    observer.OnLeased(job.queue, 1);
    observer.OnJobStarted(job);
    const std::string error = absl::StrCat("error text ", i);
    if (i % 3 == 0) {
      observer.OnJobFinished(job, Outcome::Success(), absl::Milliseconds(i));
    } else if (i % 3 == 1) {
      observer.OnJobFailed(job, JobFailure::kHandlerException,
                           absl::UnknownError(error));
      observer.OnJobFinished(job, Outcome::Retry(error), absl::Seconds(1));
    } else {
      observer.OnJobFinished(job, Outcome::Fail(error), absl::Seconds(1));
      observer.OnJobFailed(job, JobFailure::kLeaseLost,
                           absl::FailedPreconditionError(error));
      observer.OnLeaseExtensionFailed(job, absl::UnavailableError(error));
    }
    observer.OnLeaseError(job.queue, absl::UnavailableError(error));
    observer.OnAckLatency(absl::Milliseconds(i % 7), 1 + i % 5);
  }

  Snapshot s(*observer.registry());
  ExpectBoundedLabels(s, {queues.begin(), queues.end()});
  // A fixed number of series per queue, however many jobs ran.
  EXPECT_EQ(s.Family(kFinished)->metric.size(), 3u * 3u);
  EXPECT_EQ(s.Family(kDuration)->metric.size(), 3u * 3u);
  EXPECT_EQ(s.Family(kFailures)->metric.size(), 3u * 3u);
  EXPECT_EQ(s.Family(kInFlight)->metric.size(), 3u);
  EXPECT_EQ(s.Family(kLeased)->metric.size(), 3u);
  EXPECT_EQ(s.Family(kAckLatency)->metric.size(), 1u);
  EXPECT_EQ(s.Total(kFinished), 300);
  EXPECT_EQ(s.Total(kLeased), 300);
  EXPECT_EQ(s.Total(kLeaseErrors), 300);
  EXPECT_EQ(s.Total(kInFlight), 0);
  EXPECT_EQ(s.Count(kAckLatency, {}), 300);
}

TEST(PrometheusWorkerObserverTest, QueuesPastTheLimitShareOneLabel) {
  PrometheusWorkerObserver observer;
  constexpr int kExtra = 25;
  std::set<std::string> labels;
  for (int i = 0; i < PrometheusWorkerObserver::kMaxQueues + kExtra; ++i) {
    const std::string queue = absl::StrCat("q", i);
    observer.OnLeased(queue, 1);
    if (i < PrometheusWorkerObserver::kMaxQueues) labels.insert(queue);
  }
  // A job without a queue (hand-built) is counted there too.
  observer.OnJobStarted(MakeJob("", "x"));
  observer.OnJobFinished(MakeJob("", "x"), Outcome::Success(),
                         absl::Milliseconds(1));
  labels.insert(PrometheusWorkerObserver::kOtherQueue);

  Snapshot s(*observer.registry());
  ExpectBoundedLabels(s, labels);
  EXPECT_EQ(s.Family(kLeased)->metric.size(), labels.size());
  EXPECT_EQ(s.Value(kLeased, {{"queue", "q0"}}), 1);
  EXPECT_EQ(s.Value(kLeased, {{"queue", "_other"}}), kExtra);
  EXPECT_EQ(s.Value(kFinished, {{"queue", "_other"}, {"outcome", "success"}}),
            1);
  EXPECT_TRUE(std::isnan(s.Value(
      kLeased,
      {{"queue", absl::StrCat("q", PrometheusWorkerObserver::kMaxQueues)}})));
}

// ---------------------------------------------------------------------------
// Through a real Worker against the in-memory JobService.

// Forwards every callback to several observers.
class TeeObserver : public WorkerObserver {
 public:
  explicit TeeObserver(std::vector<std::shared_ptr<WorkerObserver>> to)
      : to_(std::move(to)) {}
  void OnJobStarted(const Job& job) override {
    for (auto& o : to_) o->OnJobStarted(job);
  }
  void OnJobFinished(const Job& job, const Outcome& outcome,
                     absl::Duration duration) override {
    for (auto& o : to_) o->OnJobFinished(job, outcome, duration);
  }
  void OnJobFailed(const Job& job, JobFailure failure,
                   const absl::Status& status) override {
    for (auto& o : to_) o->OnJobFailed(job, failure, status);
  }
  void OnLeaseExtensionFailed(const Job& job,
                              const absl::Status& status) override {
    for (auto& o : to_) o->OnLeaseExtensionFailed(job, status);
  }
  void OnAckLatency(absl::Duration latency, int batch_size) override {
    for (auto& o : to_) o->OnAckLatency(latency, batch_size);
  }
  void OnLeased(std::string_view queue, int count) override {
    for (auto& o : to_) o->OnLeased(queue, count);
  }
  void OnLeaseError(std::string_view queue,
                    const absl::Status& status) override {
    for (auto& o : to_) o->OnLeaseError(queue, status);
  }

 private:
  std::vector<std::shared_ptr<WorkerObserver>> to_;
};

TEST(PrometheusWorkerObserverTest, WorkerRunGivesExactValues) {
  // The worker and the fake on a manual clock: handler durations, backoff
  // waits and lease extensions happen when the test moves time.
  ManualClock clock;
  auto service = std::make_shared<FakeJobService>(clock);
  FakeServer server(service);
  ASSERT_TRUE(server.ok());
  // Queue "q": 3 successes, 2 retries (scheduled a minute out, so they do
  // not come back during the test), 1 permanent failure, and 1 exception on
  // the job's only attempt (retry outcome, the server sends it dead).
  for (int i = 0; i < 3; ++i) service->AddJob("q", "ok");
  for (int i = 0; i < 2; ++i) service->AddJob("q", "retry");
  service->AddJob("q", "fail");
  service->AddJob("q", "throw", /*max_attempts=*/1);
  // Queue "slow": one job outliving two failed lease extensions.
  service->AddJob("slow", "slow");
  service->FailNext("ExtendLease", 2, grpc::StatusCode::UNAVAILABLE);
  // And two failed long-polls (on whichever queue polls first).
  service->FailNext("Lease", 2, grpc::StatusCode::UNAVAILABLE);

  auto metrics = std::make_shared<PrometheusWorkerObserver>();
  auto recording = std::make_shared<RecordingObserver>();
  WorkerOptions options;
  options.client.targets = {server.Target()};
  options.worker_id = "metrics-test";
  options.observer = std::make_shared<TeeObserver>(
      std::vector<std::shared_ptr<WorkerObserver>>{metrics, recording});
  options.reconnect_backoff = {absl::Milliseconds(20), absl::Milliseconds(200),
                               2.0, 0.2};
  options.log_sink = [](std::string_view) {};
  ClockedWorker worker(std::move(options), clock);
  QueueOptions q_options;
  q_options.concurrency = 4;
  q_options.max_wait = absl::Milliseconds(200);
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [](const Job& job) -> Outcome {
                        if (job.payload == "ok") return Outcome::Success();
                        if (job.payload == "retry") {
                          return Outcome::Retry(absl::Seconds(60), "later");
                        }
                        if (job.payload == "fail") {
                          return Outcome::Fail("poisoned");
                        }
                        throw std::runtime_error("boom");
                      },
                      q_options)
                  .ok());
  absl::Mutex slow_mu;
  std::optional<absl::Time> slow_started;
  absl::Notification release;
  QueueOptions slow_options;
  slow_options.concurrency = 1;
  slow_options.visibility_timeout = absl::Seconds(2);
  slow_options.max_wait = absl::Milliseconds(200);
  ASSERT_TRUE(worker
                  .Register(
                      "slow",
                      [&](const Job&) {
                        {
                          absl::MutexLock lock(&slow_mu);
                          slow_started = clock.Now();
                        }
                        release.WaitForNotificationWithTimeout(
                            absl::Seconds(60));
                        return Outcome::Success();
                      },
                      slow_options)
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  // Time moves 10 ms per poll (every 10 ms real): the extender, which
  // reacts within a millisecond or two, always keeps the 2 s lease alive.
  auto advancing = [&](const std::function<bool()>& done) {
    return Eventually(
        [&] {
          if (done()) return true;
          clock.Advance(absl::Milliseconds(10));
          return false;
        },
        absl::Seconds(60));
  };
  // The slow job outlives 2.5 s and its two failed extensions...
  ASSERT_TRUE(advancing([&] {
    absl::MutexLock lock(&slow_mu);
    return slow_started.has_value() &&
           clock.Now() - *slow_started >= absl::Milliseconds(2600) &&
           service->Calls("ExtendLease") >= 3;
  }));
  release.Notify();
  ASSERT_TRUE(advancing([&] {
    return service->CountInState(v1::JOB_STATE_SUCCEEDED) == 4 &&
           service->Nacks().size() == 4;
  }));
  ASSERT_TRUE(worker.Stop(absl::Seconds(5)).ok());

  Snapshot s(*metrics->registry());
  ExpectBoundedLabels(s, {"q", "slow"});
  const Labels q = {{"queue", "q"}};
  const Labels slow = {{"queue", "slow"}};
  auto with = [](Labels labels, const std::string& name,
                 const std::string& value) {
    labels[name] = value;
    return labels;
  };

  EXPECT_EQ(s.Value(kFinished, with(q, "outcome", "success")), 3);
  EXPECT_EQ(s.Value(kFinished, with(q, "outcome", "retry")), 3);
  EXPECT_EQ(s.Value(kFinished, with(q, "outcome", "fail")), 1);
  EXPECT_EQ(s.Value(kFinished, with(slow, "outcome", "success")), 1);
  EXPECT_EQ(s.Value(kFinished, with(slow, "outcome", "retry")), 0);
  EXPECT_EQ(s.Value(kFinished, with(slow, "outcome", "fail")), 0);
  for (const std::string& outcome : Outcomes()) {
    EXPECT_EQ(
        static_cast<double>(s.Count(kDuration, with(q, "outcome", outcome))),
        s.Value(kFinished, with(q, "outcome", outcome)))
        << outcome;
  }
  EXPECT_EQ(s.Count(kDuration, with(slow, "outcome", "success")), 1);
  EXPECT_GE(s.Sum(kDuration, with(slow, "outcome", "success")), 2.5);
  EXPECT_EQ(s.Bucket(kDuration, with(slow, "outcome", "success"), 2.5), 0);
  EXPECT_EQ(s.Bucket(kDuration, with(slow, "outcome", "success"), 5), 1);

  EXPECT_EQ(s.Value(kFailures, with(q, "kind", "handler_exception")), 1);
  EXPECT_EQ(s.Value(kFailures, with(q, "kind", "lease_lost")), 0);
  EXPECT_EQ(s.Value(kFailures, with(q, "kind", "settle_failed")), 0);
  EXPECT_EQ(s.Value(kFailures, with(slow, "kind", "handler_exception")), 0);
  EXPECT_EQ(s.Value(kFailures, with(slow, "kind", "lease_lost")), 0);

  EXPECT_EQ(s.Value(kInFlight, q), 0);
  EXPECT_EQ(s.Value(kInFlight, slow), 0);
  EXPECT_EQ(s.Value(kLeased, q), 7);
  EXPECT_EQ(s.Value(kLeased, slow), 1);
  EXPECT_EQ(s.Value(kExtensionFailures, q), 0);
  EXPECT_EQ(s.Value(kExtensionFailures, slow), 2);
  EXPECT_EQ(s.Total(kLeaseErrors), 2);

  // One ack latency sample per answered Ack batch.
  const size_t batches = recording->ack_batches().size();
  EXPECT_GE(batches, 1u);
  EXPECT_EQ(s.Count(kAckLatency, {}), static_cast<int64_t>(batches));
}

// ---------------------------------------------------------------------------
// /metrics over HTTP.

struct HttpResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
};

// GET http://127.0.0.1:<port><path> over a plain socket.
std::optional<HttpResponse> HttpGet(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return std::nullopt;
  timeval timeout = {5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return std::nullopt;
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1:", port,
                   "\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), 0) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return std::nullopt;
  }
  std::string raw;
  char buffer[8192];
  while (true) {
    const ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n <= 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  close(fd);

  const size_t header_end = raw.find("\r\n\r\n");
  if (header_end == std::string::npos) return std::nullopt;
  HttpResponse response;
  std::vector<std::string> lines =
      absl::StrSplit(raw.substr(0, header_end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  if (status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return std::nullopt;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    response.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
  }
  std::string body = raw.substr(header_end + 4);
  if (absl::AsciiStrToLower(response.headers["transfer-encoding"]) ==
      "chunked") {
    std::string decoded;
    size_t pos = 0;
    while (true) {
      const size_t line_end = body.find("\r\n", pos);
      if (line_end == std::string::npos) return std::nullopt;
      size_t size = 0;
      try {
        size = std::stoul(body.substr(pos, line_end - pos), nullptr, 16);
      } catch (...) {
        return std::nullopt;
      }
      if (size == 0) break;
      decoded += body.substr(line_end + 2, size);
      pos = line_end + 2 + size + 2;
    }
    body = std::move(decoded);
  } else if (response.headers.count("content-length")) {
    size_t length = 0;
    if (!absl::SimpleAtoi(response.headers["content-length"], &length) ||
        body.size() != length) {
      return std::nullopt;
    }
  }
  response.body = std::move(body);
  return response;
}

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

bool IsMetricName(absl::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool ok = absl::ascii_isalpha(c) || c == '_' || c == ':' ||
                    (i > 0 && absl::ascii_isdigit(c));
    if (!ok) return false;
  }
  return true;
}

bool IsLabelName(absl::string_view s) {
  return IsMetricName(s) && s.find(':') == absl::string_view::npos;
}

bool ParseValue(absl::string_view text, double* value) {
  if (text == "+Inf") {
    *value = INFINITY;
  } else if (text == "-Inf") {
    *value = -INFINITY;
  } else if (text == "NaN") {
    *value = NAN;
  } else {
    return absl::SimpleAtod(text, value);
  }
  return true;
}

// Parses the Prometheus text exposition format (0.0.4): HELP / TYPE
// comments, samples with escaped label values and optional timestamps. Also
// checks that each sample belongs to a family declared before it (histograms:
// _bucket with `le`, _sum, _count; summaries: quantiles, _sum, _count) and
// that no family is declared twice.
absl::Status ParseExposition(absl::string_view text,
                             std::vector<Sample>* samples,
                             std::map<std::string, std::string>* types) {
  if (!text.empty() && text.back() != '\n') {
    return absl::InvalidArgumentError("no trailing newline");
  }
  std::string current;  // the family of the latest TYPE line
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    const std::string where = absl::StrCat("line ", line_no, ": ", line);
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::vector<absl::string_view> parts =
          absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() >= 3 && (parts[1] == "HELP" || parts[1] == "TYPE")) {
        if (!IsMetricName(parts[2])) {
          return absl::InvalidArgumentError("bad name, " + where);
        }
        if (parts[1] == "TYPE") {
          static const std::set<absl::string_view> kTypes = {
              "counter", "gauge", "histogram", "summary", "untyped"};
          if (parts.size() != 4 || kTypes.count(parts[3]) == 0) {
            return absl::InvalidArgumentError("bad TYPE, " + where);
          }
          if (!types->emplace(parts[2], parts[3]).second) {
            return absl::InvalidArgumentError("TYPE repeated, " + where);
          }
          current = std::string(parts[2]);
        }
      }
      continue;
    }
    Sample sample;
    size_t pos = 0;
    while (pos < line.size() && line[pos] != '{' && line[pos] != ' ') ++pos;
    sample.name = std::string(line.substr(0, pos));
    if (!IsMetricName(sample.name)) {
      return absl::InvalidArgumentError("bad metric name, " + where);
    }
    if (pos < line.size() && line[pos] == '{') {
      ++pos;
      while (true) {
        if (pos < line.size() && line[pos] == '}') {
          ++pos;
          break;
        }
        const size_t eq = line.find('=', pos);
        if (eq == absl::string_view::npos) {
          return absl::InvalidArgumentError("bad labels, " + where);
        }
        const std::string name(line.substr(pos, eq - pos));
        if (!IsLabelName(name) || eq + 1 >= line.size() ||
            line[eq + 1] != '"') {
          return absl::InvalidArgumentError("bad label, " + where);
        }
        std::string value;
        pos = eq + 2;
        bool closed = false;
        while (pos < line.size()) {
          const char c = line[pos++];
          if (c == '"') {
            closed = true;
            break;
          }
          if (c == '\\') {
            if (pos >= line.size()) break;
            const char e = line[pos++];
            if (e == 'n') {
              value += '\n';
            } else if (e == '\\' || e == '"') {
              value += e;
            } else {
              return absl::InvalidArgumentError("bad escape, " + where);
            }
          } else {
            value += c;
          }
        }
        if (!closed || !sample.labels.emplace(name, value).second) {
          return absl::InvalidArgumentError("bad label value, " + where);
        }
        if (pos < line.size() && line[pos] == ',') ++pos;
      }
    }
    if (pos >= line.size() || line[pos] != ' ') {
      return absl::InvalidArgumentError("no value, " + where);
    }
    std::vector<absl::string_view> rest =
        absl::StrSplit(line.substr(pos + 1), ' ');
    int64_t timestamp = 0;
    if (rest.empty() || rest.size() > 2 ||
        !ParseValue(rest[0], &sample.value) ||
        (rest.size() == 2 && !absl::SimpleAtoi(rest[1], &timestamp))) {
      return absl::InvalidArgumentError("bad value, " + where);
    }
    // The sample must belong to the family declared last.
    std::string family = sample.name;
    const std::string type = types->count(current) ? (*types)[current] : "";
    if (type == "histogram" || type == "summary") {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        if (sample.name == current + suffix) family = current;
      }
      if (type == "histogram" && sample.name == current + "_bucket" &&
          !sample.labels.count("le")) {
        return absl::InvalidArgumentError("bucket without le, " + where);
      }
      if (type == "summary" && sample.name == current &&
          !sample.labels.count("quantile")) {
        return absl::InvalidArgumentError("quantile without label, " + where);
      }
    }
    if (family != current) {
      return absl::InvalidArgumentError("sample outside its family, " + where);
    }
    samples->push_back(std::move(sample));
  }
  return absl::OkStatus();
}

std::optional<double> FindSample(const std::vector<Sample>& samples,
                                 const std::string& name,
                                 const Labels& labels) {
  for (const Sample& s : samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

TEST(ServeWorkerMetricsTest, ServesParsableTextWithTheSeries) {
  PrometheusWorkerObserver observer;
  const Job job = MakeJob("thumbnail", "job-1");
  observer.OnLeased("thumbnail", 2);
  observer.OnJobStarted(job);
  observer.OnJobFinished(job, Outcome::Success(), absl::Milliseconds(20));
  observer.OnJobStarted(job);  // still running
  observer.OnJobFailed(job, JobFailure::kHandlerException,
                       absl::UnknownError("a \"quoted\"\nerror"));
  observer.OnLeaseError("thumbnail", absl::UnavailableError("down"));
  observer.OnAckLatency(absl::Milliseconds(3), 1);

  absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
      ServeWorkerMetrics("127.0.0.1:0", observer.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  const int port = (*exposer)->port();
  ASSERT_GT(port, 0);

  std::optional<HttpResponse> response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->headers["content-type"].rfind("text/plain", 0), 0u)
      << response->headers["content-type"];

  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
  const absl::Status parsed = ParseExposition(response->body, &samples, &types);
  ASSERT_TRUE(parsed.ok()) << parsed << "\n" << response->body;

  EXPECT_EQ(types[kDuration], "histogram");
  EXPECT_EQ(types[kAckLatency], "histogram");
  EXPECT_EQ(types[kInFlight], "gauge");
  for (const char* counter :
       {kFinished, kFailures, kLeased, kExtensionFailures, kLeaseErrors}) {
    EXPECT_EQ(types[counter], "counter") << counter;
  }

  const Labels thumb = {{"queue", "thumbnail"}};
  EXPECT_EQ(FindSample(samples, kFinished,
                       {{"queue", "thumbnail"}, {"outcome", "success"}}),
            1.0);
  EXPECT_EQ(FindSample(samples, kFinished,
                       {{"queue", "thumbnail"}, {"outcome", "retry"}}),
            0.0);
  EXPECT_EQ(FindSample(samples, kFailures,
                       {{"queue", "thumbnail"}, {"kind", "handler_exception"}}),
            1.0);
  EXPECT_EQ(FindSample(samples, kInFlight, thumb), 1.0);
  EXPECT_EQ(FindSample(samples, kLeased, thumb), 2.0);
  EXPECT_EQ(FindSample(samples, kLeaseErrors, thumb), 1.0);
  EXPECT_EQ(FindSample(samples, kExtensionFailures, thumb), 0.0);
  const Labels ok = {{"queue", "thumbnail"}, {"outcome", "success"}};
  EXPECT_EQ(FindSample(samples, absl::StrCat(kDuration, "_count"), ok), 1.0);
  std::optional<double> sum =
      FindSample(samples, absl::StrCat(kDuration, "_sum"), ok);
  ASSERT_TRUE(sum.has_value());
  EXPECT_NEAR(*sum, 0.02, 1e-9);
  Labels bucket = ok;
  bucket["le"] = "+Inf";
  EXPECT_EQ(FindSample(samples, absl::StrCat(kDuration, "_bucket"), bucket),
            1.0);
  bucket["le"] = "0.01";
  EXPECT_EQ(FindSample(samples, absl::StrCat(kDuration, "_bucket"), bucket),
            0.0);
  bucket["le"] = "0.025";
  EXPECT_EQ(FindSample(samples, absl::StrCat(kDuration, "_bucket"), bucket),
            1.0);
  EXPECT_EQ(FindSample(samples, absl::StrCat(kAckLatency, "_count"), {}), 1.0);
  EXPECT_EQ(FindSample(samples, absl::StrCat(kAckLatency, "_bucket"),
                       {{"le", "+Inf"}}),
            1.0);
  // The error text is nowhere in the output.
  EXPECT_EQ(response->body.find("quoted"), std::string::npos);
  EXPECT_EQ(response->body.find("job-1"), std::string::npos);

  // A registry of the application's, served alongside.
  auto app = std::make_shared<prometheus::Registry>();
  prometheus::BuildCounter()
      .Name("app_widgets_total")
      .Help("Widgets.")
      .Register(*app)
      .Add({{"color", "blue"}})
      .Increment(7);
  (*exposer)->Add(app);
  response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.has_value());
  samples.clear();
  types.clear();
  ASSERT_TRUE(ParseExposition(response->body, &samples, &types).ok())
      << response->body;
  EXPECT_EQ(FindSample(samples, "app_widgets_total", {{"color", "blue"}}), 7.0);
  EXPECT_EQ(FindSample(samples, kLeased, thumb), 2.0);

  // Gone with the exposer.
  exposer->reset();
  EXPECT_FALSE(HttpGet(port, "/metrics").has_value());
}

TEST(ServeWorkerMetricsTest, GivenFreePortIsUsed) {
  PrometheusWorkerObserver observer;
  const int port = FreePort();
  ASSERT_GT(port, 0);
  absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
      ServeWorkerMetrics(absl::StrCat("127.0.0.1:", port), observer.registry());
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  EXPECT_EQ((*exposer)->port(), port);
  std::optional<HttpResponse> response = HttpGet(port, "/metrics");
  ASSERT_TRUE(response.has_value());
  EXPECT_EQ(response->status, 200);
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
  EXPECT_TRUE(ParseExposition(response->body, &samples, &types).ok());
  // No queue seen yet: only the ack latency histogram has a series.
  EXPECT_EQ(types[kAckLatency], "histogram");
  EXPECT_EQ(types.count(kLeased), 0u);

  // The port is taken now.
  absl::StatusOr<std::unique_ptr<MetricsExposer>> second =
      ServeWorkerMetrics(absl::StrCat("127.0.0.1:", port), observer.registry());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
}

TEST(ServeWorkerMetricsTest, RejectsBadArguments) {
  PrometheusWorkerObserver observer;
  EXPECT_EQ(ServeWorkerMetrics("", observer.registry()).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ServeWorkerMetrics("127.0.0.1:0", nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace spool::testing
