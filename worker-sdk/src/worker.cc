#include "spool/worker.h"

#include "function_handler.h"
#include "worker_core.h"

namespace spool {

using internal::FunctionHandler;

Worker::Worker(WorkerOptions options)
    : core_(std::make_shared<internal::WorkerCore>(std::move(options))) {}

Worker::~Worker() {
  if (core_->running()) (void)core_->Stop(absl::ZeroDuration());
}

absl::Status Worker::Register(std::string queue, HandlerFunc handler,
                              QueueOptions options) {
  if (!handler) {
    return absl::InvalidArgumentError("queue " + queue + ": empty handler");
  }
  return core_->Register(std::move(queue),
                         std::make_shared<FunctionHandler>(std::move(handler)),
                         options);
}

absl::Status Worker::Register(std::string queue,
                              std::shared_ptr<Handler> handler,
                              QueueOptions options) {
  return core_->Register(std::move(queue), std::move(handler), options);
}

absl::Status Worker::Start() { return core_->Start(); }

absl::Status Worker::Stop(absl::Duration deadline) {
  return core_->Stop(deadline);
}

bool Worker::running() const { return core_->running(); }

const std::string& Worker::worker_id() const { return core_->worker_id(); }

}  // namespace spool
