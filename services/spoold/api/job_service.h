// JobService: the spool.v1 gRPC handlers (callback API). Each handler converts
// the request, hands it to the queue core and returns at once; the core's
// callback finishes the RPC from a database pool thread. No handler blocks a
// gRPC thread, and a waiting Lease holds no thread at all.
#pragma once

#include <atomic>
#include <cstdint>

#include "absl/time/time.h"
#include "core/job_queue.h"
#include "spool/v1/spool.grpc.pb.h"

namespace spool::api {

class JobService final : public v1::JobService::CallbackService {
 public:
  explicit JobService(core::JobQueue* queue) : queue_(queue) {}

  // Refuses new calls with UNAVAILABLE (clients retry another replica) and
  // waits until the calls in flight have finished, or `deadline` passes.
  // Returns the number of calls still in flight.
  int64_t Drain(absl::Time deadline);

  grpc::ServerUnaryReactor* Enqueue(grpc::CallbackServerContext* ctx,
                                    const v1::EnqueueRequest* req,
                                    v1::EnqueueResponse* resp) override;
  grpc::ServerUnaryReactor* EnqueueBatch(
      grpc::CallbackServerContext* ctx, const v1::EnqueueBatchRequest* req,
      v1::EnqueueBatchResponse* resp) override;
  grpc::ServerUnaryReactor* Lease(grpc::CallbackServerContext* ctx,
                                  const v1::LeaseRequest* req,
                                  v1::LeaseResponse* resp) override;
  grpc::ServerUnaryReactor* Ack(grpc::CallbackServerContext* ctx,
                                const v1::AckRequest* req,
                                v1::AckResponse* resp) override;
  grpc::ServerUnaryReactor* Nack(grpc::CallbackServerContext* ctx,
                                 const v1::NackRequest* req,
                                 v1::NackResponse* resp) override;
  grpc::ServerUnaryReactor* ExtendLease(grpc::CallbackServerContext* ctx,
                                        const v1::ExtendLeaseRequest* req,
                                        v1::ExtendLeaseResponse* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx,
                                   const v1::GetJobRequest* req,
                                   v1::Job* resp) override;

 private:
  // Counts a call in; false when draining (the call must be refused).
  bool Enter();
  // Answers a counted call with an error at once.
  grpc::ServerUnaryReactor* Reject(grpc::CallbackServerContext* ctx,
                                   const absl::Status& status);
  // Finishes a call counted in by Enter().
  void Finish(grpc::ServerUnaryReactor* reactor, const grpc::Status& status);

  core::JobQueue* const queue_;
  std::atomic<int64_t> in_flight_{0};
  std::atomic<bool> draining_{false};
};

}  // namespace spool::api
