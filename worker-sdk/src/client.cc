#include "spool/client.h"

#include "absl/strings/str_cat.h"
#include "connection.h"
#include "convert.h"
#include "rpc.h"

namespace spool {

const char* JobStateName(JobState state) {
  switch (state) {
    case JobState::kUnspecified:
      return "unspecified";
    case JobState::kScheduled:
      return "scheduled";
    case JobState::kReady:
      return "ready";
    case JobState::kLeased:
      return "leased";
    case JobState::kSucceeded:
      return "succeeded";
    case JobState::kDead:
      return "dead";
    case JobState::kCancelled:
      return "cancelled";
  }
  return "unknown";
}

absl::StatusOr<Client> Client::Connect(ClientOptions options) {
  absl::StatusOr<std::shared_ptr<internal::Connection>> connection =
      internal::Connection::Create(std::move(options));
  if (!connection.ok()) return connection.status();
  return Client(*std::move(connection));
}

absl::StatusOr<Client> Client::Connect(std::string target) {
  ClientOptions options;
  options.targets.push_back(std::move(target));
  return Connect(std::move(options));
}

Client::Client(std::shared_ptr<internal::Connection> connection)
    : connection_(std::move(connection)) {}
Client::Client(Client&&) noexcept = default;
Client& Client::operator=(Client&&) noexcept = default;
Client::~Client() = default;

namespace {

absl::Time DeadlineFor(const internal::Connection& connection,
                       const CallOptions& call) {
  const absl::Duration timeout = call.deadline > absl::ZeroDuration()
                                     ? call.deadline
                                     : connection.options().default_deadline;
  return absl::Now() + timeout;
}

}  // namespace

absl::StatusOr<EnqueueResult> Client::Enqueue(const JobOptions& job,
                                              const CallOptions& call) {
  if (connection_ == nullptr)
    return absl::FailedPreconditionError("moved-from Client");
  v1::EnqueueRequest request;
  internal::ToProto(job, request.mutable_job());
  v1::EnqueueResponse response;
  absl::Status status = internal::CallWithRetry(
      *connection_, "Enqueue", &v1::JobService::Stub::Enqueue, request,
      &response, /*idempotent=*/!job.idempotency_key.empty(),
      DeadlineFor(*connection_, call));
  if (!status.ok()) return status;
  return EnqueueResult{response.job_id(), response.duplicate()};
}

absl::StatusOr<std::vector<EnqueueResult>> Client::EnqueueBatch(
    const std::vector<JobOptions>& jobs, const CallOptions& call) {
  if (connection_ == nullptr)
    return absl::FailedPreconditionError("moved-from Client");
  v1::EnqueueBatchRequest request;
  bool idempotent = true;
  for (const JobOptions& job : jobs) {
    internal::ToProto(job, request.add_jobs());
    if (job.idempotency_key.empty()) idempotent = false;
  }
  v1::EnqueueBatchResponse response;
  absl::Status status = internal::CallWithRetry(
      *connection_, "EnqueueBatch", &v1::JobService::Stub::EnqueueBatch,
      request, &response, idempotent, DeadlineFor(*connection_, call));
  if (!status.ok()) return status;
  if (response.results_size() != static_cast<int>(jobs.size())) {
    return absl::InternalError(
        absl::StrCat("EnqueueBatch: server returned ", response.results_size(),
                     " results for ", jobs.size(), " jobs"));
  }
  std::vector<EnqueueResult> results;
  results.reserve(jobs.size());
  for (const v1::EnqueueResponse& r : response.results()) {
    results.push_back(EnqueueResult{r.job_id(), r.duplicate()});
  }
  return results;
}

absl::StatusOr<JobInfo> Client::GetJob(std::string_view job_id,
                                       const CallOptions& call) {
  if (connection_ == nullptr)
    return absl::FailedPreconditionError("moved-from Client");
  v1::GetJobRequest request;
  request.set_job_id(std::string(job_id));
  v1::Job response;
  absl::Status status = internal::CallWithRetry(
      *connection_, "GetJob", &v1::JobService::Stub::GetJob, request, &response,
      /*idempotent=*/true, DeadlineFor(*connection_, call));
  if (!status.ok()) return status;
  return internal::FromProto(response);
}

bool Client::WaitForConnected(absl::Duration timeout) {
  if (connection_ == nullptr) return false;
  return connection_->WaitForAnyReady(absl::Now() + timeout);
}

}  // namespace spool
