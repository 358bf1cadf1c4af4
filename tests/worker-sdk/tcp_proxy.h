// A loopback TCP proxy that can go silent: Freeze() stops forwarding on every
// connection without closing any and refuses new ones, as when a server's
// host or the network path to it vanishes (no FIN, no RST). For tests of
// keepalive.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace spool::testing {

class TcpProxy {
 public:
  // Listens on 127.0.0.1 (a free port) and forwards to 127.0.0.1:upstream.
  explicit TcpProxy(int upstream_port);
  ~TcpProxy();

  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;

  bool ok() const { return listen_fd_ >= 0; }
  std::string Target() const;
  void Freeze();
  // Bytes forwarded so far, both ways.
  int64_t forwarded() const { return forwarded_.load(); }

 private:
  void AcceptLoop();
  void Pump(int from, int to);

  const int upstream_port_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> frozen_{false};
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> forwarded_{0};
  std::thread acceptor_;
  absl::Mutex mu_;
  std::vector<std::thread> pumps_ ABSL_GUARDED_BY(mu_);
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
};

}  // namespace spool::testing
