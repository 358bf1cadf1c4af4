// What every part of a Worker's runtime shares: its options and identity,
// the log, the connection to spoold, the clock and the observer, plus the
// marker of the runtime's own threads (Stop() from one would wait for
// itself).
#pragma once

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "clock.h"
#include "connection.h"
#include "job_tracker.h"
#include "log.h"
#include "spool/observer.h"
#include "spool/worker.h"

namespace spool::internal {

struct Runtime {
  Runtime(WorkerOptions options, std::string worker_id, const Clock& clock);

  // Calls `f(observer)` if there is one; an observer that throws is ignored
  // (a metrics bug must not stop the worker).
  template <typename F>
  void Observe(F&& f) const {
    if (options.observer == nullptr) return;
    try {
      f(*options.observer);
    } catch (...) {
    }
  }
  void ReportFailure(const ActiveJob& job, JobFailure failure,
                     const absl::Status& status) const;

  const WorkerOptions options;
  const std::string worker_id;
  const Clock& clock;
  Logger log;
  // Null when Connection::Create failed (Start() then reports why).
  std::shared_ptr<Connection> connection;
};

// Marks the calling thread as one of the runtime `owner`'s threads.
void MarkRuntimeThread(const void* owner);
bool IsRuntimeThreadOf(const void* owner);

std::string Ms(absl::Duration d);
std::string CodeName(absl::StatusCode code);

}  // namespace spool::internal
