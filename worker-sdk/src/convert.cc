#include "convert.h"

#include "spool/wire/time.h"

namespace spool::internal {

void ToProto(const JobOptions& job, v1::JobSpec* out) {
  out->set_queue(job.queue);
  out->set_payload(job.payload);
  out->set_priority(job.priority);
  if (job.delay.has_value()) wire::ToProto(*job.delay, out->mutable_delay());
  if (job.run_at.has_value()) wire::ToProto(*job.run_at, out->mutable_run_at());
  out->set_max_attempts(job.max_attempts);
  out->set_idempotency_key(job.idempotency_key);
  for (const auto& [key, value] : job.headers) {
    (*out->mutable_headers())[key] = value;
  }
}

Job FromProto(const v1::LeasedJob& leased, CancellationToken cancellation) {
  Job job;
  job.id = leased.job_id();
  job.queue = leased.queue();
  job.payload = leased.payload();
  job.headers.insert(leased.headers().begin(), leased.headers().end());
  job.priority = leased.priority();
  job.attempt = leased.attempt();
  job.max_attempts = leased.max_attempts();
  if (leased.has_enqueued_at()) {
    job.enqueued_at = wire::ToTime(leased.enqueued_at());
  }
  if (leased.has_lease_expires_at()) {
    job.lease_expires_at = wire::ToTime(leased.lease_expires_at());
  }
  job.cancellation = std::move(cancellation);
  return job;
}

JobState FromProto(v1::JobState state) {
  switch (state) {
    case v1::JOB_STATE_SCHEDULED:
      return JobState::kScheduled;
    case v1::JOB_STATE_READY:
      return JobState::kReady;
    case v1::JOB_STATE_LEASED:
      return JobState::kLeased;
    case v1::JOB_STATE_SUCCEEDED:
      return JobState::kSucceeded;
    case v1::JOB_STATE_DEAD:
      return JobState::kDead;
    case v1::JOB_STATE_CANCELLED:
      return JobState::kCancelled;
    default:
      return JobState::kUnspecified;
  }
}

JobInfo FromProto(const v1::Job& job) {
  JobInfo info;
  info.id = job.job_id();
  info.queue = job.queue();
  info.state = FromProto(job.state());
  info.priority = job.priority();
  info.attempt = job.attempt();
  info.max_attempts = job.max_attempts();
  info.payload = job.payload();
  info.headers.insert(job.headers().begin(), job.headers().end());
  info.idempotency_key = job.idempotency_key();
  if (job.has_enqueued_at()) info.enqueued_at = wire::ToTime(job.enqueued_at());
  if (job.has_run_at()) info.run_at = wire::ToTime(job.run_at());
  if (job.has_lease_expires_at()) {
    info.lease_expires_at = wire::ToTime(job.lease_expires_at());
  }
  if (job.has_finished_at()) info.finished_at = wire::ToTime(job.finished_at());
  info.last_error = job.last_error();
  info.result = job.result();
  info.worker_id = job.worker_id();
  return info;
}

absl::Status FromGrpc(const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      status.error_message());
}

}  // namespace spool::internal
