// JobService: the spool.v1 gRPC handlers (callback API). Each handler converts
// the request, hands it to the queue core and returns at once; the core's
// callback finishes the RPC from a database pool thread. No handler blocks a
// gRPC thread, and a waiting Lease holds no thread at all.
#pragma once

#include "core/job_queue.h"
#include "spool/v1/spool.grpc.pb.h"

namespace spool::api {

class JobService final : public v1::JobService::CallbackService {
 public:
  explicit JobService(core::JobQueue* queue) : queue_(queue) {}

  grpc::ServerUnaryReactor* Enqueue(grpc::CallbackServerContext* ctx,
                                    const v1::EnqueueRequest* req,
                                    v1::EnqueueResponse* resp) override;
  grpc::ServerUnaryReactor* EnqueueBatch(grpc::CallbackServerContext* ctx,
                                         const v1::EnqueueBatchRequest* req,
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
  core::JobQueue* const queue_;
};

}  // namespace spool::api
