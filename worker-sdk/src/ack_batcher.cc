#include "ack_batcher.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backoff.h"
#include "convert.h"
#include "settle.h"

namespace spool::internal {
namespace {

constexpr absl::Duration kAckRpcTimeout = absl::Seconds(10);
// Acks failing with codes other than UNAVAILABLE/DEADLINE_EXCEEDED are
// given up after this many tries.
constexpr int kMaxAckFailures = 10;

}  // namespace

AckBatcher::AckBatcher(Runtime& runtime, JobTracker& jobs)
    : runtime_(runtime),
      jobs_(jobs),
      acks_(static_cast<size_t>(
                std::clamp(runtime.options.ack_batch_size, 1, 1000)),
            runtime.options.ack_flush_delay) {}

void AckBatcher::Start(std::shared_ptr<const void> owner) {
  thread_ = std::thread([this, owner = std::move(owner)] {
    MarkRuntimeThread(owner.get());
    Run();
  });
}

void AckBatcher::Add(const ActiveJobPtr& job, std::string result) {
  {
    absl::MutexLock lock(&mu_);
    if (!stop_) {
      acks_.Add(PendingAck{job, std::move(result)}, runtime_.clock.Now());
      return;
    }
  }
  // Only if a handler outlived Stop()'s ack flush.
  const absl::Status status = absl::CancelledError("worker stopped");
  runtime_.log.Error("ack_dropped", {{"queue", job->job.queue},
                                     {"job_id", job->job.id},
                                     {"reason", "worker already stopped"}});
  runtime_.ReportFailure(*job, JobFailure::kSettleFailed, status);
  jobs_.Untrack(job);
}

int AckBatcher::DrainAndStop(absl::Time give_up_at) {
  const Clock& clock = runtime_.clock;
  int acks_left = 0;
  {
    absl::MutexLock lock(&mu_);
    draining_ = true;
    give_up_at_ = give_up_at;
    auto drained = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return acks_.empty() && in_flight_ == 0;
    };
    clock.AwaitWithDeadline(mu_, absl::Condition(&drained),
                            give_up_at_ + absl::Seconds(2));
    acks_left = static_cast<int>(acks_.size()) + in_flight_;
    stop_ = true;
  }
  // An Ack RPC in flight ends by its own deadline.
  if (thread_.joinable()) thread_.join();
  // Whatever the flush could not deliver.
  absl::MutexLock lock(&mu_);
  absl::Time ignored;
  for (PendingAck& p : acks_.Take(clock.Now(), true, &ignored)) {
    runtime_.log.Error("ack_abandoned", {{"queue", p.job->job.queue},
                                         {"job_id", p.job->job.id},
                                         {"note", "shutdown flush timed out"}});
    runtime_.ReportFailure(
        *p.job, JobFailure::kSettleFailed,
        absl::DeadlineExceededError("shutdown flush timed out"));
  }
  return acks_left;
}

bool AckBatcher::TakeDueBatch(std::vector<PendingAck>* batch,
                              absl::Time* oldest) {
  const Clock& clock = runtime_.clock;
  absl::MutexLock lock(&mu_);
  while (true) {
    if (stop_) return false;
    const absl::Time now = clock.Now();
    if (!acks_.empty() && (draining_ || acks_.FlushDue(now))) break;
    if (acks_.empty()) {
      // Wake on the first completion, to start its flush delay.
      auto wake = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || !acks_.empty();
      };
      clock.AwaitWithDeadline(mu_, absl::Condition(&wake),
                              now + absl::Seconds(1));
    } else {
      // Wake when the delay runs out, a batch fills up, or Stop drains.
      auto wake = [this, &clock]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || draining_ || acks_.FlushDue(clock.Now());
      };
      clock.AwaitWithDeadline(mu_, absl::Condition(&wake),
                              acks_.NextFlushTime());
    }
  }
  *batch = acks_.Take(clock.Now(), /*force=*/true, oldest);
  ++in_flight_;
  return true;
}

void AckBatcher::Run() {
  Backoff backoff(runtime_.options.reconnect_backoff);
  while (true) {
    std::vector<PendingAck> batch;
    absl::Time oldest = runtime_.clock.Now();
    if (!TakeDueBatch(&batch, &oldest)) return;
    SendBatch(batch, oldest, backoff);
  }
}

void AckBatcher::SendBatch(std::vector<PendingAck>& batch, absl::Time oldest,
                           Backoff& backoff) {
  const Clock& clock = runtime_.clock;
  v1::AckRequest request;
  for (const PendingAck& p : batch) {
    v1::Completion* c = request.add_completions();
    c->set_job_id(p.job->job.id);
    c->set_lease_id(p.job->lease_id);
    c->set_result(p.result);
  }
  absl::Duration rpc_timeout = kAckRpcTimeout;
  {
    // While stopping, an Ack must not outlive the flush budget by much.
    absl::MutexLock lock(&mu_);
    if (draining_) {
      rpc_timeout = std::min(rpc_timeout, std::max(give_up_at_ - clock.Now(),
                                                   absl::Milliseconds(500)));
    }
  }
  grpc::ClientContext context;
  runtime_.connection->Prepare(&context, absl::Now() + rpc_timeout);
  v1::AckResponse response;
  const grpc::Status rpc =
      runtime_.connection->Pick().stub->Ack(&context, request, &response);

  if (rpc.ok()) {
    backoff.Reset();
    const absl::Duration latency = clock.Now() - oldest;
    const int size = static_cast<int>(batch.size());
    ProcessResults(batch, response);
    runtime_.Observe([&](WorkerObserver& o) { o.OnAckLatency(latency, size); });
    absl::MutexLock lock(&mu_);
    --in_flight_;
    return;
  }

  const absl::Status status = FromGrpc(rpc);
  std::vector<PendingAck> retry;
  std::vector<PendingAck> give_up;
  absl::Time give_up_at;
  {
    absl::MutexLock lock(&mu_);
    give_up_at = give_up_at_;
  }
  const absl::Duration delay = backoff.Next();
  const bool out_of_time = clock.Now() + delay >= give_up_at;
  for (PendingAck& p : batch) {
    p.maybe_applied = true;
    ++p.failures;
    const bool keep =
        IsTransient(status.code()) && !out_of_time &&
        (IsUnreachable(status.code()) || p.failures < kMaxAckFailures);
    (keep ? retry : give_up).push_back(std::move(p));
  }
  if (!retry.empty()) {
    runtime_.log.Warn("ack_retry", {{"jobs", absl::StrCat(retry.size())},
                                    {"code", CodeName(status.code())},
                                    {"error", std::string(status.message())},
                                    {"retry_in_ms", Ms(delay)}});
  }
  for (PendingAck& p : give_up) {
    runtime_.log.Error("ack_abandoned",
                       {{"queue", p.job->job.queue},
                        {"job_id", p.job->job.id},
                        {"code", CodeName(status.code())},
                        {"error", std::string(status.message())},
                        {"note", "job returns after its visibility timeout"}});
    runtime_.ReportFailure(*p.job, JobFailure::kSettleFailed, status);
    jobs_.Untrack(p.job);
  }
  absl::MutexLock lock(&mu_);
  if (!retry.empty()) acks_.Requeue(std::move(retry), oldest);
  --in_flight_;
  if (!acks_.empty()) {
    // Back off before the retry; only Stop()'s end cuts it short.
    auto stop = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_; };
    clock.AwaitWithDeadline(mu_, absl::Condition(&stop), clock.Now() + delay);
  }
}

void AckBatcher::ProcessResults(std::vector<PendingAck>& batch,
                                const v1::AckResponse& response) {
  Logger& log = runtime_.log;
  for (size_t i = 0; i < batch.size(); ++i) {
    PendingAck& p = batch[i];
    if (i >= static_cast<size_t>(response.results_size())) {
      const absl::Status status = absl::InternalError(
          "Ack response has fewer results than completions");
      log.Error("ack_result_missing",
                {{"queue", p.job->job.queue}, {"job_id", p.job->job.id}});
      runtime_.ReportFailure(*p.job, JobFailure::kSettleFailed, status);
      jobs_.Untrack(p.job);
      continue;
    }
    const v1::ItemResult& item = response.results(static_cast<int>(i));
    const ItemVerdict verdict = ClassifyItemCode(item.code());
    const absl::Status status(static_cast<absl::StatusCode>(item.code()),
                              item.message());
    switch (verdict) {
      case ItemVerdict::kOk:
        break;
      case ItemVerdict::kLeaseLost:
      case ItemVerdict::kNotFound:
        if (p.maybe_applied && ProbablyApplied(*p.job)) {
          log.Info("ack_confirmed_after_retry",
                   {{"queue", p.job->job.queue}, {"job_id", p.job->job.id}});
          break;
        }
        log.Warn("lease_lost", {{"queue", p.job->job.queue},
                                {"job_id", p.job->job.id},
                                {"during", "ack"},
                                {"code", CodeName(status.code())},
                                {"error", item.message()}});
        runtime_.ReportFailure(*p.job, JobFailure::kLeaseLost, status);
        break;
      case ItemVerdict::kRejected:
        log.Error("ack_rejected", {{"queue", p.job->job.queue},
                                   {"job_id", p.job->job.id},
                                   {"code", CodeName(status.code())},
                                   {"error", item.message()}});
        runtime_.ReportFailure(*p.job, JobFailure::kSettleFailed, status);
        break;
    }
    jobs_.Untrack(p.job);
  }
}

bool AckBatcher::ProbablyApplied(const ActiveJob& job) {
  v1::GetJobRequest request;
  request.set_job_id(job.job.id);
  grpc::ClientContext context;
  runtime_.connection->Prepare(&context, absl::Now() + absl::Seconds(5));
  v1::Job response;
  const grpc::Status rpc =
      runtime_.connection->Pick().stub->GetJob(&context, request, &response);
  if (rpc.error_code() == grpc::StatusCode::NOT_FOUND) return true;
  return rpc.ok() && response.state() == v1::JOB_STATE_SUCCEEDED;
}

}  // namespace spool::internal
