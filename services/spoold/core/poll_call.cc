#include "core/poll_call.h"

#include <algorithm>
#include <utility>

namespace spool::core {

PollCall::PollCall(const PollContext* context, LeaseParams params,
                   bool default_timeout, absl::Time wait_until,
                   Callback<std::vector<LeasedJob>> done)
    : cx_(context),
      params_(std::move(params)),
      default_timeout_(default_timeout),
      wait_until_(wait_until),
      done_(std::move(done)) {}

void PollCall::Start() {
  if (wait_until_ > cx_->clock->Now()) {
    auto self = shared_from_this();
    // Under mu_: the timer may fire (and Finish read timer_id_) at once.
    absl::MutexLock lock(&mu_);
    timer_id_ = cx_->clock->Schedule(wait_until_, [self] {
      self->Finish(std::vector<LeasedJob>(), /*timed_out=*/true);
    });
  }
  Submit();
}

void PollCall::Cancel() {
  Finish(absl::CancelledError("the Lease call was cancelled"));
}

void PollCall::Wake() { Submit(); }

void PollCall::FinishEmpty() { Finish(std::vector<LeasedJob>()); }

bool PollCall::finished() {
  absl::MutexLock lock(&mu_);
  return finished_;
}

void PollCall::Submit() {
  auto self = shared_from_this();
  cx_->executor->Submit([self](absl::StatusOr<StoreSession*> session) {
    self->Attempt(session);
  });
}

void PollCall::Attempt(absl::StatusOr<StoreSession*> session) {
  if (finished()) return;
  if (!session.ok()) {
    Finish(session.status());
    return;
  }
  StoreSession* s = *session;
  if (default_timeout_) {
    auto config = cx_->configs->Get(s, params_.queue);
    if (!config.ok()) {
      Finish(config.status());
      return;
    }
    params_.visibility_timeout = config->visibility_timeout;
    default_timeout_ = false;
  }
  const uint64_t generation = cx_->hub->Generation(params_.queue);
  const absl::Time start = cx_->clock->Now();
  auto jobs = s->Lease(params_);
  cx_->observer->OnDatabaseRoundTrip("lease", cx_->clock->Now() - start);
  if (!jobs.ok()) {
    Finish(jobs.status());
    return;
  }
  if (!jobs->empty()) {
    const size_t n = jobs->size();
    // A full batch suggests more: let the next waiter look too.
    if (static_cast<int>(n) == params_.max_jobs) {
      cx_->hub->Notify(params_.queue, 1);
    }
    std::vector<LeasedJob> copy;
    copy.reserve(n);
    for (const auto& j : *jobs) {
      LeasedJob k;
      k.job_id = j.job_id;
      k.lease_id = j.lease_id;
      copy.push_back(std::move(k));
    }
    cx_->observer->OnLeaseBatch(params_.queue, static_cast<int64_t>(n));
    for (const auto& j : *jobs) {
      cx_->observer->OnLeased(
          params_.queue,
          std::max(absl::ZeroDuration(),
                   j.lease_expires_at - params_.visibility_timeout - j.run_at));
    }
    if (!Finish(*std::move(jobs))) {
      // Cancelled or timed out while the query ran: give the jobs back.
      if (s->ReleaseLeases(copy).ok()) {
        cx_->observer->OnLeasesReleased(params_.queue, static_cast<int64_t>(n));
        cx_->released(params_.queue, static_cast<int64_t>(n));
      }
    }
    return;
  }
  if (cx_->shutting_down->load() || cx_->clock->Now() >= wait_until_) {
    Finish(std::vector<LeasedJob>());
    return;
  }
  if (!cx_->hub->Register(params_.queue, generation, shared_from_this())) {
    Submit();  // A job appeared while we looked: look again.
    return;
  }
  // Cancel or time-out may have run before we registered.
  if (finished()) cx_->hub->Unregister(params_.queue, this);
}

bool PollCall::Finish(absl::StatusOr<std::vector<LeasedJob>> result,
                      bool timed_out) {
  Callback<std::vector<LeasedJob>> done;
  Clock::TimerId timer_id;
  {
    absl::MutexLock lock(&mu_);
    if (finished_) return false;
    finished_ = true;
    done = std::move(done_);
    timer_id = timer_id_;
  }
  cx_->hub->Unregister(params_.queue, this);
  if (timer_id != 0) cx_->clock->Cancel(timer_id);
  if (timed_out) cx_->observer->OnLongPollTimeout(params_.queue);
  done(std::move(result));
  return true;
}

}  // namespace spool::core
