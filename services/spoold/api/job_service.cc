#include "api/job_service.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "api/convert.h"

namespace spool::api {
namespace {

// Answers a call that was never counted in (refused while draining).
grpc::ServerUnaryReactor* FinishUncounted(grpc::CallbackServerContext* ctx,
                                          const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpcStatus(status));
  return reactor;
}

absl::Time Deadline(grpc::CallbackServerContext* ctx) {
  auto d = ctx->deadline();
  if (d == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(d);
}

void FillEnqueueResponse(const core::EnqueueResult& r,
                         v1::EnqueueResponse* out) {
  out->set_job_id(absl::StrCat(r.job_id));
  out->set_duplicate(r.duplicate);
}

// A Lease call: forwards client cancellation to the core so a cancelled
// long-poll ends at once and leases nothing.
class LeaseReactor final : public grpc::ServerUnaryReactor {
 public:
  LeaseReactor(core::JobQueue* queue, core::LeaseInput input,
               absl::Time deadline, v1::LeaseResponse* resp,
               std::atomic<int64_t>* in_flight)
      : in_flight_(in_flight) {
    auto call = queue->Lease(
        std::move(input), deadline,
        [this, resp](absl::StatusOr<std::vector<core::LeasedJob>> jobs) {
          if (!jobs.ok()) {
            Finish(ToGrpcStatus(jobs.status()));
            return;
          }
          for (const core::LeasedJob& j : *jobs) ToProto(j, resp->add_jobs());
          Finish(grpc::Status::OK);
        });
    absl::MutexLock lock(&mu_);
    call_ = std::move(call);
  }

  void OnCancel() override {
    std::shared_ptr<core::LeaseCall> call;
    {
      absl::MutexLock lock(&mu_);
      call = call_;
    }
    if (call) call->Cancel();
  }

  void OnDone() override {
    in_flight_->fetch_sub(1);
    delete this;
  }

 private:
  std::atomic<int64_t>* const in_flight_;
  absl::Mutex mu_;
  std::shared_ptr<core::LeaseCall> call_ ABSL_GUARDED_BY(mu_);
};

constexpr char kDraining[] =
    "spoold is shutting down; retry the call (another replica will take it)";

}  // namespace

bool JobService::Enter() {
  in_flight_.fetch_add(1);
  if (draining_.load()) {
    in_flight_.fetch_sub(1);
    return false;
  }
  return true;
}

grpc::ServerUnaryReactor* JobService::Reject(grpc::CallbackServerContext* ctx,
                                             const absl::Status& status) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  Finish(reactor, ToGrpcStatus(status));
  return reactor;
}

void JobService::Finish(grpc::ServerUnaryReactor* reactor,
                        const grpc::Status& status) {
  reactor->Finish(status);
  in_flight_.fetch_sub(1);
}

int64_t JobService::Drain(absl::Time deadline) {
  draining_ = true;
  while (in_flight_.load() > 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  return in_flight_.load();
}

grpc::ServerUnaryReactor* JobService::Enqueue(grpc::CallbackServerContext* ctx,
                                              const v1::EnqueueRequest* req,
                                              v1::EnqueueResponse* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  if (!req->has_job()) {
    return Reject(ctx, absl::InvalidArgumentError("job is required"));
  }
  auto job = FromProto(req->job(), "job");
  if (!job.ok()) return Reject(ctx, job.status());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  std::vector<core::JobInput> jobs;
  jobs.push_back(*std::move(job));
  queue_->Enqueue(std::move(jobs), /*batch=*/false,
                  [this, reactor,
                   resp](absl::StatusOr<std::vector<core::EnqueueResult>> r) {
                    if (r.ok()) FillEnqueueResponse(r->front(), resp);
                    Finish(reactor, ToGrpcStatus(r.status()));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* JobService::EnqueueBatch(
    grpc::CallbackServerContext* ctx, const v1::EnqueueBatchRequest* req,
    v1::EnqueueBatchResponse* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  if (absl::Status s = core::ValidateEnqueueBatchSize(
          static_cast<size_t>(req->jobs_size()), queue_->limits());
      !s.ok()) {
    return Reject(ctx, s);
  }
  std::vector<core::JobInput> jobs;
  jobs.reserve(req->jobs_size());
  for (int i = 0; i < req->jobs_size(); ++i) {
    auto job = FromProto(req->jobs(i), absl::StrCat("jobs[", i, "]"));
    if (!job.ok()) return Reject(ctx, job.status());
    jobs.push_back(*std::move(job));
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  queue_->Enqueue(std::move(jobs), /*batch=*/true,
                  [this, reactor,
                   resp](absl::StatusOr<std::vector<core::EnqueueResult>> r) {
                    if (r.ok()) {
                      for (const auto& item : *r)
                        FillEnqueueResponse(item, resp->add_results());
                    }
                    Finish(reactor, ToGrpcStatus(r.status()));
                  });
  return reactor;
}

grpc::ServerUnaryReactor* JobService::Lease(grpc::CallbackServerContext* ctx,
                                            const v1::LeaseRequest* req,
                                            v1::LeaseResponse* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  auto input = FromProto(*req);
  if (!input.ok()) return Reject(ctx, input.status());
  return new LeaseReactor(queue_, *std::move(input), Deadline(ctx), resp,
                          &in_flight_);
}

grpc::ServerUnaryReactor* JobService::Ack(grpc::CallbackServerContext* ctx,
                                          const v1::AckRequest* req,
                                          v1::AckResponse* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  std::vector<core::CompletionInput> completions;
  completions.reserve(req->completions_size());
  for (const v1::Completion& c : req->completions()) {
    completions.push_back({c.job_id(), c.lease_id(), c.result()});
  }
  std::vector<std::string> ids;
  ids.reserve(completions.size());
  for (const auto& c : completions) ids.push_back(c.job_id);
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  queue_->Ack(std::move(completions),
              [this, reactor, resp, ids = std::move(ids)](
                  absl::StatusOr<std::vector<absl::Status>> r) {
                if (r.ok()) {
                  for (size_t i = 0; i < r->size(); ++i) {
                    v1::ItemResult* item = resp->add_results();
                    item->set_job_id(ids[i]);
                    item->set_code(static_cast<int>((*r)[i].code()));
                    item->set_message(std::string((*r)[i].message()));
                  }
                }
                Finish(reactor, ToGrpcStatus(r.status()));
              });
  return reactor;
}

grpc::ServerUnaryReactor* JobService::Nack(grpc::CallbackServerContext* ctx,
                                           const v1::NackRequest* req,
                                           v1::NackResponse* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  auto input = FromProto(*req);
  if (!input.ok()) return Reject(ctx, input.status());
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  queue_->Nack(*std::move(input),
               [this, reactor, resp](absl::StatusOr<core::NackResult> r) {
                 if (r.ok()) {
                   resp->set_state(ToProto(r->state));
                   if (r->next_run_at) {
                     ToProto(*r->next_run_at, resp->mutable_next_run_at());
                   }
                 }
                 Finish(reactor, ToGrpcStatus(r.status()));
               });
  return reactor;
}

grpc::ServerUnaryReactor* JobService::ExtendLease(
    grpc::CallbackServerContext* ctx, const v1::ExtendLeaseRequest* req,
    v1::ExtendLeaseResponse* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  std::optional<absl::Duration> timeout;
  if (req->has_visibility_timeout()) {
    auto d = FromProto(req->visibility_timeout(), "visibility_timeout");
    if (!d.ok()) return Reject(ctx, d.status());
    timeout = *d;
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  queue_->ExtendLease(req->job_id(), req->lease_id(), timeout,
                      [this, reactor, resp](absl::StatusOr<absl::Time> r) {
                        if (r.ok()) {
                          ToProto(*r, resp->mutable_lease_expires_at());
                        }
                        Finish(reactor, ToGrpcStatus(r.status()));
                      });
  return reactor;
}

grpc::ServerUnaryReactor* JobService::GetJob(grpc::CallbackServerContext* ctx,
                                             const v1::GetJobRequest* req,
                                             v1::Job* resp) {
  if (!Enter()) {
    return FinishUncounted(ctx, absl::UnavailableError(kDraining));
  }
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  queue_->GetJob(req->job_id(),
                 [this, reactor, resp](absl::StatusOr<core::Job> r) {
                   if (r.ok()) ToProto(*r, resp);
                   Finish(reactor, ToGrpcStatus(r.status()));
                 });
  return reactor;
}

}  // namespace spool::api
