// Small helpers shared by the worker-sdk tests.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spool/observer.h"

namespace spool::testing {

// Polls `condition` every 10 ms until it holds or `timeout` passes.
inline bool Eventually(const std::function<bool()>& condition,
                       absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
}

// Records every observer callback.
class RecordingObserver : public WorkerObserver {
 public:
  struct Failure {
    std::string job_id;
    JobFailure failure;
    absl::StatusCode code;
  };

  void OnJobStarted(const Job& job) override {
    absl::MutexLock lock(&mu_);
    started_.push_back(job.id);
  }
  void OnJobFinished(const Job& job, const Outcome& outcome,
                     absl::Duration) override {
    absl::MutexLock lock(&mu_);
    finished_[job.id].push_back(outcome.kind());
  }
  void OnJobFailed(const Job& job, JobFailure failure,
                   const absl::Status& status) override {
    absl::MutexLock lock(&mu_);
    failures_.push_back({job.id, failure, status.code()});
  }
  void OnLeaseExtensionFailed(const Job& job, const absl::Status&) override {
    absl::MutexLock lock(&mu_);
    extension_failures_.push_back(job.id);
  }
  void OnAckLatency(absl::Duration latency, int batch_size) override {
    absl::MutexLock lock(&mu_);
    ack_batches_.push_back(batch_size);
    ack_latencies_.push_back(latency);
  }
  void OnLeaseError(std::string_view, const absl::Status&) override {
    absl::MutexLock lock(&mu_);
    ++lease_errors_;
  }

  std::vector<std::string> started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }
  std::map<std::string, std::vector<Outcome::Kind>> finished() {
    absl::MutexLock lock(&mu_);
    return finished_;
  }
  std::vector<Failure> failures() {
    absl::MutexLock lock(&mu_);
    return failures_;
  }
  int CountFailures(JobFailure kind) {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const Failure& f : failures_) n += f.failure == kind ? 1 : 0;
    return n;
  }
  std::vector<std::string> extension_failures() {
    absl::MutexLock lock(&mu_);
    return extension_failures_;
  }
  std::vector<int> ack_batches() {
    absl::MutexLock lock(&mu_);
    return ack_batches_;
  }
  std::vector<absl::Duration> ack_latencies() {
    absl::MutexLock lock(&mu_);
    return ack_latencies_;
  }
  int lease_errors() {
    absl::MutexLock lock(&mu_);
    return lease_errors_;
  }

 private:
  absl::Mutex mu_;
  std::vector<std::string> started_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::vector<Outcome::Kind>> finished_
      ABSL_GUARDED_BY(mu_);
  std::vector<Failure> failures_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> extension_failures_ ABSL_GUARDED_BY(mu_);
  std::vector<int> ack_batches_ ABSL_GUARDED_BY(mu_);
  std::vector<absl::Duration> ack_latencies_ ABSL_GUARDED_BY(mu_);
  int lease_errors_ ABSL_GUARDED_BY(mu_) = 0;
};

// Tracks how many handlers run at once.
class ConcurrencyGauge {
 public:
  void Enter() {
    absl::MutexLock lock(&mu_);
    ++now_;
    if (now_ > max_) max_ = now_;
  }
  void Exit() {
    absl::MutexLock lock(&mu_);
    --now_;
  }
  int max() {
    absl::MutexLock lock(&mu_);
    return max_;
  }
  int now() {
    absl::MutexLock lock(&mu_);
    return now_;
  }

 private:
  absl::Mutex mu_;
  int now_ ABSL_GUARDED_BY(mu_) = 0;
  int max_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace spool::testing
