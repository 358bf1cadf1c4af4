#include "nack_sender.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "backoff.h"
#include "convert.h"
#include "spool/wire/time.h"

namespace spool::internal {

absl::Duration SettleRpcTimeout(absl::Duration visibility_timeout) {
  return std::clamp(visibility_timeout / 3, absl::Milliseconds(500),
                    absl::Seconds(5));
}

absl::Status NackSender::Send(const ActiveJobPtr& job,
                              const SettleAction& action) {
  Logger& log = runtime_.log;
  const Clock& clock = runtime_.clock;
  v1::NackRequest request;
  request.set_job_id(job->job.id);
  request.set_lease_id(job->lease_id);
  if (action.retry_delay.has_value()) {
    wire::ToProto(*action.retry_delay, request.mutable_retry_delay());
  }
  request.set_error(action.error);
  request.set_dead_letter(action.dead_letter);

  Backoff backoff(runtime_.options.reconnect_backoff);
  bool maybe_applied = false;
  while (true) {
    absl::Duration rpc_timeout = SettleRpcTimeout(job->visibility_timeout);
    const absl::Time settle_give_up_at = jobs_.settle_give_up_at();
    if (settle_give_up_at != absl::InfiniteFuture()) {
      // Past Stop()'s budget, do not even try: the job comes back after its
      // visibility timeout anyway.
      const absl::Time now = clock.Now();
      if (now >= settle_give_up_at) {
        const absl::Status status =
            absl::DeadlineExceededError("shutdown flush budget spent");
        log.Error("nack_abandoned",
                  {{"queue", job->job.queue},
                   {"job_id", job->job.id},
                   {"error", std::string(status.message())},
                   {"note", "job returns after its visibility timeout"}});
        runtime_.ReportFailure(*job, JobFailure::kSettleFailed, status);
        return status;
      }
      rpc_timeout = std::min(rpc_timeout, std::max(settle_give_up_at - now,
                                                   absl::Milliseconds(200)));
    }
    grpc::ClientContext context;
    runtime_.connection->Prepare(&context, absl::Now() + rpc_timeout);
    v1::NackResponse response;
    const grpc::Status rpc =
        runtime_.connection->Pick().stub->Nack(&context, request, &response);
    if (rpc.ok()) return absl::OkStatus();
    const absl::Status status = FromGrpc(rpc);
    const ItemVerdict verdict =
        ClassifyItemCode(static_cast<int>(status.code()));
    if (verdict == ItemVerdict::kLeaseLost ||
        verdict == ItemVerdict::kNotFound) {
      if (maybe_applied) {
        // An earlier try probably landed; the lease is settled either way.
        log.Info("nack_outcome_uncertain", {{"queue", job->job.queue},
                                            {"job_id", job->job.id},
                                            {"code", CodeName(status.code())}});
        return absl::OkStatus();
      }
      log.Warn("lease_lost", {{"queue", job->job.queue},
                              {"job_id", job->job.id},
                              {"during", "nack"},
                              {"code", CodeName(status.code())},
                              {"error", std::string(status.message())}});
      runtime_.ReportFailure(*job, JobFailure::kLeaseLost, status);
      return status;
    }
    if (IsTransient(status.code())) {
      maybe_applied = true;
      const absl::Duration delay = backoff.Next();
      const absl::Time give_up = jobs_.SettleGiveUpTime(*job);
      if (clock.Now() + delay >= give_up) {
        log.Error("nack_abandoned",
                  {{"queue", job->job.queue},
                   {"job_id", job->job.id},
                   {"code", CodeName(status.code())},
                   {"error", std::string(status.message())},
                   {"attempts", absl::StrCat(backoff.attempt())},
                   {"note", "job returns after its visibility timeout"}});
        runtime_.ReportFailure(*job, JobFailure::kSettleFailed, status);
        return status;
      }
      log.Warn("nack_retry", {{"queue", job->job.queue},
                              {"job_id", job->job.id},
                              {"code", CodeName(status.code())},
                              {"error", std::string(status.message())},
                              {"retry_in_ms", Ms(delay)}});
      clock.SleepFor(delay);
      continue;
    }
    log.Error("nack_rejected", {{"queue", job->job.queue},
                                {"job_id", job->job.id},
                                {"code", CodeName(status.code())},
                                {"error", std::string(status.message())}});
    runtime_.ReportFailure(*job, JobFailure::kSettleFailed, status);
    return status;
  }
}

void NackSender::HandBack(const ActiveJobPtr& job, const std::string& reason) {
  jobs_.Abandon(job);
  job->cancel.Cancel();
  (void)Send(job, HandBackAction(reason));
  jobs_.Untrack(job);
}

}  // namespace spool::internal
