#include "tests/support/subprocess.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

namespace spool::testing {
namespace {

// Runs closures on one thread that lives as long as the process. Children
// forked from it keep their parent-death signal armed until the process
// exits; forking from a short-lived test thread would kill them when that
// thread ends (PR_SET_PDEATHSIG follows the forking thread).
class SpawnerThread {
 public:
  static SpawnerThread& Get() {
    static SpawnerThread* const thread = new SpawnerThread();  // Never freed.
    return *thread;
  }

  void Run(const std::function<void()>& fn) {
    Task task{&fn, false};
    std::unique_lock lock(mu_);
    tasks_.push_back(&task);
    cv_.notify_all();
    cv_.wait(lock, [&] { return task.done; });
  }

 private:
  struct Task {
    const std::function<void()>* fn;
    bool done;
  };

  SpawnerThread() {
    std::thread([this] { Loop(); }).detach();
  }

  void Loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return !tasks_.empty(); });
      Task* task = tasks_.front();
      tasks_.pop_front();
      lock.unlock();
      (*task->fn)();
      lock.lock();
      task->done = true;
      cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Task*> tasks_;
};

// What a child reports through the error pipe when it fails before exec.
struct ChildError {
  int stage;
  int error;
};

constexpr const char* kStageNames[] = {
    "redirect stdio", "chdir", "setgroups", "setgid",
    "setuid",         "prctl", "exec"};

std::vector<std::string> BuildEnvironment(const SpawnOptions& options) {
  std::vector<std::string> env;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    absl::string_view name = entry.substr(0, entry.find('='));
    bool drop = false;
    for (const auto& prefix : options.drop_env_prefixes) {
      drop |= absl::StartsWith(name, prefix);
    }
    for (const auto& [key, value] : options.set_env) drop |= name == key;
    if (!drop) env.emplace_back(entry);
  }
  for (const auto& [key, value] : options.set_env) {
    env.push_back(absl::StrCat(key, "=", value));
  }
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (auto& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

[[noreturn]] void ChildFail(int fd, int stage) {
  ChildError e{stage, errno};
  ssize_t ignored = write(fd, &e, sizeof(e));
  (void)ignored;
  _exit(127);
}

// Forks and execs. Only async-signal-safe calls between fork and exec.
absl::StatusOr<pid_t> ForkExec(const SpawnOptions& options) {
  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = BuildEnvironment(options);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  int out_fd = open(
      options.output_path.empty() ? "/dev/null" : options.output_path.c_str(),
      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot open ", options.output_path,
                                            ": ", std::strerror(errno)));
  }
  int in_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2];
  if (in_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) {
    int err = errno;
    close(out_fd);
    if (in_fd >= 0) close(in_fd);
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(err)));
  }
  const char* working_dir =
      options.working_dir.empty() ? nullptr : options.working_dir.c_str();
  const pid_t parent = getpid();

  pid_t pid = fork();
  if (pid == 0) {
    const int err_fd = pipe_fds[1];
    sigset_t all;
    sigfillset(&all);
    sigprocmask(SIG_UNBLOCK, &all, nullptr);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP}) {
      signal(sig, SIG_DFL);
    }
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0) {
      ChildFail(err_fd, 0);
    }
    if (working_dir != nullptr && chdir(working_dir) != 0) {
      ChildFail(err_fd, 1);
    }
    if (options.run_as.has_value()) {
      gid_t gid = options.run_as->gid;
      if (setgroups(1, &gid) != 0) ChildFail(err_fd, 2);
      if (setgid(gid) != 0) ChildFail(err_fd, 3);
      if (setuid(options.run_as->uid) != 0) ChildFail(err_fd, 4);
    }
    // After setuid, which clears the parent-death signal.
    if (prctl(PR_SET_PDEATHSIG, options.death_signal) != 0) {
      ChildFail(err_fd, 5);
    }
    if (getppid() != parent) _exit(127);  // The parent died already.
    // Do not leak the test process's descriptors (connections, sockets).
    syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
    execve(argv[0], argv.data(), envp.data());
    ChildFail(err_fd, 6);
  }
  int fork_errno = errno;
  close(pipe_fds[1]);
  close(out_fd);
  close(in_fd);
  if (pid < 0) {
    close(pipe_fds[0]);
    return absl::InternalError(
        absl::StrCat("fork: ", std::strerror(fork_errno)));
  }
  ChildError child_error{};
  ssize_t n;
  do {
    n = read(pipe_fds[0], &child_error, sizeof(child_error));
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  if (n > 0) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot start ", options.argv[0], ": ", kStageNames[child_error.stage],
        ": ", std::strerror(child_error.error)));
  }
  return pid;
}

}  // namespace

absl::StatusOr<pid_t> Spawn(const SpawnOptions& options) {
  if (options.argv.empty()) {
    return absl::InvalidArgumentError("Spawn: empty argv");
  }
  absl::StatusOr<pid_t> result = absl::InternalError("not run");
  SpawnerThread::Get().Run([&] { result = ForkExec(options); });
  return result;
}

std::optional<int> TryReap(pid_t pid) {
  int status = 0;
  pid_t r;
  do {
    r = waitpid(pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == pid) return status;
  if (r < 0) return 0;  // Not our child any more (already reaped).
  return std::nullopt;
}

absl::StatusOr<int> WaitForExit(pid_t pid, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  absl::Duration pause = absl::Milliseconds(1);
  for (;;) {
    if (std::optional<int> status = TryReap(pid)) return *status;
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid, " still running after ",
                       absl::FormatDuration(timeout)));
    }
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(20));
  }
}

int SignalAndReap(pid_t pid, int signal, absl::Duration timeout) {
  kill(pid, signal);
  absl::StatusOr<int> status = WaitForExit(pid, timeout);
  if (status.ok()) return *status;
  kill(pid, SIGKILL);
  int raw = 0;
  while (waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  return raw;
}

absl::StatusOr<int> RunToCompletion(const SpawnOptions& options,
                                    absl::Duration timeout) {
  absl::StatusOr<pid_t> pid = Spawn(options);
  if (!pid.ok()) return pid.status();
  absl::StatusOr<int> status = WaitForExit(*pid, timeout);
  if (!status.ok()) {
    SignalAndReap(*pid, SIGKILL, absl::Seconds(5));
    return absl::DeadlineExceededError(
        absl::StrCat(options.argv[0], " did not finish within ",
                     absl::FormatDuration(timeout)));
  }
  return ExitCode(*status);
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("killed by signal ", WTERMSIG(wait_status), " (",
                        strsignal(WTERMSIG(wait_status)), ")");
  }
  return absl::StrCat("exit code ", ExitCode(wait_status));
}

absl::StatusOr<int> PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(absl::StrCat("bind: ", std::strerror(err)));
  }
  close(fd);
  return ntohs(addr.sin_port);
}

absl::StatusOr<PortReservation> PortReservation::Reserve() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  const int on = 1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("reserving a port: ", std::strerror(err)));
  }
  return PortReservation(fd, ntohs(addr.sin_port));
}

PortReservation::PortReservation(PortReservation&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), port_(std::exchange(other.port_, 0)) {}

PortReservation& PortReservation::operator=(PortReservation&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    port_ = std::exchange(other.port_, 0);
  }
  return *this;
}

PortReservation::~PortReservation() {
  if (fd_ >= 0) close(fd_);
}

absl::StatusOr<std::string> MakeTempDir(absl::string_view prefix,
                                        absl::string_view parent) {
  const char* tmp = std::getenv("TMPDIR");
  if (parent.empty()) parent = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  std::string templ = absl::StrCat(parent, "/", prefix, "XXXXXX");
  if (mkdtemp(templ.data()) == nullptr) {
    return absl::InternalError(
        absl::StrCat("mkdtemp ", templ, ": ", std::strerror(errno)));
  }
  return templ;
}

std::string ReadFileTail(const std::string& path, size_t max_bytes) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  const std::streamoff size = in.tellg();
  const std::streamoff start =
      size > static_cast<std::streamoff>(max_bytes) ? size - max_bytes : 0;
  in.seekg(start);
  std::string out(static_cast<size_t>(size - start), '\0');
  in.read(out.data(), static_cast<std::streamsize>(out.size()));
  out.resize(static_cast<size_t>(in.gcount()));
  return out;
}

void AppendToFile(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::app | std::ios::binary);
  out << text;
}

absl::StatusOr<std::optional<RunAsUser>> PostgresUserIfRoot() {
  if (geteuid() != 0) return std::nullopt;
  passwd pw{};
  passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (getpwnam_r("postgres", &pw, buf.data(), buf.size(), &found) != 0 ||
      found == nullptr) {
    return absl::FailedPreconditionError(
        "running as root, but there is no 'postgres' user to run PostgreSQL "
        "as (PostgreSQL refuses to run as root); install postgresql-15");
  }
  return RunAsUser{pw.pw_uid, pw.pw_gid, "postgres"};
}

}  // namespace spool::testing
