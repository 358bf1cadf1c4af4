// NotificationListener: receives what other replicas sent with
// StoreSession::Notify. store::Listener is the PostgreSQL implementation
// (LISTEN on its own connection); the core creates one through a factory so
// it never names the database.
#pragma once

#include <functional>
#include <memory>
#include <string>

namespace spool::core {

class NotificationListener {
 public:
  struct Options {
    std::string channel;
    // Each notification's payload, on the listener's thread.
    std::function<void(const std::string& payload)> on_notify;
    // After each reconnection: notifications sent meanwhile were lost.
    std::function<void()> on_reconnect;
  };

  virtual ~NotificationListener() = default;
  virtual void Start() = 0;
  virtual void Stop() = 0;
};

using ListenerFactory = std::function<std::unique_ptr<NotificationListener>(
    NotificationListener::Options)>;

}  // namespace spool::core
