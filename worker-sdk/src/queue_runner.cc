#include "queue_runner.h"

#include <utility>

namespace spool::internal {

QueueRunner::QueueRunner(std::string name, std::shared_ptr<Handler> handler,
                         QueueOptions options, Runtime& runtime,
                         JobTracker& jobs, NackSender& nacks, AckBatcher& acks)
    : name_(std::move(name)),
      handler_(std::move(handler)),
      options_(options),
      runtime_(runtime),
      jobs_(jobs),
      nacks_(nacks),
      acks_(acks) {}

void QueueRunner::Start(const std::shared_ptr<const void>& owner) {
  {
    absl::MutexLock lock(&mu_);
    thread_in_job_.assign(options_.concurrency, false);
  }
  for (int i = 0; i < options_.concurrency; ++i) {
    handler_threads_.emplace_back([this, owner, i] {
      MarkRuntimeThread(owner.get());
      HandlerLoop(static_cast<size_t>(i));
    });
  }
  lease_thread_ = std::thread([this, owner] {
    MarkRuntimeThread(owner.get());
    LeaseLoop();
  });
}

}  // namespace spool::internal
