// spool::Worker: runs handlers for jobs leased from spoold.
//
//   spool::WorkerOptions options;
//   options.client.targets = {"127.0.0.1:50051"};
//   spool::Worker worker(std::move(options));
//   spool::QueueOptions queue_options;
//   queue_options.concurrency = 8;
//   worker.Register("thumbnail", [](const spool::Job& job) {
//     return spool::Outcome::Success();
//   }, queue_options);
//   spool::InstallSignalHandlers();
//   worker.Start();
//   spool::WaitForSignal();
//   worker.Stop(absl::Seconds(30));
//
// Per queue, one thread long-polls Lease for at most as many jobs as there
// are free handler slots, and `concurrency` threads run handlers. While a
// handler runs, its lease is extended every third of the visibility timeout.
// Successes are acked in batches (up to 1,000, flushed within a few ms and
// retried while spoold is unreachable); retries and failures are nacked.
// Delivery is at-least-once: a job whose lease runs out (worker killed,
// network gone for longer than the visibility timeout) runs again, and its
// `attempt` says so.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "spool/client.h"
#include "spool/job.h"
#include "spool/observer.h"
#include "spool/outcome.h"

namespace spool {

namespace internal {
class WorkerCore;
}  // namespace internal

// A handler as a class. Handle() runs concurrently on up to `concurrency`
// threads; a thrown exception means Outcome::Retry(exception.what()).
class Handler {
 public:
  virtual ~Handler() = default;
  virtual Outcome Handle(const Job& job) = 0;
};

using HandlerFunc = std::function<Outcome(const Job&)>;

struct QueueOptions {
  // Handlers running at once for this queue (1..4096).
  int concurrency = 1;
  // Lease length (1 s .. 12 h); extended every third of it while the handler
  // runs, so it bounds how late a crashed worker's jobs come back, not how
  // long a handler may run.
  absl::Duration visibility_timeout = absl::Seconds(30);
  // Longest wait of one Lease long-poll (the server caps it, 30 s by default).
  absl::Duration max_wait = absl::Seconds(20);
};

struct WorkerOptions {
  ClientOptions client;
  // Recorded on leased jobs. Empty: "<hostname>:<pid>".
  std::string worker_id;
  // Optional hooks for metrics; shared with the caller.
  std::shared_ptr<WorkerObserver> observer;
  // Receives each log line (key=value, no trailing newline). Null: stderr.
  std::function<void(std::string_view line)> log_sink;
  // Backoff of the leasing loop and of ack / nack retries while spoold is
  // unreachable.
  BackoffPolicy reconnect_backoff{absl::Milliseconds(100), absl::Seconds(5),
                                  2.0, 0.2};
  // Completions per Ack RPC (1..1000).
  int ack_batch_size = 1000;
  // How long a completion may wait for others to share its Ack RPC.
  absl::Duration ack_flush_delay = absl::Milliseconds(2);
  // During Stop: how long to keep trying to deliver pending acks and nacks.
  absl::Duration shutdown_flush_timeout = absl::Seconds(10);
  // During Stop: after cancelling handlers still running at the deadline,
  // how long to wait for them to return before leaving them behind.
  absl::Duration cancel_grace = absl::Seconds(2);
};

class Worker {
 public:
  explicit Worker(WorkerOptions options);
  // Stops with a zero deadline if still running: running handlers are
  // cancelled and their jobs handed back at once. Prefer calling Stop().
  ~Worker();

  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  // Before Start(): one handler per queue.
  absl::Status Register(std::string queue, HandlerFunc handler,
                        QueueOptions options = {});
  absl::Status Register(std::string queue, std::shared_ptr<Handler> handler,
                        QueueOptions options = {});

  // Starts leasing. Does not wait for spoold: an unreachable server is
  // retried with backoff. Fails on bad options or if no queue is registered.
  absl::Status Start();

  // Graceful shutdown: stops leasing at once and hands back jobs leased but
  // not started (nack, no delay); lets running handlers finish for up to
  // `deadline`; then cancels the rest (CancellationToken), hands their jobs
  // back with no delay and ignores their outcomes; flushes acks (up to
  // shutdown_flush_timeout). Returns OK when every job was settled, else
  // DEADLINE_EXCEEDED describing what was left to the visibility timeout.
  // Idempotent. Returns within deadline + cancel_grace +
  // shutdown_flush_timeout (+ ~2 s) even if spoold is unreachable; in the
  // usual case right after the last handler returns. Called from a handler
  // or an observer callback (it would wait for itself) it changes nothing
  // and returns FAILED_PRECONDITION.
  absl::Status Stop(absl::Duration deadline);

  bool running() const;
  const std::string& worker_id() const;

 private:
  std::shared_ptr<internal::WorkerCore> core_;
};

// Catches SIGTERM and SIGINT so WaitForSignal() can return them. The handler
// resets itself: a second signal of the same kind acts as it would by default
// (kills the process), for an impatient operator.
void InstallSignalHandlers();

// Blocks until SIGTERM or SIGINT arrives (after InstallSignalHandlers) or
// `timeout` passes. Returns the signal number, or 0 on timeout.
int WaitForSignal(absl::Duration timeout = absl::InfiniteDuration());

}  // namespace spool
