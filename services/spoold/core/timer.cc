#include "core/timer.h"

#include "absl/time/clock.h"

namespace spool::core {

Timer::Timer() : thread_([this] { Run(); }) {}

Timer::~Timer() { Shutdown(); }

absl::Time Timer::Now() { return absl::Now(); }

Timer::Id Timer::Schedule(absl::Time when, absl::AnyInvocable<void()> fn) {
  absl::MutexLock lock(&mu_);
  return pending_.Add(when, std::move(fn));
}

bool Timer::Cancel(Id id) {
  absl::MutexLock lock(&mu_);
  return pending_.Cancel(id);
}

void Timer::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    pending_.Clear();
  }
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) {
    thread_.join();
  }
}

void Timer::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (pending_.empty()) {
      mu_.Await(absl::Condition(
          +[](Timer* t) ABSL_NO_THREAD_SAFETY_ANALYSIS {
            return t->stopping_ || !t->pending_.empty();
          },
          this));
      continue;
    }
    absl::AnyInvocable<void()> fn = pending_.PopDue(absl::Now());
    if (fn == nullptr) {
      // Wakes early when an earlier callback is scheduled, the first one is
      // cancelled, or on shutdown.
      struct Args {
        Timer* t;
        size_t size;
        Id first_id;
      } args{this, pending_.size(), pending_.First().second};
      mu_.AwaitWithDeadline(
          absl::Condition(
              +[](Args* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                return a->t->stopping_ || a->t->pending_.empty() ||
                       a->t->pending_.size() != a->size ||
                       a->t->pending_.First().second != a->first_id;
              },
              &args),
          pending_.First().first);
      continue;
    }
    mu_.Unlock();
    fn();
    mu_.Lock();
  }
}

}  // namespace spool::core
