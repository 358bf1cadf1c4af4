// HealthMonitor: pings the database through the executor every `interval`
// and reports reachability changes (readiness, the gRPC health service).
#pragma once

#include <atomic>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/executor.h"

namespace spool::core {

class HealthMonitor {
 public:
  HealthMonitor(Executor* executor, Clock* clock, absl::Duration interval)
      : executor_(executor), clock_(clock), interval_(interval) {}

  // The first ping now, then one `interval` after each answer.
  void Start() { Check(); }
  void Stop() { stopped_ = true; }

  // True while the database answered the last ping.
  bool Healthy() const { return healthy_.load(); }
  // Called with the new value whenever Healthy() changes.
  void SetCallback(absl::AnyInvocable<void(bool)> fn);

 private:
  void Check();
  void Set(bool healthy);

  Executor* const executor_;
  Clock* const clock_;
  const absl::Duration interval_;
  std::atomic<bool> stopped_{false};
  std::atomic<bool> healthy_{false};
  absl::Mutex mu_;
  absl::AnyInvocable<void(bool)> callback_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::core
