#include "tests/support/test_postgres.h"

#include <libpq-fe.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <pqxx/pqxx>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace spool::testing {
namespace {

constexpr absl::Duration kInitDbTimeout = absl::Minutes(2);
constexpr absl::Duration kReadyTimeout = absl::Minutes(1);
constexpr absl::Duration kFastShutdownTimeout = absl::Minutes(1);
constexpr int kPortAttempts = 5;

// The PostgreSQL server binaries: $SPOOL_PG_BINDIR, else
// /usr/lib/postgresql/15/bin, else the newest /usr/lib/postgresql/*/bin.
absl::StatusOr<std::string> PostgresBinDir() {
  namespace fs = std::filesystem;
  auto usable = [](const fs::path& dir) {
    std::error_code ec;
    return fs::exists(dir / "initdb", ec) && fs::exists(dir / "postgres", ec);
  };
  if (const char* env = std::getenv("SPOOL_PG_BINDIR");
      env != nullptr && *env != '\0') {
    if (usable(env)) return std::string(env);
    return absl::NotFoundError(
        absl::StrCat("SPOOL_PG_BINDIR=", env, " has no initdb/postgres"));
  }
  if (usable("/usr/lib/postgresql/15/bin")) return "/usr/lib/postgresql/15/bin";
  std::vector<std::pair<int, std::string>> found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = entry.path() / "bin";
    if (usable(bin)) {
      found.emplace_back(std::atoi(entry.path().filename().c_str()),
                         bin.string());
    }
  }
  if (found.empty()) {
    return absl::NotFoundError(
        "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin; run "
        "tools/install-deps or set SPOOL_PG_BINDIR");
  }
  std::sort(found.begin(), found.end());
  return found.back().second;
}

bool LooksLikePortInUse(absl::string_view log) {
  return absl::StrContains(log, "could not bind") ||
         absl::StrContains(log, "ddress already in use") ||
         absl::StrContains(log, "could not create any TCP/IP sockets");
}

absl::Status Chown(const std::string& path,
                   const std::optional<RunAsUser>& run_as) {
  if (run_as.has_value() &&
      chown(path.c_str(), run_as->uid, run_as->gid) != 0) {
    return absl::InternalError(
        absl::StrCat("chown ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

TestPostgres::TestPostgres(std::string dir, std::optional<RunAsUser> run_as)
    : dir_(std::move(dir)), run_as_(std::move(run_as)), owner_pid_(getpid()) {}

absl::StatusOr<std::unique_ptr<TestPostgres>> TestPostgres::Start() {
  absl::StatusOr<std::optional<RunAsUser>> run_as = PostgresUserIfRoot();
  if (!run_as.ok()) return run_as.status();
  // Always /tmp: the `postgres` user can reach it when we run as root, and
  // the unix socket path stays under its 107-byte limit.
  absl::StatusOr<std::string> dir = MakeTempDir("spool-pg-", "/tmp");
  if (!dir.ok()) return dir.status();
  // From here on the destructor removes the directory on failure.
  std::unique_ptr<TestPostgres> pg(new TestPostgres(*dir, *run_as));
  if (absl::Status s = Chown(pg->dir_, pg->run_as_); !s.ok()) return s;
  if (absl::Status s = pg->InitDb(); !s.ok()) return s;

  absl::Status last = absl::OkStatus();
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    absl::StatusOr<PortReservation> port = PortReservation::Reserve();
    if (!port.ok()) return port.status();
    pg->port_ = *std::move(port);
    if (absl::Status s = pg->WriteConfig(); !s.ok()) return s;
    absl::MutexLock lock(&pg->mu_);
    last = pg->Launch();
    if (last.ok()) return pg;
    // Only a server that binds this very port number with SO_REUSEADDR
    // (e.g. one configured with a fixed port) can have taken it.
    if (!LooksLikePortInUse(pg->LogTail(4096))) break;
  }
  return last;
}

TestPostgres::~TestPostgres() {
  if (getpid() != owner_pid_) return;  // A forked child must not touch it.
  {
    absl::MutexLock lock(&mu_);
    StopLocked().IgnoreError();
  }
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

absl::Status TestPostgres::InitDb() {
  absl::StatusOr<std::string> bin = PostgresBinDir();
  if (!bin.ok()) return bin.status();
  SpawnOptions options;
  // --no-sync only skips flushing initdb's own files; the server itself runs
  // with fsync on. Locale C works on any machine.
  options.argv = {
      *bin + "/initdb", "-D",           DataDir(),         "-U",
      "spool",          "--auth=trust", "--encoding=UTF8", "--locale=C",
      "--no-sync"};
  options.drop_env_prefixes = {"PG"};
  options.output_path = dir_ + "/initdb.log";
  options.working_dir = dir_;
  options.run_as = run_as_;
  absl::StatusOr<int> code = RunToCompletion(options, kInitDbTimeout);
  if (!code.ok()) return code.status();
  if (*code != 0) {
    return absl::InternalError(
        absl::StrCat("initdb failed with exit code ", *code, ":\n",
                     ReadFileTail(options.output_path, 4096)));
  }
  std::ofstream conf(DataDir() + "/postgresql.conf", std::ios::app);
  conf << "\ninclude_if_exists = 'spool.conf'\n";
  if (!conf.good()) {
    return absl::InternalError("cannot append to postgresql.conf");
  }
  return absl::OkStatus();
}

absl::Status TestPostgres::WriteConfig() {
  const std::string path = DataDir() + "/spool.conf";
  {
    std::ofstream conf(path, std::ios::trunc);
    conf << "# Written by spool::testing::TestPostgres.\n"
         << "listen_addresses = '127.0.0.1'\n"
         << "port = " << Port() << "\n"
         << "unix_socket_directories = '"
         << absl::StrReplaceAll(dir_, {{"'", "''"}}) << "'\n"
         << "max_connections = 200\n"
         << "fsync = on\n"
         << "synchronous_commit = on\n"
         << "full_page_writes = on\n"
         << "log_min_messages = warning\n";
    if (!conf.good()) return absl::InternalError("cannot write " + path);
  }
  return Chown(path, run_as_);
}

absl::Status TestPostgres::Launch() {
  absl::StatusOr<std::string> bin = PostgresBinDir();
  if (!bin.ok()) return bin.status();
  AppendToFile(LogPath(), absl::StrCat("=== spool test: starting postgres on "
                                       "port ",
                                       Port(), " ===\n"));
  SpawnOptions options;
  options.argv = {*bin + "/postgres", "-D", DataDir()};
  options.drop_env_prefixes = {"PG"};
  options.output_path = LogPath();
  options.working_dir = dir_;
  options.run_as = run_as_;
  options.death_signal = SIGINT;  // Fast shutdown if the test binary dies.
  absl::StatusOr<pid_t> pid = Spawn(options);
  if (!pid.ok()) return pid.status();
  pid_ = *pid;

  // Ping through our own unix socket so another server that happens to listen
  // on the same TCP port can never be mistaken for ours.
  const std::string conninfo =
      absl::StrCat("host='", dir_, "' port=", Port(),
                   " user=spool dbname=postgres connect_timeout=2");
  const absl::Time deadline = absl::Now() + kReadyTimeout;
  for (;;) {
    if (std::optional<int> status = TryReap(pid_)) {
      pid_ = -1;
      return absl::UnavailableError(
          absl::StrCat("postgres exited during start-up (",
                       DescribeWaitStatus(*status), "):\n", LogTail(4096)));
    }
    if (PQping(conninfo.c_str()) == PQPING_OK) return absl::OkStatus();
    if (absl::Now() > deadline) {
      StopLocked().IgnoreError();
      return absl::DeadlineExceededError(absl::StrCat(
          "postgres not ready after ", absl::FormatDuration(kReadyTimeout),
          ":\n", LogTail(4096)));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
}

absl::Status TestPostgres::StopLocked() {
  if (pid_ <= 0) return absl::OkStatus();
  const pid_t pid = pid_;
  pid_ = -1;
  kill(pid, SIGINT);  // Fast shutdown.
  if (WaitForExit(pid, kFastShutdownTimeout).ok()) return absl::OkStatus();
  // Immediate shutdown, then the hard way.
  SignalAndReap(pid, SIGQUIT, absl::Seconds(10));
  return absl::DeadlineExceededError(
      absl::StrCat("postgres did not finish a fast shutdown within ",
                   absl::FormatDuration(kFastShutdownTimeout), "; forced it"));
}

absl::Status TestPostgres::Stop() {
  absl::MutexLock lock(&mu_);
  return StopLocked();
}

absl::Status TestPostgres::StartAgain() {
  absl::MutexLock lock(&mu_);
  if (pid_ > 0 && !TryReap(pid_).has_value()) return absl::OkStatus();
  pid_ = -1;
  return Launch();
}

absl::Status TestPostgres::Restart() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = StopLocked(); !s.ok()) return s;
  return Launch();
}

bool TestPostgres::IsRunning() {
  absl::MutexLock lock(&mu_);
  if (pid_ > 0 && TryReap(pid_).has_value()) pid_ = -1;
  return pid_ > 0;
}

pid_t TestPostgres::Pid() {
  absl::MutexLock lock(&mu_);
  if (pid_ > 0 && TryReap(pid_).has_value()) pid_ = -1;
  return pid_;
}

std::string TestPostgres::AdminUrl() const { return UrlFor("postgres"); }

std::string TestPostgres::UrlFor(absl::string_view database) const {
  return absl::StrCat("postgresql://spool@127.0.0.1:", Port(), "/", database);
}

absl::StatusOr<std::string> TestPostgres::CreateDatabase() {
  const std::string name =
      absl::StrCat("spool_test_", next_database_.fetch_add(1));
  try {
    pqxx::connection conn(AdminUrl());
    pqxx::nontransaction tx(conn);
    tx.exec("CREATE DATABASE " + tx.quote_name(name));
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("CREATE DATABASE ", name, ": ", e.what()));
  }
  return UrlFor(name);
}

std::string TestPostgres::LogTail(size_t max_bytes) const {
  return ReadFileTail(LogPath(), max_bytes);
}

namespace {
ABSL_CONST_INIT absl::Mutex shared_mu(absl::kConstInit);
}  // namespace

TestPostgres* SharedPostgres() {
  // Destroyed (server stopped, dir removed) when the test binary exits.
  static std::unique_ptr<TestPostgres> instance;
  static absl::Status* error = nullptr;
  absl::MutexLock lock(&shared_mu);
  if (instance == nullptr && error == nullptr) {
    absl::StatusOr<std::unique_ptr<TestPostgres>> pg = TestPostgres::Start();
    if (pg.ok()) {
      instance = *std::move(pg);
    } else {
      error = new absl::Status(pg.status());
    }
  }
  if (error != nullptr) {
    ADD_FAILURE() << "cannot start the test PostgreSQL: " << *error;
    return nullptr;
  }
  return instance.get();
}

void PostgresTest::SetUp() {
  postgres_ = SharedPostgres();
  ASSERT_NE(postgres_, nullptr);
  absl::StatusOr<std::string> url = postgres_->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  database_url_ = *url;
}

}  // namespace spool::testing
