// Listener: a dedicated PostgreSQL session that LISTENs on one channel and
// hands each notification's payload to a callback, on its own thread. It
// reconnects by itself with backoff; `on_reconnect` runs after each
// reconnection so the owner can re-check for work it may have missed.
//
// LISTEN needs a real session: point this connection past any
// transaction-mode pooler (PgBouncer) directly at PostgreSQL.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>

#include "absl/synchronization/notification.h"
#include "core/listener.h"

namespace spool::store {

// The PostgreSQL implementation of core::NotificationListener.
class Listener : public core::NotificationListener {
 public:
  struct Options {
    std::string database_url;
    std::string channel;
    std::function<void(const std::string& payload)> on_notify;
    std::function<void()> on_reconnect;
  };

  explicit Listener(Options options);
  ~Listener() override;

  void Start() override;
  void Stop() override;

  bool connected() const { return connected_.load(); }

 private:
  void Run();

  Options options_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> connected_{false};
  std::thread thread_;
};

}  // namespace spool::store
