#include "store/pool.h"

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "base/log.h"

namespace spool::store {

SessionPool::SessionPool(Options options) : options_(std::move(options)) {
  const int n = options_.size < 1 ? 1 : options_.size;
  threads_.reserve(n);
  for (int i = 0; i < n; ++i)
    threads_.emplace_back([this, i] { ThreadMain(i); });
}

SessionPool::~SessionPool() { Shutdown(); }

void SessionPool::Submit(Task task) {
  {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      tasks_.push_back(std::move(task));
      return;
    }
  }
  task(absl::UnavailableError("the server is shutting down"));
}

void SessionPool::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    if (stopping_ && threads_.empty()) return;
    stopping_ = true;
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

SessionPool::Stats SessionPool::GetStats() const {
  absl::MutexLock lock(&mu_);
  Stats s;
  s.size = options_.size < 1 ? 1 : options_.size;
  s.busy = busy_;
  s.connected = connected_;
  s.queued = static_cast<int>(tasks_.size());
  s.reconnects = reconnects_;
  return s;
}

void SessionPool::ThreadMain(int index) {
  std::unique_ptr<Session> session;
  bool lost = false;  // A connection of this thread was lost or refused.
  auto has_work = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return !tasks_.empty() || stopping_;
  };
  while (true) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(&has_work));
      if (tasks_.empty()) break;  // Stopping and drained.
      task = std::move(tasks_.front());
      tasks_.pop_front();
      ++busy_;
    }
    if (session != nullptr && session->broken()) {
      session.reset();
      lost = true;
      absl::MutexLock lock(&mu_);
      --connected_;
    }
    absl::Status connect_error;
    if (session == nullptr) {
      bool try_now;
      {
        absl::MutexLock lock(&mu_);
        try_now =
            absl::Now() - last_connect_failure_ >= options_.reconnect_backoff;
        if (!try_now) {
          connect_error = absl::UnavailableError(last_connect_error_);
        }
      }
      if (try_now) {
        auto s = Session::Connect(options_.database_url);
        absl::MutexLock lock(&mu_);
        if (s.ok()) {
          session = *std::move(s);
          ++connected_;
          if (lost) {
            ++reconnects_;
            lost = false;
            LogInfo("database reconnected", {{"pool_thread", index}});
          }
        } else {
          lost = true;
          last_connect_failure_ = absl::Now();
          last_connect_error_ = "the database is unavailable";
          connect_error = absl::UnavailableError(last_connect_error_);
          LogWarning("database connect failed",
                     {{"pool_thread", index}, {"error", s.status().message()}});
        }
      }
    }
    if (session != nullptr) {
      task(session.get());
    } else {
      task(connect_error);
    }
    absl::MutexLock lock(&mu_);
    --busy_;
  }
  if (session != nullptr) {
    session.reset();
    absl::MutexLock lock(&mu_);
    --connected_;
  }
}

}  // namespace spool::store
