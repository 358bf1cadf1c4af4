#include "core/health_monitor.h"

#include <utility>

#include "base/log.h"

namespace spool::core {

void HealthMonitor::SetCallback(absl::AnyInvocable<void(bool)> fn) {
  absl::MutexLock lock(&mu_);
  callback_ = std::move(fn);
}

void HealthMonitor::Check() {
  if (stopped_) return;
  executor_->Submit([this](absl::StatusOr<StoreSession*> session) {
    Set(session.ok() && (*session)->Ping().ok());
    if (!stopped_) {
      clock_->Schedule(clock_->Now() + interval_, [this] { Check(); });
    }
  });
}

void HealthMonitor::Set(bool healthy) {
  if (healthy_.exchange(healthy) == healthy) return;
  LogInfo(healthy ? "database reachable" : "database unreachable");
  absl::MutexLock lock(&mu_);
  if (callback_) callback_(healthy);
}

}  // namespace spool::core
