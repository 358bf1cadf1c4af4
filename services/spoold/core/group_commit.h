// GroupCommit: combines concurrent requests of one kind into one database
// statement. Requests queue here; at most `max_in_flight` drain tasks run on
// the SessionPool at once, and each takes every request waiting (up to a row
// and byte budget). Requests that arrive while a statement runs simply wait
// for the next one, so there is no timer and no added latency when the
// server is idle, and one fsync covers many callers when it is busy.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "core/executor.h"

namespace spool::core {

template <typename Request>
class GroupCommit {
 public:
  struct Options {
    int max_in_flight = 2;
    size_t max_rows = 2000;
    size_t max_bytes = 16 << 20;
  };
  // Rows and bytes a request adds to a statement.
  using Size = std::function<std::pair<size_t, size_t>(const Request&)>;
  // Runs one group; must answer every request in it.
  using Process =
      std::function<void(absl::StatusOr<StoreSession*>, std::vector<Request>&)>;

  GroupCommit(Executor* pool, Options options, Size size, Process process)
      : pool_(pool),
        options_(options),
        size_(std::move(size)),
        process_(std::move(process)) {}

  void Add(Request request) {
    {
      absl::MutexLock lock(&mu_);
      pending_.push_back(std::move(request));
      if (in_flight_ >= options_.max_in_flight) return;
      ++in_flight_;
    }
    SubmitDrain();
  }

  // Statements run so far and requests they carried (for tests and metrics).
  std::pair<int64_t, int64_t> Counts() {
    absl::MutexLock lock(&mu_);
    return {statements_, requests_};
  }

 private:
  void SubmitDrain() {
    pool_->Submit([this](absl::StatusOr<StoreSession*> session) {
      std::vector<Request> group = Take();
      if (!group.empty()) process_(session, group);
      bool again;
      {
        absl::MutexLock lock(&mu_);
        again = !pending_.empty();
        if (!again) --in_flight_;
      }
      // Re-queue behind other work rather than looping on this thread.
      if (again) SubmitDrain();
    });
  }

  std::vector<Request> Take() {
    std::vector<Request> group;
    absl::MutexLock lock(&mu_);
    size_t rows = 0, bytes = 0;
    while (!pending_.empty()) {
      auto [r, b] = size_(pending_.front());
      if (!group.empty() &&
          (rows + r > options_.max_rows || bytes + b > options_.max_bytes)) {
        break;
      }
      rows += r;
      bytes += b;
      group.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
    if (!group.empty()) {
      ++statements_;
      requests_ += static_cast<int64_t>(group.size());
    }
    return group;
  }

  Executor* const pool_;
  const Options options_;
  const Size size_;
  const Process process_;
  absl::Mutex mu_;
  std::deque<Request> pending_ ABSL_GUARDED_BY(mu_);
  int in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t statements_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t requests_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace spool::core
