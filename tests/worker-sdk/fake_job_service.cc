#include "fake_job_service.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_builder.h"
#include "spool/wire/queue_name.h"
#include "spool/wire/time.h"

namespace spool::testing {
namespace {

using wire::ToDuration;
using wire::ToProto;

// The API's queue-name rule, as spoold answers it.
grpc::Status CheckQueueName(const std::string& queue) {
  const absl::Status status = wire::ValidateQueueName(queue, "queue");
  if (status.ok()) return grpc::Status::OK;
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                      std::string(status.message()));
}

}  // namespace

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0) {
    socklen_t len = sizeof(addr);
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string FakeJobService::AddJob(const std::string& queue,
                                   const std::string& payload,
                                   int max_attempts) {
  v1::JobSpec spec;
  spec.set_queue(queue);
  spec.set_payload(payload);
  spec.set_max_attempts(max_attempts);
  absl::MutexLock lock(&mu_);
  bool duplicate = false;
  std::string id = AddJobLocked(spec, &duplicate);
  changed_.SignalAll();
  return id;
}

std::string FakeJobService::AddJobLocked(const v1::JobSpec& spec,
                                         bool* duplicate) {
  *duplicate = false;
  if (!spec.idempotency_key().empty()) {
    for (const auto& [id, job] : jobs_) {
      if (job.queue == spec.queue() &&
          job.idempotency_key == spec.idempotency_key()) {
        *duplicate = true;
        return id;
      }
    }
  }
  FakeJob job;
  job.id = absl::StrCat("job-", ++next_id_);
  job.queue = spec.queue();
  job.payload = spec.payload();
  job.headers.insert(spec.headers().begin(), spec.headers().end());
  job.priority = spec.priority();
  job.max_attempts = spec.max_attempts() > 0 ? spec.max_attempts() : 20;
  job.idempotency_key = spec.idempotency_key();
  if (spec.has_delay()) {
    job.state = v1::JOB_STATE_SCHEDULED;
    job.run_at = clock_.Now() + ToDuration(spec.delay());
  }
  jobs_[job.id] = job;
  order_.push_back(job.id);
  return job.id;
}

void FakeJobService::FailNext(const std::string& method, int count,
                              grpc::StatusCode code, bool after_apply) {
  absl::MutexLock lock(&mu_);
  faults_[method] = Fault{count, code, after_apply};
}

std::optional<grpc::Status> FakeJobService::TakeFault(const std::string& method,
                                                      bool* after_apply) {
  ++calls_[method];
  auto it = faults_.find(method);
  if (it == faults_.end() || it->second.remaining <= 0) return std::nullopt;
  --it->second.remaining;
  *after_apply = it->second.after_apply;
  return grpc::Status(it->second.code, "injected fault");
}

void FakeJobService::StealLease(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  it->second.lease_id = absl::StrCat("stolen-", ++next_lease_);
  it->second.state = v1::JOB_STATE_LEASED;
  it->second.attempt++;
  it->second.lease_expires_at = clock_.Now() + absl::Hours(1);
}

std::optional<FakeJobService::FakeJob> FakeJobService::GetFakeJob(
    const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return std::nullopt;
  return it->second;
}

int FakeJobService::Calls(const std::string& method) {
  absl::MutexLock lock(&mu_);
  return calls_[method];
}

std::vector<int> FakeJobService::LeaseMaxJobs() {
  absl::MutexLock lock(&mu_);
  return lease_max_jobs_;
}

std::vector<int> FakeJobService::AckBatchSizes() {
  absl::MutexLock lock(&mu_);
  return ack_batch_sizes_;
}

std::vector<FakeJobService::NackRecord> FakeJobService::Nacks() {
  absl::MutexLock lock(&mu_);
  return nacks_;
}

std::vector<v1::JobSpec> FakeJobService::EnqueuedSpecs() {
  absl::MutexLock lock(&mu_);
  return enqueued_;
}

int FakeJobService::CountInState(v1::JobState state) {
  absl::MutexLock lock(&mu_);
  int n = 0;
  for (const auto& [id, job] : jobs_) n += job.state == state ? 1 : 0;
  return n;
}

void FakeJobService::ExpireLeasesLocked(absl::Time now) {
  for (auto& [id, job] : jobs_) {
    if (job.state == v1::JOB_STATE_LEASED && job.lease_expires_at <= now) {
      job.lease_id.clear();
      job.state = job.attempt >= job.max_attempts ? v1::JOB_STATE_DEAD
                                                  : v1::JOB_STATE_READY;
      if (job.state == v1::JOB_STATE_DEAD) job.last_error = "lease expired";
    }
    if (job.state == v1::JOB_STATE_SCHEDULED && job.run_at <= now) {
      job.state = v1::JOB_STATE_READY;
    }
  }
}

grpc::Status FakeJobService::CheckLeaseLocked(const std::string& job_id,
                                              const std::string& lease_id,
                                              FakeJob** job) {
  auto it = jobs_.find(job_id);
  // Like spoold with succeeded-job retention 0: acked jobs are gone.
  if (it == jobs_.end() || it->second.state == v1::JOB_STATE_SUCCEEDED) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "no such job");
  }
  if (it->second.state != v1::JOB_STATE_LEASED ||
      it->second.lease_id != lease_id) {
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "stale lease");
  }
  *job = &it->second;
  return grpc::Status::OK;
}

grpc::Status FakeJobService::Enqueue(grpc::ServerContext*,
                                     const v1::EnqueueRequest* request,
                                     v1::EnqueueResponse* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("Enqueue", &after);
  if (fault.has_value() && !after) return *fault;
  if (grpc::Status invalid = CheckQueueName(request->job().queue());
      !invalid.ok()) {
    return invalid;
  }
  bool duplicate = false;
  response->set_job_id(AddJobLocked(request->job(), &duplicate));
  response->set_duplicate(duplicate);
  enqueued_.push_back(request->job());
  changed_.SignalAll();
  return fault.value_or(grpc::Status::OK);
}

grpc::Status FakeJobService::EnqueueBatch(
    grpc::ServerContext*, const v1::EnqueueBatchRequest* request,
    v1::EnqueueBatchResponse* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("EnqueueBatch", &after);
  if (fault.has_value() && !after) return *fault;
  for (const v1::JobSpec& spec : request->jobs()) {
    if (grpc::Status invalid = CheckQueueName(spec.queue()); !invalid.ok()) {
      return invalid;
    }
  }
  for (const v1::JobSpec& spec : request->jobs()) {
    bool duplicate = false;
    v1::EnqueueResponse* r = response->add_results();
    r->set_job_id(AddJobLocked(spec, &duplicate));
    r->set_duplicate(duplicate);
    enqueued_.push_back(spec);
  }
  changed_.SignalAll();
  return fault.value_or(grpc::Status::OK);
}

grpc::Status FakeJobService::Lease(grpc::ServerContext* context,
                                   const v1::LeaseRequest* request,
                                   v1::LeaseResponse* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("Lease", &after);
  if (fault.has_value()) return *fault;
  if (grpc::Status invalid = CheckQueueName(request->queue()); !invalid.ok()) {
    return invalid;
  }
  lease_max_jobs_.push_back(request->max_jobs());
  const int max_jobs = std::max(1, request->max_jobs());
  const absl::Duration vt = request->has_visibility_timeout()
                                ? ToDuration(request->visibility_timeout())
                                : absl::Seconds(30);
  const absl::Time wait_until =
      absl::Now() + std::min(ToDuration(request->wait()), absl::Seconds(5));
  while (true) {
    if (context->IsCancelled()) {
      return grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    }
    const absl::Time now = clock_.Now();
    ExpireLeasesLocked(now);
    for (const std::string& id : order_) {
      if (response->jobs_size() >= max_jobs) break;
      FakeJob& job = jobs_[id];
      if (job.queue != request->queue() || job.state != v1::JOB_STATE_READY) {
        continue;
      }
      job.state = v1::JOB_STATE_LEASED;
      job.attempt++;
      job.lease_id = absl::StrCat("lease-", ++next_lease_);
      job.lease_expires_at = now + vt;
      v1::LeasedJob* out = response->add_jobs();
      out->set_job_id(job.id);
      out->set_lease_id(job.lease_id);
      out->set_queue(job.queue);
      out->set_payload(job.payload);
      out->mutable_headers()->insert(job.headers.begin(), job.headers.end());
      out->set_priority(job.priority);
      out->set_attempt(job.attempt);
      out->set_max_attempts(job.max_attempts);
      ToProto(job.lease_expires_at, out->mutable_lease_expires_at());
    }
    if (response->jobs_size() > 0 || absl::Now() >= wait_until) {
      return grpc::Status::OK;
    }
    changed_.WaitWithTimeout(&mu_, absl::Milliseconds(20));
  }
}

grpc::Status FakeJobService::Ack(grpc::ServerContext*,
                                 const v1::AckRequest* request,
                                 v1::AckResponse* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("Ack", &after);
  if (fault.has_value() && !after) return *fault;
  ack_batch_sizes_.push_back(request->completions_size());
  for (const v1::Completion& c : request->completions()) {
    v1::ItemResult* r = response->add_results();
    r->set_job_id(c.job_id());
    FakeJob* job = nullptr;
    grpc::Status status = CheckLeaseLocked(c.job_id(), c.lease_id(), &job);
    if (!status.ok()) {
      r->set_code(status.error_code());
      r->set_message(status.error_message());
      continue;
    }
    job->state = v1::JOB_STATE_SUCCEEDED;
    job->result = c.result();
    job->lease_id.clear();
    job->acks++;
  }
  changed_.SignalAll();
  return fault.value_or(grpc::Status::OK);
}

grpc::Status FakeJobService::Nack(grpc::ServerContext*,
                                  const v1::NackRequest* request,
                                  v1::NackResponse* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("Nack", &after);
  if (fault.has_value() && !after) return *fault;
  FakeJob* job = nullptr;
  grpc::Status status =
      CheckLeaseLocked(request->job_id(), request->lease_id(), &job);
  if (!status.ok()) return status;
  NackRecord record;
  record.job_id = request->job_id();
  if (request->has_retry_delay())
    record.retry_delay = ToDuration(request->retry_delay());
  record.error = request->error();
  record.dead_letter = request->dead_letter();
  nacks_.push_back(record);
  job->lease_id.clear();
  job->last_error = request->error();
  if (request->dead_letter() || job->attempt >= job->max_attempts) {
    job->state = v1::JOB_STATE_DEAD;
  } else {
    const absl::Duration delay = record.retry_delay.value_or(absl::Seconds(1));
    job->run_at = clock_.Now() + delay;
    job->state = delay <= absl::ZeroDuration() ? v1::JOB_STATE_READY
                                               : v1::JOB_STATE_SCHEDULED;
    ToProto(job->run_at, response->mutable_next_run_at());
  }
  response->set_state(job->state);
  changed_.SignalAll();
  return fault.value_or(grpc::Status::OK);
}

grpc::Status FakeJobService::ExtendLease(grpc::ServerContext*,
                                         const v1::ExtendLeaseRequest* request,
                                         v1::ExtendLeaseResponse* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("ExtendLease", &after);
  if (fault.has_value() && !after) return *fault;
  ExpireLeasesLocked(clock_.Now());
  FakeJob* job = nullptr;
  grpc::Status status =
      CheckLeaseLocked(request->job_id(), request->lease_id(), &job);
  if (!status.ok()) return status;
  const absl::Duration vt = request->has_visibility_timeout()
                                ? ToDuration(request->visibility_timeout())
                                : absl::Seconds(30);
  job->lease_expires_at = clock_.Now() + vt;
  ToProto(job->lease_expires_at, response->mutable_lease_expires_at());
  return fault.value_or(grpc::Status::OK);
}

grpc::Status FakeJobService::GetJob(grpc::ServerContext*,
                                    const v1::GetJobRequest* request,
                                    v1::Job* response) {
  absl::MutexLock lock(&mu_);
  bool after = false;
  std::optional<grpc::Status> fault = TakeFault("GetJob", &after);
  if (fault.has_value() && !after) return *fault;
  auto it = jobs_.find(request->job_id());
  // Like spoold with succeeded-job retention 0: acked jobs are gone.
  if (it == jobs_.end() || it->second.state == v1::JOB_STATE_SUCCEEDED) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND, "job not found");
  }
  const FakeJob& job = it->second;
  response->set_job_id(job.id);
  response->set_queue(job.queue);
  response->set_state(job.state);
  response->set_priority(job.priority);
  response->set_attempt(job.attempt);
  response->set_max_attempts(job.max_attempts);
  response->set_payload(job.payload);
  response->mutable_headers()->insert(job.headers.begin(), job.headers.end());
  response->set_idempotency_key(job.idempotency_key);
  response->set_last_error(job.last_error);
  return fault.value_or(grpc::Status::OK);
}

FakeServer::FakeServer(std::shared_ptr<FakeJobService> service, int port,
                       std::shared_ptr<grpc::ServerCredentials> credentials)
    : service_(std::move(service)),
      credentials_(credentials != nullptr ? std::move(credentials)
                                          : grpc::InsecureServerCredentials()) {
  StartServer(port);
}

FakeServer::~FakeServer() { Shutdown(); }

void FakeServer::StartServer(int port) {
  grpc::ServerBuilder builder;
  int selected = 0;
  builder.AddListeningPort(absl::StrCat("127.0.0.1:", port), credentials_,
                           &selected);
  builder.RegisterService(service_.get());
  // Like spoold (--min_client_ping_interval), but lets tests ping fast.
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 100);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Never share a port with another test's server (gRPC's default
  // SO_REUSEPORT would let a spoold started on the same port split the
  // connections with this one).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ != nullptr) port_ = selected;
}

std::string FakeServer::Target() const {
  return absl::StrCat("127.0.0.1:", port_);
}

void FakeServer::Shutdown() {
  if (server_ == nullptr) return;
  // Cancels in-flight long-polls at the deadline.
  server_->Shutdown(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(100));
  server_->Wait();
  server_.reset();
}

void FakeServer::Restart() {
  Shutdown();
  // The port may take a moment to be free again.
  for (int i = 0; i < 50 && server_ == nullptr; ++i) {
    StartServer(port_);
    if (server_ == nullptr) absl::SleepFor(absl::Milliseconds(100));
  }
}

}  // namespace spool::testing
