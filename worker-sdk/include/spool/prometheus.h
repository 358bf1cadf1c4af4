// Optional Prometheus metrics for workers (CMake target spool::worker_metrics,
// which brings in prometheus-cpp; spool::worker_sdk alone does not).
//
//   auto metrics = std::make_shared<spool::PrometheusWorkerObserver>();
//   absl::StatusOr<std::unique_ptr<spool::MetricsExposer>> exposer =
//       spool::ServeWorkerMetrics("0.0.0.0:9465", metrics->registry());
//   spool::WorkerOptions options;
//   options.observer = metrics;
//
// An application that already serves Prometheus metrics passes its own
// registry to the constructor instead and skips ServeWorkerMetrics.
//
// The series, all labelled by `queue` (except the ack latency, which spans
// queues); `outcome` is success / retry / fail (a thrown exception counts as
// retry), `kind` is a JobFailureName():
//   spool_worker_handler_duration_seconds{queue,outcome}     histogram
//   spool_worker_jobs_finished_total{queue,outcome}          counter
//   spool_worker_job_failures_total{queue,kind}              counter
//   spool_worker_handlers_in_flight{queue}                   gauge
//   spool_worker_jobs_leased_total{queue}                    counter
//   spool_worker_lease_extension_failures_total{queue}       counter
//   spool_worker_lease_errors_total{queue}                   counter
//   spool_worker_ack_latency_seconds                         histogram
// Label values are bounded: queues are the ones the worker leases from (past
// kMaxQueues distinct names, the rest share kOtherQueue); job ids and error
// texts are never labels. Every series of a queue exists, at zero, from the
// first event for that queue on, so rates and ratios need no absent().
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "prometheus/registry.h"
#include "spool/job.h"
#include "spool/observer.h"
#include "spool/outcome.h"

namespace prometheus {
class Exposer;
}  // namespace prometheus

namespace spool {

// A WorkerObserver that records the spool_worker_* series; set it as
// WorkerOptions::observer. Thread-safe; a callback costs a look-up of the
// queue's series under a reader lock plus prometheus-cpp's own updates.
class PrometheusWorkerObserver : public WorkerObserver {
 public:
  // Distinct queue label values; further queues are counted as kOtherQueue.
  static constexpr int kMaxQueues = 1000;
  // Never a valid queue name (they start with a letter or digit).
  static constexpr char kOtherQueue[] = "_other";

  // Records into a registry of its own (see registry()).
  PrometheusWorkerObserver();
  // Records into `registry`, owned with the host application (null: a new
  // one). Observers sharing a registry share the series, so their numbers add
  // up (e.g. two Workers in one process). Throws std::invalid_argument (from
  // prometheus-cpp) if the registry holds a spool_worker_* family of another
  // type.
  explicit PrometheusWorkerObserver(
      std::shared_ptr<prometheus::Registry> registry);
  ~PrometheusWorkerObserver() override;

  PrometheusWorkerObserver(const PrometheusWorkerObserver&) = delete;
  PrometheusWorkerObserver& operator=(const PrometheusWorkerObserver&) = delete;

  const std::shared_ptr<prometheus::Registry>& registry() const {
    return registry_;
  }

  void OnJobStarted(const Job& job) override;
  void OnJobFinished(const Job& job, const Outcome& outcome,
                     absl::Duration duration) override;
  void OnJobFailed(const Job& job, JobFailure failure,
                   const absl::Status& status) override;
  void OnLeaseExtensionFailed(const Job& job,
                              const absl::Status& status) override;
  void OnAckLatency(absl::Duration latency, int batch_size) override;
  void OnLeased(std::string_view queue, int count) override;
  void OnLeaseError(std::string_view queue,
                    const absl::Status& status) override;

 private:
  struct Families;
  struct QueueSeries;

  // The series of `queue`, created (all at zero) on first use.
  QueueSeries& Series(std::string_view queue);

  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
};

// Serves registries on http://<listen address>/metrics until destroyed.
class MetricsExposer {
 public:
  ~MetricsExposer();

  MetricsExposer(const MetricsExposer&) = delete;
  MetricsExposer& operator=(const MetricsExposer&) = delete;

  // The port it listens on (the one picked when asked for port 0).
  int port() const { return port_; }

  // Also serves `registry` on the same /metrics (e.g. the application's).
  // Not thread-safe: call it from the thread that owns the exposer.
  void Add(std::shared_ptr<prometheus::Registry> registry);

 private:
  friend absl::StatusOr<std::unique_ptr<MetricsExposer>> ServeWorkerMetrics(
      std::string listen_address,
      std::shared_ptr<prometheus::Registry> registry);
  MetricsExposer(std::unique_ptr<prometheus::Exposer> exposer, int port);

  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_;
  // Kept alive while served (the exposer holds weak references).
  std::vector<std::shared_ptr<prometheus::Registry>> registries_;
};

// Starts an HTTP server for `registry` (e.g. PrometheusWorkerObserver's) on
// `listen_address`: "ip:port" ("127.0.0.1:9465", "[::1]:9465"; port 0 picks a
// free one) or a bare port for all interfaces. INVALID_ARGUMENT for an empty
// address or a null registry, UNAVAILABLE if the address cannot be bound.
absl::StatusOr<std::unique_ptr<MetricsExposer>> ServeWorkerMetrics(
    std::string listen_address, std::shared_ptr<prometheus::Registry> registry);

}  // namespace spool
