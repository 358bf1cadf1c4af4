// Executor: where the core runs its storage work. A task receives a session
// to use for its duration, or the error why none could be had (UNAVAILABLE),
// and must answer its callers either way. gRPC threads hand work here and
// never block on it. store::SessionPool is the PostgreSQL implementation (a
// thread and connection per session); tests run tasks when they choose.
#pragma once

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "core/store.h"

namespace spool::core {

class Executor {
 public:
  using Task = absl::AnyInvocable<void(absl::StatusOr<StoreSession*>)>;

  virtual ~Executor() = default;
  // Queues a task; it may also run at once on the caller's thread (with an
  // error, after shutdown).
  virtual void Submit(Task task) = 0;
};

}  // namespace spool::core
