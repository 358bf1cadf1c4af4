// Pure batching logic of the ack batcher: decides when pending completions
// are flushed and how many go into one Ack RPC. No threads, no clock: the
// caller passes `now`, so tests drive it directly.
#pragma once

#include <cstddef>
#include <deque>
#include <vector>

#include "absl/time/time.h"

namespace spool::internal {

template <typename Item>
class AckBuffer {
 public:
  // `max_batch` completions per RPC; an item waits at most `flush_delay` for
  // company before a flush is due.
  AckBuffer(size_t max_batch, absl::Duration flush_delay)
      : max_batch_(max_batch == 0 ? 1 : max_batch), flush_delay_(flush_delay) {}

  void Add(Item item, absl::Time now) {
    entries_.push_back(Entry{std::move(item), now});
  }

  // Puts a failed batch back at the front, keeping its original add times so
  // it is due again at once (the caller backs off before sending).
  void Requeue(std::vector<Item> items, absl::Time added_at) {
    for (auto it = items.rbegin(); it != items.rend(); ++it) {
      entries_.push_front(Entry{std::move(*it), added_at});
    }
  }

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

  // When the next flush is due: InfiniteFuture when empty, now-or-earlier
  // when a full batch is waiting.
  absl::Time NextFlushTime() const {
    if (entries_.empty()) return absl::InfiniteFuture();
    if (entries_.size() >= max_batch_) return absl::InfinitePast();
    return entries_.front().added_at + flush_delay_;
  }

  bool FlushDue(absl::Time now) const { return NextFlushTime() <= now; }

  // Takes up to max_batch items, oldest first, if a flush is due or `force`.
  // `oldest` receives the add time of the first item taken.
  std::vector<Item> Take(absl::Time now, bool force, absl::Time* oldest) {
    std::vector<Item> batch;
    if (entries_.empty() || (!force && !FlushDue(now))) return batch;
    if (oldest != nullptr) *oldest = entries_.front().added_at;
    const size_t n =
        entries_.size() < max_batch_ ? entries_.size() : max_batch_;
    batch.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(entries_.front().item));
      entries_.pop_front();
    }
    return batch;
  }

 private:
  struct Entry {
    Item item;
    absl::Time added_at;
  };
  size_t max_batch_;
  absl::Duration flush_delay_;
  std::deque<Entry> entries_;
};

}  // namespace spool::internal
