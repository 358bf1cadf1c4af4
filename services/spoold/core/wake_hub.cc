#include "core/wake_hub.h"

namespace spool::core {

uint64_t WakeHub::Generation(const std::string& queue) {
  absl::MutexLock lock(&mu_);
  return queues_[queue].generation;
}

bool WakeHub::Register(const std::string& queue, uint64_t seen,
                       std::shared_ptr<Waiter> waiter) {
  absl::MutexLock lock(&mu_);
  QueueWaiters& q = queues_[queue];
  if (q.generation != seen) return false;
  q.waiters.push_back(std::move(waiter));
  ++waiting_;
  return true;
}

bool WakeHub::Unregister(const std::string& queue, const Waiter* waiter) {
  absl::MutexLock lock(&mu_);
  auto it = queues_.find(queue);
  if (it == queues_.end()) return false;
  auto& list = it->second.waiters;
  for (auto w = list.begin(); w != list.end(); ++w) {
    if (w->get() == waiter) {
      list.erase(w);
      --waiting_;
      return true;
    }
  }
  return false;
}

void WakeHub::Notify(const std::string& queue, int64_t jobs) {
  if (jobs <= 0) return;
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    absl::MutexLock lock(&mu_);
    QueueWaiters& q = queues_[queue];
    ++q.generation;
    int64_t covered = 0;
    while (!q.waiters.empty() && covered < jobs) {
      covered += q.waiters.front()->Capacity();
      woken.push_back(std::move(q.waiters.front()));
      q.waiters.pop_front();
      --waiting_;
    }
  }
  for (auto& w : woken) w->Wake();
}

void WakeHub::NotifyEachQueue() {
  std::vector<std::shared_ptr<Waiter>> woken;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [name, q] : queues_) {
      ++q.generation;
      if (q.waiters.empty()) continue;
      woken.push_back(std::move(q.waiters.front()));
      q.waiters.pop_front();
      --waiting_;
    }
  }
  for (auto& w : woken) w->Wake();
}

std::vector<std::shared_ptr<Waiter>> WakeHub::TakeAll() {
  std::vector<std::shared_ptr<Waiter>> all;
  absl::MutexLock lock(&mu_);
  for (auto& [name, q] : queues_) {
    ++q.generation;
    for (auto& w : q.waiters) all.push_back(std::move(w));
    q.waiters.clear();
  }
  waiting_ = 0;
  return all;
}

int64_t WakeHub::WaitingCount() {
  absl::MutexLock lock(&mu_);
  return waiting_;
}

}  // namespace spool::core
