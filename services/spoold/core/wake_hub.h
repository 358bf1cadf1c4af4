// WakeHub: the long-polls waiting on each queue of this replica, and a
// per-queue generation counter. A new job (enqueued here, announced by another
// replica, or made due by maintenance) wakes just enough waiters to take it,
// instead of every waiter racing for one row.
//
// Lost-wake-up rule: a waiter reads Generation() before it queries the
// database; Register() refuses it if a wake-up happened since, and the waiter
// queries again.
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"

namespace spool::core {

class Waiter {
 public:
  virtual ~Waiter() = default;
  // Called without the hub's lock held; must not block.
  virtual void Wake() = 0;
  // How many jobs this waiter can take.
  virtual int Capacity() const = 0;
};

class WakeHub {
 public:
  uint64_t Generation(const std::string& queue);

  // False (and not registered) when the queue's generation is past `seen`.
  bool Register(const std::string& queue, uint64_t seen,
                std::shared_ptr<Waiter> waiter);
  // Removes the waiter if present; true when it was.
  bool Unregister(const std::string& queue, const Waiter* waiter);

  // Wakes waiters, oldest first, until their capacities cover `jobs`
  // (at least one waiter when jobs > 0).
  void Notify(const std::string& queue, int64_t jobs);
  // Wakes one waiter on every queue (fallback poll, reconnected listener).
  void NotifyEachQueue();
  // Removes and returns every waiter (shutdown).
  std::vector<std::shared_ptr<Waiter>> TakeAll();

  int64_t WaitingCount();

 private:
  struct QueueWaiters {
    uint64_t generation = 0;
    std::list<std::shared_ptr<Waiter>> waiters;
  };
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, QueueWaiters> queues_ ABSL_GUARDED_BY(mu_);
  int64_t waiting_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace spool::core
