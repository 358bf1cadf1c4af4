#include "api/convert.h"

#include "absl/strings/str_cat.h"
#include "spool/wire/time.h"

namespace spool::api {
namespace {

template <typename Map>
core::Headers HeadersFromProto(const Map& map) {
  core::Headers out(map.begin(), map.end());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl::StatusCode and grpc::StatusCode share their numbering.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()),
                      std::string(status.message()));
}

absl::StatusOr<absl::Duration> FromProto(const google::protobuf::Duration& d,
                                         absl::string_view field) {
  return wire::ParseDuration(d, field);
}

absl::StatusOr<absl::Time> FromProto(const google::protobuf::Timestamp& t,
                                     absl::string_view field) {
  return wire::ParseTime(t, field);
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  wire::ToProto(t, out);
}

absl::StatusOr<core::JobInput> FromProto(const v1::JobSpec& spec,
                                         absl::string_view field) {
  core::JobInput in;
  in.queue = spec.queue();
  in.payload = spec.payload();
  in.priority = spec.priority();
  if (spec.has_delay()) {
    auto d = FromProto(spec.delay(), absl::StrCat(field, ".delay"));
    if (!d.ok()) return d.status();
    in.delay = *d;
  }
  if (spec.has_run_at()) {
    auto t = FromProto(spec.run_at(), absl::StrCat(field, ".run_at"));
    if (!t.ok()) return t.status();
    in.run_at = *t;
  }
  in.max_attempts = spec.max_attempts();
  in.idempotency_key = spec.idempotency_key();
  in.headers = HeadersFromProto(spec.headers());
  return in;
}

absl::StatusOr<core::LeaseInput> FromProto(const v1::LeaseRequest& req) {
  core::LeaseInput in;
  in.queue = req.queue();
  in.max_jobs = req.max_jobs();
  in.worker_id = req.worker_id();
  if (req.has_wait()) {
    auto d = FromProto(req.wait(), "wait");
    if (!d.ok()) return d.status();
    in.wait = *d;
  }
  if (req.has_visibility_timeout()) {
    auto d = FromProto(req.visibility_timeout(), "visibility_timeout");
    if (!d.ok()) return d.status();
    in.visibility_timeout = *d;
  }
  return in;
}

absl::StatusOr<core::NackInput> FromProto(const v1::NackRequest& req) {
  core::NackInput in;
  in.job_id = req.job_id();
  in.lease_id = req.lease_id();
  in.error = req.error();
  in.dead_letter = req.dead_letter();
  if (req.has_retry_delay()) {
    auto d = FromProto(req.retry_delay(), "retry_delay");
    if (!d.ok()) return d.status();
    in.retry_delay = *d;
  }
  return in;
}

v1::JobState ToProto(core::JobState state) {
  // The stored numbers are the wire enum's numbers.
  return static_cast<v1::JobState>(static_cast<int>(state));
}

void ToProto(const core::LeasedJob& job, v1::LeasedJob* out) {
  out->set_job_id(absl::StrCat(job.job_id));
  out->set_lease_id(job.lease_id);
  out->set_queue(job.queue);
  out->set_payload(job.payload);
  for (const auto& [k, v] : job.headers) (*out->mutable_headers())[k] = v;
  out->set_priority(job.priority);
  out->set_attempt(job.attempt);
  out->set_max_attempts(job.max_attempts);
  ToProto(job.enqueued_at, out->mutable_enqueued_at());
  ToProto(job.lease_expires_at, out->mutable_lease_expires_at());
}

void ToProto(const core::Job& job, v1::Job* out) {
  out->set_job_id(absl::StrCat(job.job_id));
  out->set_queue(job.queue);
  out->set_state(ToProto(job.state));
  out->set_priority(job.priority);
  out->set_attempt(job.attempt);
  out->set_max_attempts(job.max_attempts);
  out->set_payload(job.payload);
  for (const auto& [k, v] : job.headers) (*out->mutable_headers())[k] = v;
  out->set_idempotency_key(job.idempotency_key);
  ToProto(job.enqueued_at, out->mutable_enqueued_at());
  ToProto(job.run_at, out->mutable_run_at());
  if (job.lease_expires_at) {
    ToProto(*job.lease_expires_at, out->mutable_lease_expires_at());
  }
  if (job.finished_at) ToProto(*job.finished_at, out->mutable_finished_at());
  out->set_last_error(job.last_error);
  out->set_result(job.result);
  out->set_worker_id(job.worker_id);
}

}  // namespace spool::api
