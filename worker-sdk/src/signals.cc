// SIGTERM/SIGINT helper: the handler writes the signal number into a pipe
// (async-signal-safe); WaitForSignal() polls the pipe.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "absl/time/clock.h"
#include "spool/worker.h"

namespace spool {
namespace {

std::atomic<int> g_pipe_write{-1};
int g_pipe_read = -1;
std::once_flag g_pipe_once;

extern "C" void SpoolSignalHandler(int sig) {
  const int saved_errno = errno;
  const int fd = g_pipe_write.load(std::memory_order_relaxed);
  if (fd >= 0) {
    const unsigned char byte = static_cast<unsigned char>(sig);
    (void)!write(fd, &byte, 1);
  }
  errno = saved_errno;
}

void CreatePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return;
  g_pipe_read = fds[0];
  g_pipe_write.store(fds[1]);
}

}  // namespace

void InstallSignalHandlers() {
  std::call_once(g_pipe_once, CreatePipe);
  struct sigaction action = {};
  action.sa_handler = SpoolSignalHandler;
  sigemptyset(&action.sa_mask);
  // A second signal of the same kind gets the default action.
  action.sa_flags = SA_RESTART | SA_RESETHAND;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

int WaitForSignal(absl::Duration timeout) {
  std::call_once(g_pipe_once, CreatePipe);
  if (g_pipe_read < 0) return 0;
  const absl::Time deadline = timeout == absl::InfiniteDuration()
                                  ? absl::InfiniteFuture()
                                  : absl::Now() + timeout;
  while (true) {
    unsigned char byte = 0;
    const ssize_t n = read(g_pipe_read, &byte, 1);
    if (n == 1) return byte;
    const absl::Time now = absl::Now();
    if (now >= deadline) return 0;
    // Poll in slices so an infinite wait is still a loop of bounded waits
    // (capped before the +1: an infinite wait is INT64_MAX milliseconds).
    const int64_t slice_ms =
        std::min<int64_t>(999, absl::ToInt64Milliseconds(deadline - now)) + 1;
    pollfd pfd = {g_pipe_read, POLLIN, 0};
    (void)poll(&pfd, 1, static_cast<int>(slice_ms));
  }
}

}  // namespace spool
