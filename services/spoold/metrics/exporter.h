// Exporter: spoold's Prometheus metrics, served over HTTP on /metrics.
//
// Three kinds of numbers, all named spool_* with base units:
//  - events the queue core and the gRPC layer report as they happen
//    (core::Observer, api::RpcObserver): counters and histograms per queue,
//    per RPC method and code, per database operation;
//  - gauges read from PostgreSQL by a background thread every `refresh`
//    (store::StatsReader, its own connection): jobs per queue and state,
//    oldest ready job, table bloat, oldest open transaction;
//  - gauges read at scrape time from this process: the session pool, waiting
//    long-polls, database health, build info.
//
// Labels are bounded: queue names beyond `max_queues` distinct ones share the
// label "_other" (never a valid queue name), methods are the ones compiled
// in, codes are gRPC code names, states and reasons are fixed sets. Job ids
// and error texts are never labels.
//
// With several replicas each one exports the database gauges; dashboards
// aggregate them with max(), and the event counters with sum().
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "api/rpc_interceptor.h"
#include "core/observer.h"
#include "store/stats.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
template <typename T>
class Family;
}  // namespace prometheus

namespace spool::core {
class JobQueue;
}  // namespace spool::core

namespace spool::store {
class SessionPool;
}  // namespace spool::store

namespace spool::metrics {

struct ExporterOptions {
  // host:port for /metrics (port 0 picks a free one). Required.
  std::string listen;
  // PostgreSQL URL for the database gauges; empty: none.
  std::string database_url;
  // How often the database gauges are read.
  absl::Duration refresh = absl::Seconds(10);
  // Distinct queue label values before "_other".
  int max_queues = 1000;
  std::string version = "unknown";
  std::string revision = "unknown";
  // Tuning of the gauge queries (database_url and max_queues are copied in).
  store::StatsReader::Options stats;
};

class Exporter final : public core::Observer, public api::RpcObserver {
 public:
  // The label shared by queues past the max_queues limit.
  static constexpr char kOtherQueue[] = "_other";

  explicit Exporter(ExporterOptions options);
  ~Exporter() override;

  Exporter(const Exporter&) = delete;
  Exporter& operator=(const Exporter&) = delete;

  // Live sources read at each scrape; either may be null. Set before Start().
  void SetSources(store::SessionPool* pool, core::JobQueue* queue);
  // Serves /metrics and starts the refresh thread (which reads the database
  // at once). Fails if it cannot listen.
  absl::Status Start();
  // Stops serving and refreshing. Idempotent. The sources may be destroyed
  // afterwards. Takes up to 2 s after a scrape: the civetweb in Debian's
  // prometheus-cpp polls its stop flag that often (civetweb#1163).
  void Stop();
  // The bound HTTP port (after Start()).
  int port() const { return port_; }

  // What /metrics serves, in the Prometheus text format.
  std::string Render();

  // Sets the database gauges from one read (what the refresh thread does
  // every `refresh`; public for tests). Not thread-safe with that thread.
  void ApplyStats(const store::DatabaseStats& stats);

  // core::Observer.
  void OnEnqueued(const std::string& queue, int64_t created,
                  int64_t duplicates) override;
  void OnLeased(const std::string& queue, absl::Duration waited) override;
  void OnLeaseBatch(const std::string& queue, int64_t jobs) override;
  void OnEnqueueBatch(int64_t jobs) override;
  void OnAckBatch(int64_t jobs) override;
  void OnAcked(const std::string& queue, absl::Duration processing) override;
  void OnNacked(const std::string& queue, bool dead,
                absl::Duration processing) override;
  void OnLeasesExpired(const std::string& queue, int64_t ready,
                       int64_t dead) override;
  void OnLongPollTimeout(const std::string& queue) override;
  void OnLeasesReleased(const std::string& queue, int64_t jobs) override;
  void OnDatabaseRoundTrip(const char* op, absl::Duration took) override;

  // api::RpcObserver.
  void OnRpcDone(std::string_view service, std::string_view method,
                 grpc::StatusCode code, absl::Duration took) override;

 private:
  class View;
  struct QueueMetrics;
  struct Families;

  // The metrics of `queue`, created on first use (or the "_other" ones).
  QueueMetrics& ForQueue(const std::string& queue);
  // The label `queue` gets, registering it if there is room.
  const std::string& LabelFor(const std::string& queue);
  void UpdateLiveGauges();
  void RefreshLoop();
  void RefreshOnce();

  const ExporterOptions options_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Families> families_;
  std::shared_ptr<View> view_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  int port_ = 0;

  std::atomic<store::SessionPool*> pool_{nullptr};
  std::atomic<core::JobQueue*> queue_{nullptr};

  absl::Mutex queues_mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<QueueMetrics>> queues_
      ABSL_GUARDED_BY(queues_mu_);
  QueueMetrics* other_ ABSL_GUARDED_BY(queues_mu_) = nullptr;

  absl::Mutex cache_mu_;
  absl::flat_hash_map<std::string, prometheus::Histogram*> rpc_
      ABSL_GUARDED_BY(cache_mu_);
  absl::flat_hash_map<std::string, prometheus::Histogram*> db_ops_
      ABSL_GUARDED_BY(cache_mu_);

  // Refresh thread state.
  std::unique_ptr<store::StatsReader> stats_;
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*>
      job_gauges_;  // (queue label, state) -> gauge; refresh thread only.
  std::map<std::string, prometheus::Gauge*> age_gauges_;
  bool last_refresh_ok_ = true;
  absl::Mutex stop_mu_;
  bool stopping_ ABSL_GUARDED_BY(stop_mu_) = false;
  std::thread refresher_;
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace spool::metrics
