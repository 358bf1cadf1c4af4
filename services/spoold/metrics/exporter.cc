#include "metrics/exporter.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <exception>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/log.h"
#include "core/job_queue.h"
#include "store/pool.h"

namespace spool::metrics {
namespace {

using prometheus::Counter;
using prometheus::Family;
using prometheus::Gauge;
using prometheus::Histogram;

// Ready -> leased: from milliseconds (a busy queue) to hours (a backlog).
const Histogram::BucketBoundaries& WaitBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,    2.5,  5,
      10,    30,   60,    120,  300, 600,  1800, 3600, 7200, 21600};
  return *b;
}
// Leased -> ack/nack: handlers run milliseconds to the 12 h lease limit.
const Histogram::BucketBoundaries& ProcessingBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,  1,     2.5,  5,
      10,    30,    60,   120,   300,  600, 1800, 3600, 14400, 43200};
  return *b;
}
// RPCs: sub-millisecond to the 30 s long-poll cap and a bit beyond.
const Histogram::BucketBoundaries& RpcBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
      0.5,    1,     2.5,    5,     10,   20,    30,   60};
  return *b;
}
const Histogram::BucketBoundaries& DbBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
      0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
  return *b;
}
// Rows per statement, up to the 1,000-job batch limit times group commit.
const Histogram::BucketBoundaries& BatchBuckets() {
  static const auto* b = new Histogram::BucketBoundaries{
      1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000};
  return *b;
}

constexpr const char* kStateNames[] = {"scheduled", "ready", "leased",
                                       "succeeded", "dead",  "cancelled"};

const char* StateName(core::JobState s) {
  const int i = static_cast<int>(s);
  return i >= 1 && i <= 6 ? kStateNames[i - 1] : "unknown";
}

// Database operation names come from string literals in the core; still,
// cap them.
constexpr size_t kMaxDbOps = 32;
// (service, method, code) triples: methods compiled in x 17 codes.
constexpr size_t kMaxRpcSeries = 2000;

double Seconds(absl::Duration d) { return absl::ToDoubleSeconds(d); }
double UnixSeconds(absl::Time t) { return Seconds(t - absl::UnixEpoch()); }

}  // namespace

struct Exporter::Families {
  explicit Families(prometheus::Registry& r)
      : enqueued(prometheus::BuildCounter()
                     .Name("spool_jobs_enqueued_total")
                     .Help("Jobs created by Enqueue and EnqueueBatch.")
                     .Register(r)),
        deduplicated(prometheus::BuildCounter()
                         .Name("spool_jobs_deduplicated_total")
                         .Help("Enqueued jobs answered with an existing job "
                               "(idempotency key already held).")
                         .Register(r)),
        leased(prometheus::BuildCounter()
                   .Name("spool_jobs_leased_total")
                   .Help("Jobs handed to workers by Lease.")
                   .Register(r)),
        acked(prometheus::BuildCounter()
                  .Name("spool_jobs_acked_total")
                  .Help("Jobs finished successfully by Ack.")
                  .Register(r)),
        nacked(prometheus::BuildCounter()
                   .Name("spool_jobs_nacked_total")
                   .Help("Jobs released by Nack for another attempt.")
                   .Register(r)),
        dead(prometheus::BuildCounter()
                 .Name("spool_jobs_dead_lettered_total")
                 .Help("Jobs that went dead: reason=nack (dead_letter or "
                       "attempts used up at Nack) or lease_expired (lease "
                       "expired on the last attempt).")
                 .Register(r)),
        expired(prometheus::BuildCounter()
                    .Name("spool_leases_expired_total")
                    .Help("Leases that expired without Ack or Nack.")
                    .Register(r)),
        released(prometheus::BuildCounter()
                     .Name("spool_leases_released_total")
                     .Help("Jobs leased for a long-poll that ended "
                           "(cancelled or timed out) while its query ran, "
                           "handed straight back without counting an "
                           "attempt; included in spool_jobs_leased_total.")
                     .Register(r)),
        poll_timeouts(prometheus::BuildCounter()
                          .Name("spool_long_poll_timeouts_total")
                          .Help("Lease long-polls that ended empty when "
                                "their wait ran out.")
                          .Register(r)),
        time_in_queue(prometheus::BuildHistogram()
                          .Name("spool_job_time_in_queue_seconds")
                          .Help("Time from ready (run_at) to leased.")
                          .Register(r)),
        processing(prometheus::BuildHistogram()
                       .Name("spool_job_processing_seconds")
                       .Help("Time from leased to Ack (outcome=acked) or "
                             "Nack (outcome=retried or dead).")
                       .Register(r)),
        batch(prometheus::BuildHistogram()
                  .Name("spool_batch_jobs")
                  .Help("Jobs per database statement: operation=enqueue and "
                        "ack (calls combined by group commit), lease.")
                  .Register(r)),
        rpc(prometheus::BuildHistogram()
                .Name("spool_rpc_duration_seconds")
                .Help("gRPC calls served, by service, method and status code, "
                      "from arrival to status (long-polls included).")
                .Register(r)),
        db(prometheus::BuildHistogram()
               .Name("spool_db_round_trip_seconds")
               .Help("Database statement round trips on the hot path.")
               .Register(r)),
        queue_jobs(prometheus::BuildGauge()
                       .Name("spool_queue_jobs")
                       .Help("Jobs per queue and state, read from "
                             "PostgreSQL every refresh; estimated from a "
                             "page sample for states with many rows (see "
                             "spool_stats_sampled_fraction).")
                       .Register(r)),
        oldest_ready(prometheus::BuildGauge()
                         .Name("spool_queue_oldest_ready_age_seconds")
                         .Help("Age of the oldest ready job (now - run_at); "
                               "0 when none is ready.")
                         .Register(r)),
        sampled(prometheus::BuildGauge()
                    .Name("spool_stats_sampled_fraction")
                    .Help("Fraction of spool_jobs pages sampled for the "
                          "estimated counts; 1 when all counts are exact.")
                    .Register(r)),
        live_tuples(prometheus::BuildGauge()
                        .Name("spool_db_table_live_tuples")
                        .Help("Live rows (pg_stat_user_tables.n_live_tup).")
                        .Register(r)),
        dead_tuples(prometheus::BuildGauge()
                        .Name("spool_db_table_dead_tuples")
                        .Help("Dead rows awaiting vacuum "
                              "(pg_stat_user_tables.n_dead_tup).")
                        .Register(r)),
        table_bytes(prometheus::BuildGauge()
                        .Name("spool_db_table_size_bytes")
                        .Help("Table size with indexes and TOAST.")
                        .Register(r)),
        last_autovacuum(prometheus::BuildGauge()
                            .Name("spool_db_table_last_autovacuum_timestamp_"
                                  "seconds")
                            .Help("When autovacuum last finished on the "
                                  "table; 0 if never.")
                            .Register(r)),
        last_vacuum(prometheus::BuildGauge()
                        .Name("spool_db_table_last_vacuum_timestamp_seconds")
                        .Help("When a manual VACUUM last finished on the "
                              "table; 0 if never.")
                        .Register(r)),
        oldest_xact(prometheus::BuildGauge()
                        .Name("spool_db_oldest_transaction_age_seconds")
                        .Help("Age of the oldest open transaction in the "
                              "database (client sessions, prepared "
                              "transactions): what stops vacuum.")
                        .Register(r)),
        refresh_duration(prometheus::BuildGauge()
                             .Name("spool_stats_refresh_duration_seconds")
                             .Help("How long the last database gauge "
                                   "refresh took.")
                             .Register(r)),
        refresh_success(prometheus::BuildGauge()
                            .Name("spool_stats_last_success_timestamp_"
                                  "seconds")
                            .Help("When the database gauges were last read "
                                  "successfully.")
                            .Register(r)),
        refresh_failures(prometheus::BuildCounter()
                             .Name("spool_stats_refresh_failures_total")
                             .Help("Database gauge refreshes that failed.")
                             .Register(r)),
        database_up(prometheus::BuildGauge()
                        .Name("spool_database_up")
                        .Help("1 while the database answers health pings.")
                        .Register(r)),
        pool_size(prometheus::BuildGauge()
                      .Name("spool_db_pool_size")
                      .Help("Database sessions (threads) in the pool.")
                      .Register(r)),
        pool_connections(prometheus::BuildGauge()
                             .Name("spool_db_pool_connections")
                             .Help("Open pool connections: state=in_use "
                                   "(running a statement) or idle.")
                             .Register(r)),
        pool_waiting(prometheus::BuildGauge()
                         .Name("spool_db_pool_waiting_tasks")
                         .Help("Database tasks waiting for a pool session.")
                         .Register(r)),
        pool_reconnects(prometheus::BuildCounter()
                            .Name("spool_db_pool_reconnects_total")
                            .Help("Pool sessions replaced after a lost "
                                  "connection or failed connect.")
                            .Register(r)),
        long_polls(prometheus::BuildGauge()
                       .Name("spool_long_polls_waiting")
                       .Help("Lease calls waiting for a job.")
                       .Register(r)),
        build_info(prometheus::BuildGauge()
                       .Name("spool_build_info")
                       .Help("Always 1; labels say which spoold this is.")
                       .Register(r)),
        start_time(prometheus::BuildGauge()
                       .Name("spool_process_start_time_seconds")
                       .Help("When this spoold started.")
                       .Register(r)) {}

  Family<Counter>& enqueued;
  Family<Counter>& deduplicated;
  Family<Counter>& leased;
  Family<Counter>& acked;
  Family<Counter>& nacked;
  Family<Counter>& dead;
  Family<Counter>& expired;
  Family<Counter>& released;
  Family<Counter>& poll_timeouts;
  Family<Histogram>& time_in_queue;
  Family<Histogram>& processing;
  Family<Histogram>& batch;
  Family<Histogram>& rpc;
  Family<Histogram>& db;
  Family<Gauge>& queue_jobs;
  Family<Gauge>& oldest_ready;
  Family<Gauge>& sampled;
  Family<Gauge>& live_tuples;
  Family<Gauge>& dead_tuples;
  Family<Gauge>& table_bytes;
  Family<Gauge>& last_autovacuum;
  Family<Gauge>& last_vacuum;
  Family<Gauge>& oldest_xact;
  Family<Gauge>& refresh_duration;
  Family<Gauge>& refresh_success;
  Family<Counter>& refresh_failures;
  Family<Gauge>& database_up;
  Family<Gauge>& pool_size;
  Family<Gauge>& pool_connections;
  Family<Gauge>& pool_waiting;
  Family<Counter>& pool_reconnects;
  Family<Gauge>& long_polls;
  Family<Gauge>& build_info;
  Family<Gauge>& start_time;

  // Series without variable labels, created once.
  Histogram* batch_enqueue = nullptr;
  Histogram* batch_lease = nullptr;
  Histogram* batch_ack = nullptr;
  Gauge* sampled_fraction = nullptr;
  Gauge* oldest_xact_age = nullptr;
  Gauge* refresh_took = nullptr;
  Gauge* refresh_ok_at = nullptr;
  Counter* refresh_failed = nullptr;
  Gauge* db_up = nullptr;
  Gauge* pool_size_value = nullptr;
  Gauge* pool_in_use = nullptr;
  Gauge* pool_idle = nullptr;
  Gauge* pool_waiting_value = nullptr;
  Counter* pool_reconnects_value = nullptr;
  Gauge* long_polls_value = nullptr;
};

// Every series of one queue label, created together so that each one exists
// (at 0) as soon as the queue is seen: rates and ratios then never lack a
// series.
struct Exporter::QueueMetrics {
  QueueMetrics(Families& f, const std::string& label)
      : name(label),
        enqueued(f.enqueued.Add({{"queue", label}})),
        deduplicated(f.deduplicated.Add({{"queue", label}})),
        leased(f.leased.Add({{"queue", label}})),
        acked(f.acked.Add({{"queue", label}})),
        nacked(f.nacked.Add({{"queue", label}})),
        dead_nack(f.dead.Add({{"queue", label}, {"reason", "nack"}})),
        dead_expired(
            f.dead.Add({{"queue", label}, {"reason", "lease_expired"}})),
        expired(f.expired.Add({{"queue", label}})),
        released(f.released.Add({{"queue", label}})),
        poll_timeouts(f.poll_timeouts.Add({{"queue", label}})),
        time_in_queue(f.time_in_queue.Add({{"queue", label}}, WaitBuckets())),
        processing_acked(f.processing.Add(
            {{"queue", label}, {"outcome", "acked"}}, ProcessingBuckets())),
        processing_retried(f.processing.Add(
            {{"queue", label}, {"outcome", "retried"}}, ProcessingBuckets())),
        processing_dead(f.processing.Add(
            {{"queue", label}, {"outcome", "dead"}}, ProcessingBuckets())) {}

  const std::string name;  // The label value.
  Counter& enqueued;
  Counter& deduplicated;
  Counter& leased;
  Counter& acked;
  Counter& nacked;
  Counter& dead_nack;
  Counter& dead_expired;
  Counter& expired;
  Counter& released;
  Counter& poll_timeouts;
  Histogram& time_in_queue;
  Histogram& processing_acked;
  Histogram& processing_retried;
  Histogram& processing_dead;
};

// What the HTTP endpoint collects: refreshes the live gauges, then returns
// the registry.
class Exporter::View final : public prometheus::Collectable {
 public:
  explicit View(Exporter* exporter) : exporter_(exporter) {}
  std::vector<prometheus::MetricFamily> Collect() const override {
    exporter_->UpdateLiveGauges();
    return exporter_->registry_->Collect();
  }

 private:
  Exporter* const exporter_;
};

Exporter::Exporter(ExporterOptions options)
    : options_(std::move(options)),
      registry_(std::make_shared<prometheus::Registry>()),
      families_(std::make_unique<Families>(*registry_)),
      view_(std::make_shared<View>(this)) {
  Families& f = *families_;
  f.batch_enqueue = &f.batch.Add({{"operation", "enqueue"}}, BatchBuckets());
  f.batch_lease = &f.batch.Add({{"operation", "lease"}}, BatchBuckets());
  f.batch_ack = &f.batch.Add({{"operation", "ack"}}, BatchBuckets());
  f.sampled_fraction = &f.sampled.Add({});
  f.oldest_xact_age = &f.oldest_xact.Add({});
  f.refresh_took = &f.refresh_duration.Add({});
  f.refresh_ok_at = &f.refresh_success.Add({});
  f.refresh_failed = &f.refresh_failures.Add({});
  f.db_up = &f.database_up.Add({});
  f.pool_size_value = &f.pool_size.Add({});
  f.pool_in_use = &f.pool_connections.Add({{"state", "in_use"}});
  f.pool_idle = &f.pool_connections.Add({{"state", "idle"}});
  f.pool_waiting_value = &f.pool_waiting.Add({});
  f.pool_reconnects_value = &f.pool_reconnects.Add({});
  f.long_polls_value = &f.long_polls.Add({});
  f.build_info
      .Add({{"version", options_.version}, {"revision", options_.revision}})
      .Set(1);
  f.start_time.Add({}).Set(UnixSeconds(absl::Now()));
  if (!options_.database_url.empty()) {
    store::StatsReader::Options so = options_.stats;
    so.database_url = options_.database_url;
    so.max_queues = options_.max_queues;
    stats_ = std::make_unique<store::StatsReader>(std::move(so));
  }
}

Exporter::~Exporter() { Stop(); }

void Exporter::SetSources(store::SessionPool* pool, core::JobQueue* queue) {
  pool_ = pool;
  queue_ = queue;
}

absl::Status Exporter::Start() {
  if (started_) return absl::FailedPreconditionError("already started");
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(options_.listen, 2);
  } catch (const std::exception& e) {
    return absl::UnavailableError(absl::StrCat(
        "cannot serve metrics on ", options_.listen, ": ", e.what()));
  }
  std::vector<int> ports = exposer_->GetListeningPorts();
  if (ports.empty()) {
    exposer_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", options_.listen));
  }
  port_ = ports.front();
  exposer_->RegisterCollectable(view_);
  started_ = true;
  if (stats_ != nullptr) refresher_ = std::thread([this] { RefreshLoop(); });
  return absl::OkStatus();
}

void Exporter::Stop() {
  if (!started_ || stopped_) return;
  stopped_ = true;
  // No scrape runs after this, so the sources may go away.
  exposer_.reset();
  {
    absl::MutexLock lock(&stop_mu_);
    stopping_ = true;
  }
  if (refresher_.joinable()) refresher_.join();
  pool_ = nullptr;
  queue_ = nullptr;
}

std::string Exporter::Render() {
  return prometheus::TextSerializer().Serialize(view_->Collect());
}

const std::string& Exporter::LabelFor(const std::string& queue) {
  return ForQueue(queue).name;
}

Exporter::QueueMetrics& Exporter::ForQueue(const std::string& queue) {
  {
    absl::ReaderMutexLock lock(&queues_mu_);
    auto it = queues_.find(queue);
    if (it != queues_.end()) return *it->second;
    if (other_ != nullptr &&
        static_cast<int>(queues_.size()) >= options_.max_queues) {
      return *other_;
    }
  }
  absl::MutexLock lock(&queues_mu_);
  auto it = queues_.find(queue);
  if (it != queues_.end()) return *it->second;
  if (static_cast<int>(queues_.size()) < options_.max_queues) {
    auto m = std::make_unique<QueueMetrics>(*families_, queue);
    QueueMetrics& ref = *m;
    queues_.emplace(queue, std::move(m));
    return ref;
  }
  if (other_ == nullptr) {
    LogWarning("too many queues for metric labels; the rest share one",
               {{"max_queues", options_.max_queues}, {"label", kOtherQueue}});
    queues_.emplace(kOtherQueue,
                    std::make_unique<QueueMetrics>(*families_, kOtherQueue));
    other_ = queues_[kOtherQueue].get();
  }
  return *other_;
}

void Exporter::OnEnqueued(const std::string& queue, int64_t created,
                          int64_t duplicates) {
  QueueMetrics& m = ForQueue(queue);
  if (created > 0) m.enqueued.Increment(static_cast<double>(created));
  if (duplicates > 0) m.deduplicated.Increment(static_cast<double>(duplicates));
}

void Exporter::OnLeased(const std::string& queue, absl::Duration waited) {
  QueueMetrics& m = ForQueue(queue);
  m.leased.Increment();
  m.time_in_queue.Observe(Seconds(waited));
}

void Exporter::OnLeaseBatch(const std::string& /*queue*/, int64_t jobs) {
  families_->batch_lease->Observe(static_cast<double>(jobs));
}

void Exporter::OnEnqueueBatch(int64_t jobs) {
  families_->batch_enqueue->Observe(static_cast<double>(jobs));
}

void Exporter::OnAckBatch(int64_t jobs) {
  families_->batch_ack->Observe(static_cast<double>(jobs));
}

void Exporter::OnAcked(const std::string& queue, absl::Duration processing) {
  QueueMetrics& m = ForQueue(queue);
  m.acked.Increment();
  m.processing_acked.Observe(Seconds(processing));
}

void Exporter::OnNacked(const std::string& queue, bool dead,
                        absl::Duration processing) {
  QueueMetrics& m = ForQueue(queue);
  if (dead) {
    m.dead_nack.Increment();
    m.processing_dead.Observe(Seconds(processing));
  } else {
    m.nacked.Increment();
    m.processing_retried.Observe(Seconds(processing));
  }
}

void Exporter::OnLeasesExpired(const std::string& queue, int64_t ready,
                               int64_t dead) {
  QueueMetrics& m = ForQueue(queue);
  if (ready + dead > 0) m.expired.Increment(static_cast<double>(ready + dead));
  if (dead > 0) m.dead_expired.Increment(static_cast<double>(dead));
}

void Exporter::OnLeasesReleased(const std::string& queue, int64_t jobs) {
  if (jobs > 0) ForQueue(queue).released.Increment(static_cast<double>(jobs));
}

void Exporter::OnLongPollTimeout(const std::string& queue) {
  ForQueue(queue).poll_timeouts.Increment();
}

void Exporter::OnDatabaseRoundTrip(const char* op, absl::Duration took) {
  Histogram* h = nullptr;
  const std::string key = op != nullptr ? op : "unknown";
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = db_ops_.find(key);
    if (it != db_ops_.end()) {
      h = it->second;
    } else {
      const std::string label = db_ops_.size() < kMaxDbOps ? key : "other";
      h = &families_->db.Add({{"operation", label}}, DbBuckets());
      if (db_ops_.size() < kMaxDbOps) db_ops_.emplace(key, h);
    }
  }
  h->Observe(Seconds(took));
}

void Exporter::OnRpcDone(std::string_view service, std::string_view method,
                         grpc::StatusCode code, absl::Duration took) {
  const std::string_view code_name = api::StatusCodeName(code);
  std::string key(service);
  key += '/';
  key += method;
  key += '/';
  key += code_name;
  Histogram* h = nullptr;
  {
    absl::MutexLock lock(&cache_mu_);
    auto it = rpc_.find(key);
    if (it != rpc_.end()) {
      h = it->second;
    } else if (rpc_.size() < kMaxRpcSeries) {
      h = &families_->rpc.Add({{"service", std::string(service)},
                               {"method", std::string(method)},
                               {"code", std::string(code_name)}},
                              RpcBuckets());
      rpc_.emplace(key, h);
    }
  }
  if (h != nullptr) h->Observe(Seconds(took));
}

void Exporter::UpdateLiveGauges() {
  Families& f = *families_;
  if (store::SessionPool* pool = pool_.load(); pool != nullptr) {
    const store::SessionPool::Stats s = pool->GetStats();
    f.pool_size_value->Set(s.size);
    f.pool_in_use->Set(s.busy);
    f.pool_idle->Set(std::max(0, s.connected - s.busy));
    f.pool_waiting_value->Set(s.queued);
    const double reconnects = static_cast<double>(s.reconnects);
    const double seen = f.pool_reconnects_value->Value();
    if (reconnects > seen)
      f.pool_reconnects_value->Increment(reconnects - seen);
  }
  if (core::JobQueue* queue = queue_.load(); queue != nullptr) {
    f.long_polls_value->Set(static_cast<double>(queue->WaitingLongPolls()));
    f.db_up->Set(queue->Healthy() ? 1 : 0);
  }
}

void Exporter::RefreshLoop() {
  while (true) {
    RefreshOnce();
    absl::MutexLock lock(&stop_mu_);
    if (stop_mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                  options_.refresh)) {
      return;
    }
  }
}

void Exporter::RefreshOnce() {
  const absl::Time start = absl::Now();
  absl::StatusOr<store::DatabaseStats> stats = stats_->Read();
  const absl::Time end = absl::Now();
  families_->refresh_took->Set(Seconds(end - start));
  if (!stats.ok()) {
    families_->refresh_failed->Increment();
    if (last_refresh_ok_) {
      LogWarning("metrics: database gauges not refreshed",
                 {{"error", stats.status().message()}});
    }
    last_refresh_ok_ = false;
    return;
  }
  if (!last_refresh_ok_) LogInfo("metrics: database gauges refreshed again");
  last_refresh_ok_ = true;
  ApplyStats(*stats);
  families_->refresh_ok_at->Set(UnixSeconds(end));
  LogDebug("metrics: database gauges refreshed",
           {{"ms", absl::ToInt64Milliseconds(end - start)},
            {"queues", stats->queues.size()},
            {"sampled_fraction", stats->sampled_fraction}});
}

void Exporter::ApplyStats(const store::DatabaseStats& stats) {
  Families& f = *families_;
  // Every known queue gets every state and an age, 0 when nothing is there.
  std::map<std::pair<std::string, std::string>, double> jobs;
  std::map<std::string, double> ages;
  for (const std::string& q : stats.queues) {
    const std::string& label = LabelFor(q);
    for (const char* state : kStateNames) jobs[{label, state}] += 0;
    ages[label] += 0;
  }
  for (const store::QueueStateCount& c : stats.jobs) {
    jobs[{LabelFor(c.queue), StateName(c.state)}] += c.jobs;
  }
  for (const auto& [queue, age] : stats.oldest_ready) {
    double& a = ages[LabelFor(queue)];
    a = std::max(a, Seconds(age));
  }
  // Series of queues that are gone are removed, not left stale.
  for (auto it = job_gauges_.begin(); it != job_gauges_.end();) {
    if (!jobs.contains(it->first)) {
      f.queue_jobs.Remove(it->second);
      it = job_gauges_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [key, n] : jobs) {
    Gauge*& g = job_gauges_[key];
    if (g == nullptr) {
      g = &f.queue_jobs.Add({{"queue", key.first}, {"state", key.second}});
    }
    g->Set(n);
  }
  for (auto it = age_gauges_.begin(); it != age_gauges_.end();) {
    if (!ages.contains(it->first)) {
      f.oldest_ready.Remove(it->second);
      it = age_gauges_.erase(it);
    } else {
      ++it;
    }
  }
  for (const auto& [queue, age] : ages) {
    Gauge*& g = age_gauges_[queue];
    if (g == nullptr) g = &f.oldest_ready.Add({{"queue", queue}});
    g->Set(age);
  }
  f.sampled_fraction->Set(stats.sampled_fraction);
  f.oldest_xact_age->Set(Seconds(stats.oldest_transaction_age));
  auto timestamp = [](const std::optional<absl::Time>& t) {
    return t.has_value() ? UnixSeconds(*t) : 0.0;
  };
  for (const store::TableStats& t : stats.tables) {
    const prometheus::Labels labels{{"table", t.table}};
    f.live_tuples.Add(labels).Set(static_cast<double>(t.live_tuples));
    f.dead_tuples.Add(labels).Set(static_cast<double>(t.dead_tuples));
    f.table_bytes.Add(labels).Set(static_cast<double>(t.total_bytes));
    f.last_autovacuum.Add(labels).Set(timestamp(t.last_autovacuum));
    f.last_vacuum.Add(labels).Set(timestamp(t.last_vacuum));
  }
}

}  // namespace spool::metrics
