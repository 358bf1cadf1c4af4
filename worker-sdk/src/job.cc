#include "spool/job.h"

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"

namespace spool {
namespace internal {

struct CancelState {
  absl::Mutex mu;
  bool cancelled ABSL_GUARDED_BY(mu) = false;
};

}  // namespace internal

bool CancellationToken::cancelled() const {
  if (state_ == nullptr) return false;
  absl::MutexLock lock(&state_->mu);
  return state_->cancelled;
}

bool CancellationToken::WaitForCancellation(absl::Duration timeout) const {
  if (state_ == nullptr) {
    // Never cancelled: behave like a plain sleep, but never forever.
    if (timeout != absl::InfiniteDuration()) absl::SleepFor(timeout);
    return false;
  }
  absl::MutexLock lock(&state_->mu);
  auto is_cancelled = [this]() ABSL_SHARED_LOCKS_REQUIRED(state_->mu) {
    return state_->cancelled;
  };
  state_->mu.AwaitWithTimeout(absl::Condition(&is_cancelled), timeout);
  return state_->cancelled;
}

CancellationSource::CancellationSource()
    : state_(std::make_shared<internal::CancelState>()) {}

void CancellationSource::Cancel() {
  absl::MutexLock lock(&state_->mu);
  state_->cancelled = true;
}

bool CancellationSource::cancelled() const {
  absl::MutexLock lock(&state_->mu);
  return state_->cancelled;
}

}  // namespace spool
