#include "core/queue_config_cache.h"

namespace spool::core {

absl::StatusOr<QueueConfig> QueueConfigCache::Get(StoreSession* session,
                                                  const std::string& name) {
  const absl::Time now = clock_->Now();
  {
    absl::MutexLock lock(&mu_);
    auto it = entries_.find(name);
    if (it != entries_.end() && it->second.expires > now) {
      return it->second.config;
    }
  }
  auto config = session->EnsureQueue(name);
  if (!config.ok()) return config.status();
  absl::MutexLock lock(&mu_);
  entries_[name] = Entry{*config, now + ttl_};
  return config;
}

}  // namespace spool::core
