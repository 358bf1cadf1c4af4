// QueueRunner's leasing loop: long-polls Lease for the free handler slots,
// backs off while spoold is unreachable, and queues what it leased for the
// handler threads.
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "convert.h"
#include "queue_runner.h"
#include "settle.h"
#include "spool/wire/time.h"

namespace spool::internal {
namespace {

constexpr int kMaxLeaseBatch = 256;
// Added to a long-poll's wait for its RPC deadline: a Lease that times out
// on the client may have leased jobs nobody will run until they expire.
constexpr absl::Duration kLeaseDeadlineMargin = absl::Seconds(10);

}  // namespace

void QueueRunner::LeaseLoop() {
  Backoff backoff(runtime_.options.reconnect_backoff);
  bool failing = false;
  while (true) {
    int free_slots = 0;
    {
      absl::MutexLock lock(&mu_);
      auto can_lease = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return leasing_stopped_ || busy_ < options_.concurrency;
      };
      mu_.Await(absl::Condition(&can_lease));
      if (leasing_stopped_) return;
      free_slots = options_.concurrency - busy_;
    }
    if (!LeaseOnce(free_slots, backoff, &failing)) return;
  }
}

bool QueueRunner::LeaseOnce(int free_slots, Backoff& backoff, bool* failing) {
  v1::LeaseRequest request;
  request.set_queue(name_);
  request.set_max_jobs(std::min(free_slots, kMaxLeaseBatch));
  wire::ToProto(options_.max_wait, request.mutable_wait());
  wire::ToProto(options_.visibility_timeout,
                request.mutable_visibility_timeout());
  request.set_worker_id(runtime_.worker_id);

  grpc::ClientContext context;
  runtime_.connection->Prepare(
      &context, absl::Now() + options_.max_wait + kLeaseDeadlineMargin);
  {
    absl::MutexLock lock(&mu_);
    if (leasing_stopped_) return false;
    lease_context_ = &context;
  }
  v1::LeaseResponse response;
  const grpc::Status rpc =
      runtime_.connection->Pick().stub->Lease(&context, request, &response);
  bool stopped = false;
  {
    absl::MutexLock lock(&mu_);
    lease_context_ = nullptr;
    stopped = leasing_stopped_;
  }

  if (!rpc.ok()) {
    // Cancelled by Stop(): the server leases nothing for a cancelled call.
    if (stopped) return false;
    const absl::Status status = FromGrpc(rpc);
    runtime_.Observe([&](WorkerObserver& o) { o.OnLeaseError(name_, status); });
    const absl::Duration delay = backoff.Next();
    runtime_.log.Warn("lease_failed",
                      {{"queue", name_},
                       {"code", CodeName(status.code())},
                       {"error", std::string(status.message())},
                       {"attempt", absl::StrCat(backoff.attempt())},
                       {"retry_in_ms", Ms(delay)}});
    *failing = true;
    absl::MutexLock lock(&mu_);
    auto stopped_cond = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return leasing_stopped_;
    };
    runtime_.clock.AwaitWithDeadline(mu_, absl::Condition(&stopped_cond),
                                     runtime_.clock.Now() + delay);
    return true;
  }
  if (*failing) {
    runtime_.log.Info("lease_recovered",
                      {{"queue", name_},
                       {"after_attempts", absl::StrCat(backoff.attempt())}});
    *failing = false;
  }
  backoff.Reset();
  const int count = response.jobs_size();
  runtime_.Observe([&](WorkerObserver& o) { o.OnLeased(name_, count); });
  if (count > 0) Enqueue(response);
  return true;
}

void QueueRunner::Enqueue(const v1::LeaseResponse& response) {
  std::vector<ActiveJobPtr> jobs;
  jobs.reserve(response.jobs_size());
  const absl::Time now = runtime_.clock.Now();
  for (const v1::LeasedJob& leased : response.jobs()) {
    auto job = std::make_shared<ActiveJob>();
    job->job = FromProto(leased, job->cancel.token());
    if (job->job.queue.empty()) job->job.queue = name_;
    job->lease_id = leased.lease_id();
    job->visibility_timeout = options_.visibility_timeout;
    // Local clock, so skew between hosts cannot shorten settle retries.
    job->lease_expires_at = now + options_.visibility_timeout;
    job->next_extend_at = now + ExtensionInterval(job->visibility_timeout);
    jobs.push_back(std::move(job));
  }
  jobs_.Track(jobs);

  std::vector<ActiveJobPtr> give_back;
  {
    absl::MutexLock lock(&mu_);
    for (ActiveJobPtr& job : jobs) {
      if (leasing_stopped_ || busy_ >= options_.concurrency) {
        give_back.push_back(std::move(job));
      } else {
        ready_.push_back(std::move(job));
        ++busy_;
      }
    }
  }
  for (const ActiveJobPtr& job : give_back) {
    // Only on a race with Stop() or a server that ignored max_jobs.
    nacks_.HandBack(job, "worker stopping: job leased but not started");
  }
}

void QueueRunner::StopLeasing() {
  absl::MutexLock lock(&mu_);
  leasing_stopped_ = true;
  if (lease_context_ != nullptr) lease_context_->TryCancel();
}

void QueueRunner::JoinLeaseThread() {
  if (lease_thread_.joinable()) lease_thread_.join();
}

}  // namespace spool::internal
