#include "core/notifier.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/log.h"

namespace spool::core {
namespace {

// NOTIFY payloads are limited to 8000 bytes.
constexpr size_t kMaxNotifyPayload = 7000;

}  // namespace

Notifier::Notifier(Executor* executor, Clock* clock, Options options)
    : executor_(executor), clock_(clock), options_(std::move(options)) {}

void Notifier::Publish(const std::string& queue) {
  {
    absl::MutexLock lock(&mu_);
    pending_.insert(queue);
  }
  Flush();
}

void Notifier::Flush() {
  {
    absl::MutexLock lock(&mu_);
    // A send in flight or armed will take what is pending.
    if (pending_.empty()) return;
    if (in_flight_ || armed_) return;
    if (clock_->Now() < next_) {
      armed_ = true;
      clock_->Schedule(next_, [this] {
        {
          absl::MutexLock lock(&mu_);
          armed_ = false;
          if (in_flight_ || pending_.empty()) return;
          in_flight_ = true;
        }
        Send();
      });
      return;
    }
    in_flight_ = true;
  }
  Send();
}

void Notifier::Send() {
  executor_->Submit([this](absl::StatusOr<StoreSession*> session) {
    std::vector<std::string> queues;
    {
      absl::MutexLock lock(&mu_);
      queues.assign(pending_.begin(), pending_.end());
      pending_.clear();
    }
    if (session.ok() && !queues.empty()) {
      std::string payload = options_.replica_id;
      for (const std::string& q : queues) {
        if (payload.size() + q.size() + 1 > kMaxNotifyPayload) {
          (void)(*session)->Notify(options_.channel, payload);
          payload = options_.replica_id;
        }
        absl::StrAppend(&payload, "\n", q);
      }
      absl::Status st = (*session)->Notify(options_.channel, payload);
      if (!st.ok()) LogDebug("notify failed", {{"error", st.message()}});
    }
    bool again;
    {
      absl::MutexLock lock(&mu_);
      in_flight_ = false;
      next_ = clock_->Now() + options_.interval;
      again = !pending_.empty();
    }
    // Queues that arrived meanwhile go out after the interval.
    if (again) Flush();
  });
}

std::vector<std::string> Notifier::Parse(const std::string& payload) const {
  std::vector<std::string> parts = absl::StrSplit(payload, '\n');
  std::vector<std::string> queues;
  if (parts.empty() || parts[0] == options_.replica_id) return queues;
  for (size_t i = 1; i < parts.size(); ++i) {
    if (!parts[i].empty()) queues.push_back(std::move(parts[i]));
  }
  return queues;
}

}  // namespace spool::core
