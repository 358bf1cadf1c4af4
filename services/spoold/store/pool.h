// SessionPool: a fixed set of threads, each owning one PostgreSQL Session,
// running submitted tasks in order. gRPC callback threads hand database work
// here and never block on it; a waiting long-poll holds no thread and no
// connection. A lost connection is replaced on the thread's next task.
#pragma once

#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/executor.h"
#include "store/session.h"

namespace spool::store {

// The PostgreSQL implementation of core::Executor.
class SessionPool : public core::Executor {
 public:
  // Receives a connected session, or UNAVAILABLE when none could be had.
  using Task = core::Executor::Task;

  struct Options {
    std::string database_url;
    int size = 4;
    // After a failed connect, tasks fail fast for this long instead of each
    // trying again.
    absl::Duration reconnect_backoff = absl::Milliseconds(200);
  };

  struct Stats {
    int size = 0;
    int busy = 0;            // Threads running a task.
    int connected = 0;       // Threads holding an open connection.
    int queued = 0;          // Tasks waiting for a thread.
    int64_t reconnects = 0;  // Connects after a lost or refused connection.
  };

  explicit SessionPool(Options options);
  ~SessionPool() override;

  SessionPool(const SessionPool&) = delete;
  SessionPool& operator=(const SessionPool&) = delete;

  // Queues a task. After Shutdown() the task runs at once on the caller's
  // thread with UNAVAILABLE.
  void Submit(Task task) override;

  // Runs the tasks already queued, then stops the threads and closes the
  // connections. Idempotent.
  void Shutdown();

  Stats GetStats() const;

 private:
  void ThreadMain(int index);

  const Options options_;
  mutable absl::Mutex mu_;
  std::deque<Task> tasks_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  int busy_ ABSL_GUARDED_BY(mu_) = 0;
  int connected_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t reconnects_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time last_connect_failure_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::string last_connect_error_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread> threads_;
};

}  // namespace spool::store
