// Observer: what the queue core reports as it works, for metrics. Every
// method has an empty default so an implementation overrides what it needs.
// Called on database pool threads: implementations must be cheap and
// thread-safe, and must not take unbounded values (job ids, error texts) as
// metric labels.
#pragma once

#include <cstdint>
#include <string>

#include "absl/time/time.h"

namespace spool::core {

class Observer {
 public:
  virtual ~Observer() = default;
  virtual void OnEnqueued(const std::string& /*queue*/, int64_t /*created*/,
                          int64_t /*duplicates*/) {}
  // One call per leased job; `waited` is ready -> leased.
  virtual void OnLeased(const std::string& /*queue*/,
                        absl::Duration /*waited*/) {}
  virtual void OnLeaseBatch(const std::string& /*queue*/, int64_t /*jobs*/) {}
  // Rows one Enqueue or Ack statement carried (with group commit, the jobs
  // of every call it combined).
  virtual void OnEnqueueBatch(int64_t /*jobs*/) {}
  virtual void OnAckBatch(int64_t /*jobs*/) {}
  virtual void OnAcked(const std::string& /*queue*/,
                       absl::Duration /*processing*/) {}
  virtual void OnNacked(const std::string& /*queue*/, bool /*dead*/,
                        absl::Duration /*processing*/) {}
  virtual void OnLeasesExpired(const std::string& /*queue*/, int64_t /*ready*/,
                               int64_t /*dead*/) {}
  virtual void OnLongPollTimeout(const std::string& /*queue*/) {}
  // Jobs leased for a long-poll that ended (cancelled or timed out) while
  // its lease query ran, handed straight back without counting an attempt.
  // They were reported to OnLeased too.
  virtual void OnLeasesReleased(const std::string& /*queue*/,
                                int64_t /*jobs*/) {}
  virtual void OnDatabaseRoundTrip(const char* /*op*/,
                                   absl::Duration /*took*/) {}
};

}  // namespace spool::core
