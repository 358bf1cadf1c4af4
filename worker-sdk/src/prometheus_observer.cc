#include <algorithm>
#include <array>
#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/family.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "spool/prometheus.h"

namespace spool {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Label values of `outcome` and `kind`, indexed by the enums' values.
constexpr std::array<Outcome::Kind, 3> kOutcomeKinds = {
    Outcome::Kind::kSuccess, Outcome::Kind::kRetry, Outcome::Kind::kFail};
constexpr std::array<JobFailure, 3> kFailureKinds = {
    JobFailure::kHandlerException, JobFailure::kLeaseLost,
    JobFailure::kSettleFailed};

// From a millisecond to half an hour: quick handlers and thumbnail renders
// alike, and the long jobs that lease extension exists for.
const Histogram::BucketBoundaries& HandlerBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
      2.5,   5,      10,    30,   60,    120,  300, 600,  1800};
  return *buckets;
}

// Acks normally leave within the flush delay (~2 ms) plus one round trip;
// the tail covers retries while spoold is unreachable.
const Histogram::BucketBoundaries& AckBuckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
      0.25,   0.5,   1,      2.5,   5,    10,    30};
  return *buckets;
}

double Seconds(absl::Duration d) {
  return std::max(0.0, absl::ToDoubleSeconds(d));
}

}  // namespace

// The series of one queue label value.
struct PrometheusWorkerObserver::QueueSeries {
  std::array<Histogram*, kOutcomeKinds.size()> duration = {};
  std::array<Counter*, kOutcomeKinds.size()> finished = {};
  std::array<Counter*, kFailureKinds.size()> failures = {};
  Gauge* in_flight = nullptr;
  Counter* leased = nullptr;
  Counter* extension_failures = nullptr;
  Counter* lease_errors = nullptr;
};

struct PrometheusWorkerObserver::Families {
  explicit Families(prometheus::Registry& registry)
      : duration(prometheus::BuildHistogram()
                     .Name("spool_worker_handler_duration_seconds")
                     .Help("Time handlers ran, by queue and outcome (a "
                           "thrown exception counts as retry).")
                     .Register(registry)),
        finished(prometheus::BuildCounter()
                     .Name("spool_worker_jobs_finished_total")
                     .Help("Handler runs that returned, by queue and outcome "
                           "(success, retry, fail).")
                     .Register(registry)),
        failures(prometheus::BuildCounter()
                     .Name("spool_worker_job_failures_total")
                     .Help("Attempts that went wrong, by queue and kind: "
                           "handler_exception, lease_lost (another worker "
                           "owns the job now), settle_failed (ack/nack not "
                           "delivered; the job comes back after its "
                           "visibility timeout).")
                     .Register(registry)),
        in_flight(prometheus::BuildGauge()
                      .Name("spool_worker_handlers_in_flight")
                      .Help("Handlers running now, by queue.")
                      .Register(registry)),
        leased(prometheus::BuildCounter()
                   .Name("spool_worker_jobs_leased_total")
                   .Help("Jobs leased from spoold, by queue.")
                   .Register(registry)),
        extension_failures(
            prometheus::BuildCounter()
                .Name("spool_worker_lease_extension_failures_total")
                .Help("Failed ExtendLease calls (transient ones are retried "
                      "while the lease lasts), by queue.")
                .Register(registry)),
        lease_errors(prometheus::BuildCounter()
                         .Name("spool_worker_lease_errors_total")
                         .Help("Failed Lease calls (spoold unreachable, ...; "
                               "the worker backs off), by queue.")
                         .Register(registry)),
        ack_latency(prometheus::BuildHistogram()
                        .Name("spool_worker_ack_latency_seconds")
                        .Help("From a success being handed to the ack "
                              "batcher to spoold answering its Ack batch.")
                        .Register(registry)
                        .Add({}, AckBuckets())) {}

  Family<Histogram>& duration;
  Family<Counter>& finished;
  Family<Counter>& failures;
  Family<Gauge>& in_flight;
  Family<Counter>& leased;
  Family<Counter>& extension_failures;
  Family<Counter>& lease_errors;
  Histogram& ack_latency;

  absl::Mutex mu;
  // By queue name, at most kMaxQueues; the rest share `other`.
  absl::flat_hash_map<std::string, std::unique_ptr<QueueSeries>> queues
      ABSL_GUARDED_BY(mu);
  std::unique_ptr<QueueSeries> other ABSL_GUARDED_BY(mu);

  // Every series of `label`, at zero if new (Family::Add returns the
  // existing series when another observer shares the registry).
  std::unique_ptr<QueueSeries> NewSeries(const std::string& label) {
    auto s = std::make_unique<QueueSeries>();
    for (size_t i = 0; i < kOutcomeKinds.size(); ++i) {
      const std::string outcome = Outcome::KindName(kOutcomeKinds[i]);
      s->duration[i] = &duration.Add({{"queue", label}, {"outcome", outcome}},
                                     HandlerBuckets());
      s->finished[i] = &finished.Add({{"queue", label}, {"outcome", outcome}});
    }
    for (size_t i = 0; i < kFailureKinds.size(); ++i) {
      s->failures[i] = &failures.Add(
          {{"queue", label}, {"kind", JobFailureName(kFailureKinds[i])}});
    }
    s->in_flight = &in_flight.Add({{"queue", label}});
    s->leased = &leased.Add({{"queue", label}});
    s->extension_failures = &extension_failures.Add({{"queue", label}});
    s->lease_errors = &lease_errors.Add({{"queue", label}});
    return s;
  }
};

PrometheusWorkerObserver::PrometheusWorkerObserver()
    : PrometheusWorkerObserver(nullptr) {}

PrometheusWorkerObserver::PrometheusWorkerObserver(
    std::shared_ptr<prometheus::Registry> registry)
    : registry_(registry != nullptr ? std::move(registry)
                                    : std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_)) {}

PrometheusWorkerObserver::~PrometheusWorkerObserver() = default;

PrometheusWorkerObserver::QueueSeries& PrometheusWorkerObserver::Series(
    std::string_view queue) {
  Families& f = *families_;
  // absl::string_view need not be std::string_view (it is not in Debian's
  // build of Abseil).
  const absl::string_view key(queue.data(), queue.size());
  if (!key.empty()) {
    absl::ReaderMutexLock lock(&f.mu);
    auto it = f.queues.find(key);
    if (it != f.queues.end()) return *it->second;
  }
  absl::MutexLock lock(&f.mu);
  if (!key.empty()) {
    auto it = f.queues.find(key);
    if (it != f.queues.end()) return *it->second;
    if (f.queues.size() < static_cast<size_t>(kMaxQueues)) {
      std::string name(queue);
      std::unique_ptr<QueueSeries> series = f.NewSeries(name);
      QueueSeries& result = *series;
      f.queues.emplace(std::move(name), std::move(series));
      return result;
    }
  }
  if (f.other == nullptr) f.other = f.NewSeries(kOtherQueue);
  return *f.other;
}

void PrometheusWorkerObserver::OnJobStarted(const Job& job) {
  Series(job.queue).in_flight->Increment();
}

void PrometheusWorkerObserver::OnJobFinished(const Job& job,
                                             const Outcome& outcome,
                                             absl::Duration duration) {
  QueueSeries& s = Series(job.queue);
  s.in_flight->Decrement();
  const size_t i = static_cast<size_t>(outcome.kind());
  if (i >= kOutcomeKinds.size()) return;
  s.finished[i]->Increment();
  s.duration[i]->Observe(Seconds(duration));
}

void PrometheusWorkerObserver::OnJobFailed(const Job& job, JobFailure failure,
                                           const absl::Status& /*status*/) {
  const size_t i = static_cast<size_t>(failure);
  if (i >= kFailureKinds.size()) return;
  Series(job.queue).failures[i]->Increment();
}

void PrometheusWorkerObserver::OnLeaseExtensionFailed(
    const Job& job, const absl::Status& /*status*/) {
  Series(job.queue).extension_failures->Increment();
}

void PrometheusWorkerObserver::OnAckLatency(absl::Duration latency,
                                            int /*batch_size*/) {
  families_->ack_latency.Observe(Seconds(latency));
}

void PrometheusWorkerObserver::OnLeased(std::string_view queue, int count) {
  // Also on empty leases: a queue's series appear at the first long-poll.
  Series(queue).leased->Increment(std::max(count, 0));
}

void PrometheusWorkerObserver::OnLeaseError(std::string_view queue,
                                            const absl::Status& /*status*/) {
  Series(queue).lease_errors->Increment();
}

// ---------------------------------------------------------------------------
// Serving /metrics.

MetricsExposer::MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer,
                               int port)
    : exposer_(std::move(exposer)), port_(port) {}

MetricsExposer::~MetricsExposer() = default;

void MetricsExposer::Add(std::shared_ptr<prometheus::Registry> registry) {
  if (registry == nullptr) return;
  exposer_->RegisterCollectable(registry);
  registries_.push_back(std::move(registry));
}

absl::StatusOr<std::unique_ptr<MetricsExposer>> ServeWorkerMetrics(
    std::string listen_address,
    std::shared_ptr<prometheus::Registry> registry) {
  if (listen_address.empty()) {
    return absl::InvalidArgumentError("metrics listen address is empty");
  }
  if (registry == nullptr) {
    return absl::InvalidArgumentError("metrics registry is null");
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen_address,
                                                    /*num_threads=*/2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat("cannot serve metrics on ",
                                               listen_address, ": ", e.what()));
  }
  const std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty()) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen_address));
  }
  auto result = std::unique_ptr<MetricsExposer>(
      new MetricsExposer(std::move(exposer), ports.front()));
  result->Add(std::move(registry));
  return result;
}

}  // namespace spool
