// A Worker on an injected clock (a ManualClock in tests): what spool::Worker
// wraps, with the clock the public API does not take.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "clock.h"
#include "function_handler.h"
#include "spool/worker.h"
#include "worker_core.h"

namespace spool::testing {

class ClockedWorker {
 public:
  ClockedWorker(WorkerOptions options, const internal::Clock& clock)
      : core_(std::make_shared<internal::WorkerCore>(std::move(options),
                                                     clock)) {}
  ~ClockedWorker() {
    if (core_->running()) (void)core_->Stop(absl::ZeroDuration());
  }
  absl::Status Register(std::string queue, HandlerFunc handler,
                        QueueOptions options) {
    return core_->Register(
        std::move(queue),
        std::make_shared<internal::FunctionHandler>(std::move(handler)),
        options);
  }
  absl::Status Start() { return core_->Start(); }
  absl::Status Stop(absl::Duration deadline) { return core_->Stop(deadline); }

 private:
  std::shared_ptr<internal::WorkerCore> core_;
};

}  // namespace spool::testing
