// QueueConfigCache: each queue's settings, read (and the queue created with
// defaults) through the store at most once per `ttl`, so the hot paths do
// not pay a round trip for them. Thread-safe.
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "core/clock.h"
#include "core/store.h"
#include "core/types.h"

namespace spool::core {

class QueueConfigCache {
 public:
  QueueConfigCache(Clock* clock, absl::Duration ttl)
      : clock_(clock), ttl_(ttl) {}

  // The cached settings, or the store's (StoreSession::EnsureQueue).
  absl::StatusOr<QueueConfig> Get(StoreSession* session,
                                  const std::string& name);

 private:
  struct Entry {
    QueueConfig config;
    absl::Time expires;
  };
  Clock* const clock_;
  const absl::Duration ttl_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> entries_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::core
