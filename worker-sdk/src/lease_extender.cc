#include "lease_extender.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/time/clock.h"
#include "convert.h"
#include "nack_sender.h"
#include "settle.h"
#include "spool/wire/time.h"

namespace spool::internal {

void LeaseExtender::Start(std::shared_ptr<const void> owner) {
  thread_ = std::thread([this, owner = std::move(owner)] {
    MarkRuntimeThread(owner.get());
    Run();
  });
}

void LeaseExtender::Stop() {
  jobs_.StopExtensions();
  if (thread_.joinable()) thread_.join();
}

void LeaseExtender::Run() {
  while (true) {
    std::vector<ActiveJobPtr> due;
    if (!jobs_.WaitForDueExtensions(&due)) return;
    for (const ActiveJobPtr& job : due) ExtendOne(job);
  }
}

void LeaseExtender::ExtendOne(const ActiveJobPtr& job) {
  v1::ExtendLeaseRequest request;
  request.set_job_id(job->job.id);
  request.set_lease_id(job->lease_id);
  wire::ToProto(job->visibility_timeout, request.mutable_visibility_timeout());
  grpc::ClientContext context;
  runtime_.connection->Prepare(
      &context, absl::Now() + SettleRpcTimeout(job->visibility_timeout));
  v1::ExtendLeaseResponse response;
  const grpc::Status rpc = runtime_.connection->Pick().stub->ExtendLease(
      &context, request, &response);
  const absl::Time now = runtime_.clock.Now();
  if (rpc.ok()) {
    jobs_.Extended(job, now);
    return;
  }
  Logger& log = runtime_.log;
  const absl::Status status = FromGrpc(rpc);
  const ItemVerdict verdict = ClassifyItemCode(static_cast<int>(status.code()));
  if (verdict == ItemVerdict::kLeaseLost || verdict == ItemVerdict::kNotFound) {
    if (!jobs_.MarkLeaseLost(job)) return;
    job->cancel.Cancel();
    log.Warn("lease_lost", {{"queue", job->job.queue},
                            {"job_id", job->job.id},
                            {"during", "extend"},
                            {"code", CodeName(status.code())},
                            {"error", std::string(status.message())}});
    runtime_.Observe([&](WorkerObserver& o) {
      o.OnLeaseExtensionFailed(job->job, status);
      o.OnJobFailed(job->job, JobFailure::kLeaseLost, status);
    });
    return;
  }
  // Transient (or unexpected): try again soon, well before the lease ends.
  const absl::Duration interval = ExtensionInterval(job->visibility_timeout);
  jobs_.RetryExtensionAt(job, now + std::min(interval / 4, absl::Seconds(1)));
  log.Warn("extend_failed", {{"queue", job->job.queue},
                             {"job_id", job->job.id},
                             {"code", CodeName(status.code())},
                             {"error", std::string(status.message())}});
  runtime_.Observe(
      [&](WorkerObserver& o) { o.OnLeaseExtensionFailed(job->job, status); });
}

}  // namespace spool::internal
