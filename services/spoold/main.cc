// spoold: the Spool job queue service.
//   spoold [flags]          serve spool.v1.JobService
//   spoold migrate [flags]  apply pending schema migrations and exit
//   spoold flags [flags]    print every flag's effective value and exit
// Every flag can also be set by an environment variable: SPOOL_ and the flag
// name in capitals (--database_url is SPOOL_DATABASE_URL). The command line
// wins over the environment.
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/random/random.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "base/log.h"
#include "server.h"
#include "store/migrator.h"

ABSL_FLAG(std::string, database_url, "",
          "PostgreSQL URL, e.g. postgresql://user:pass@127.0.0.1:5432/spool. "
          "Required. LISTEN/NOTIFY needs a session: point it at PostgreSQL "
          "or a session-mode pooler, not a transaction-mode PgBouncer.");
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC listen address (host:port).");
ABSL_FLAG(bool, migrate, false, "Apply pending schema migrations at start-up.");
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "Prometheus /metrics listen address; empty disables it.");
ABSL_FLAG(absl::Duration, metrics_refresh, absl::Seconds(10),
          "How often the database gauges (jobs per queue and state, oldest "
          "ready job, table bloat, oldest transaction) are read, on a "
          "connection of their own. Seeing other sessions' transactions "
          "needs the pg_read_all_stats role.");
ABSL_FLAG(int, metrics_max_queues, 1000,
          "Queues with a metric label of their own; the rest share the "
          "label \"_other\".");
ABSL_FLAG(int, db_pool_size, 4,
          "PostgreSQL connections (and threads) for queries. On small "
          "machines keep it near the core count: batches beat connections.");
ABSL_FLAG(absl::Duration, max_wait, absl::Seconds(30),
          "Longest Lease long-poll; longer waits are capped to this.");
ABSL_FLAG(int64_t, max_payload_bytes, 1 << 20,
          "Largest job payload; the gRPC message limit follows it.");
ABSL_FLAG(int64_t, max_lease_bytes, 3 << 20,
          "A Lease response stops taking jobs once their payloads and "
          "headers pass this (the first job always fits); the default keeps "
          "responses under gRPC's default 4 MiB message limit.");
ABSL_FLAG(absl::Duration, maintenance_interval, absl::Seconds(1),
          "How often expired leases and due delayed jobs are checked "
          "(delayed jobs also get an exact wake-up).");
ABSL_FLAG(absl::Duration, retention_interval, absl::Seconds(30),
          "How often finished jobs and idempotency keys past retention are "
          "deleted, in bounded batches.");
ABSL_FLAG(absl::Duration, fallback_poll, absl::Seconds(1),
          "Waiting long-polls re-check at least this often, in case a "
          "notification was lost.");
ABSL_FLAG(absl::Duration, notify_interval, absl::Milliseconds(10),
          "Least time between two NOTIFYs telling other replicas about new "
          "jobs (the first of a burst is sent at once).");
ABSL_FLAG(int, group_commit_in_flight, 2,
          "Enqueue (and Ack) statements that may run at once, each carrying "
          "every call that arrived while the others ran.");
ABSL_FLAG(absl::Duration, queue_config_ttl, absl::Seconds(5),
          "How long queue settings are cached.");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(10),
          "On SIGTERM, how long in-flight calls may take to finish.");
ABSL_FLAG(absl::Duration, min_client_ping_interval, absl::Seconds(10),
          "Clients may send keepalive pings this often (the SDK pings every "
          "30s by default); more often gets GOAWAY too_many_pings.");
ABSL_FLAG(std::string, log_level, "info", "debug, info, warning or error.");
ABSL_FLAG(bool, log_json, false, "Write log lines as JSON objects.");

namespace {

// Every flag defined in spoold's own sources (not absl's built-in ones such
// as --flagfile or --help), so a new flag gets its variable without a list.
bool IsSpooldFlag(const absl::CommandLineFlag& flag) {
  return absl::StrContains(flag.Filename(), "services/spoold/");
}

// Applies SPOOL_<FLAG> environment variables before the command line;
// reports every bad one.
bool ApplyEnvironment() {
  bool ok = true;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsSpooldFlag(*flag)) continue;
    std::string env = absl::StrCat("SPOOL_", absl::AsciiStrToUpper(name));
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::fprintf(stderr, "spoold: bad %s: %s\n", env.c_str(), error.c_str());
      ok = false;
    }
  }
  return ok;
}

// `spoold flags`: every flag's effective value (environment and command
// line applied), one --name=value per line in name order, the database
// password masked.
int PrintFlags() {
  std::vector<std::pair<std::string, std::string>> lines;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!IsSpooldFlag(*flag)) continue;
    std::string value = flag->CurrentValue();
    if (name == "database_url") value = spool::RedactDatabaseUrl(value);
    lines.emplace_back(std::string(name), std::move(value));
  }
  std::sort(lines.begin(), lines.end());
  for (const auto& [name, value] : lines) {
    std::printf("--%s=%s\n", name.c_str(), value.c_str());
  }
  return 0;
}

// Checks the numeric flags before anything starts; prints every bad one
// (a zero interval would spin a thread, a zero budget would refuse all work).
bool FlagsValid() {
  std::vector<std::string> errors;
  auto at_least_one = [&](const char* name, int64_t value) {
    if (value < 1) {
      errors.push_back(
          absl::StrCat("--", name, " must be at least 1 (got ", value, ")"));
    }
  };
  auto at_least = [&](const char* name, absl::Duration value,
                      absl::Duration min, bool inclusive) {
    if (value < min || (!inclusive && value == min)) {
      errors.push_back(absl::StrCat("--", name, " must be ",
                                    inclusive ? "at least " : "more than ",
                                    absl::FormatDuration(min), " (got ",
                                    absl::FormatDuration(value), ")"));
    }
  };
  const absl::Duration zero = absl::ZeroDuration();
  at_least_one("db_pool_size", absl::GetFlag(FLAGS_db_pool_size));
  at_least_one("max_payload_bytes", absl::GetFlag(FLAGS_max_payload_bytes));
  at_least_one("max_lease_bytes", absl::GetFlag(FLAGS_max_lease_bytes));
  at_least_one("metrics_max_queues", absl::GetFlag(FLAGS_metrics_max_queues));
  at_least_one("group_commit_in_flight",
               absl::GetFlag(FLAGS_group_commit_in_flight));
  at_least("max_wait", absl::GetFlag(FLAGS_max_wait), zero, false);
  at_least("maintenance_interval", absl::GetFlag(FLAGS_maintenance_interval),
           zero, false);
  at_least("retention_interval", absl::GetFlag(FLAGS_retention_interval), zero,
           false);
  at_least("fallback_poll", absl::GetFlag(FLAGS_fallback_poll), zero, false);
  at_least("metrics_refresh", absl::GetFlag(FLAGS_metrics_refresh),
           absl::Milliseconds(10), true);
  at_least("notify_interval", absl::GetFlag(FLAGS_notify_interval), zero, true);
  at_least("queue_config_ttl", absl::GetFlag(FLAGS_queue_config_ttl), zero,
           true);
  at_least("shutdown_grace", absl::GetFlag(FLAGS_shutdown_grace), zero, true);
  at_least("min_client_ping_interval",
           absl::GetFlag(FLAGS_min_client_ping_interval), zero, true);
  for (const std::string& e : errors) {
    std::fprintf(stderr, "spoold: %s\n", e.c_str());
  }
  return errors.empty();
}

std::string ReplicaId() {
  absl::BitGen gen;
  return absl::StrCat(
      getpid(), "-", absl::Hex(absl::Uniform<uint64_t>(gen), absl::kZeroPad16));
}

int Migrate(const std::string& url) {
  auto applied = spool::store::ApplyMigrations(url);
  if (!applied.ok()) {
    spool::LogError("migration failed",
                    {{"error", applied.status().message()}});
    return 1;
  }
  spool::LogInfo("migrations done", {{"applied", *applied}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil checks every mutex acquisition for lock-order cycles;
  // gRPC creates mutexes per call, so this costs ~5% of CPU under load.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "the Spool job queue service.\n"
      "  spoold [flags]          serve spool.v1.JobService over gRPC\n"
      "  spoold migrate [flags]  apply pending schema migrations and exit\n"
      "  spoold flags [flags]    print every flag's effective value and exit\n"
      "Each flag may also come from SPOOL_<FLAG NAME IN CAPITALS>.");
  absl::FlagsUsageConfig usage;
  usage.version_string = [] {
    return std::string("spoold " SPOOL_VERSION " (" SPOOL_GIT_REVISION ")\n");
  };
  absl::SetFlagsUsageConfig(usage);
  if (!ApplyEnvironment()) return 2;
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);

  spool::LogLevel level;
  if (!spool::ParseLogLevel(absl::GetFlag(FLAGS_log_level), &level)) {
    std::fprintf(stderr,
                 "spoold: --log_level must be debug, info, warning "
                 "or error\n");
    return 2;
  }
  spool::SetLogLevel(level);
  spool::SetLogJson(absl::GetFlag(FLAGS_log_json));
  if (!FlagsValid()) return 2;

  if (args.size() > 1 && std::string(args[1]) == "flags") return PrintFlags();
  const std::string url = absl::GetFlag(FLAGS_database_url);
  if (url.empty()) {
    std::fprintf(stderr,
                 "spoold: --database_url (or SPOOL_DATABASE_URL) is required; "
                 "tools/run starts a throwaway PostgreSQL for you\n");
    return 2;
  }
  if (args.size() > 1) {
    if (std::string(args[1]) == "migrate") return Migrate(url);
    std::fprintf(stderr, "spoold: unknown command '%s' (try --help)\n",
                 args[1]);
    return 2;
  }

  // Block the shutdown signals in every thread; main waits for them below.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const int64_t max_payload = absl::GetFlag(FLAGS_max_payload_bytes);
  const int pool_size = absl::GetFlag(FLAGS_db_pool_size);
  const absl::Duration metrics_refresh = absl::GetFlag(FLAGS_metrics_refresh);
  const int metrics_max_queues = absl::GetFlag(FLAGS_metrics_max_queues);
  spool::LogInfo(
      "starting spoold",
      {{"version", SPOOL_VERSION},
       {"revision", SPOOL_GIT_REVISION},
       {"database_url", spool::RedactDatabaseUrl(url)},
       {"listen", absl::GetFlag(FLAGS_listen)},
       {"db_pool_size", pool_size},
       {"max_wait", absl::FormatDuration(absl::GetFlag(FLAGS_max_wait))},
       {"max_payload_bytes", max_payload},
       {"maintenance_interval",
        absl::FormatDuration(absl::GetFlag(FLAGS_maintenance_interval))},
       {"retention_interval",
        absl::FormatDuration(absl::GetFlag(FLAGS_retention_interval))},
       {"metrics_listen", absl::GetFlag(FLAGS_metrics_listen)},
       {"metrics_refresh", absl::FormatDuration(metrics_refresh)},
       {"metrics_max_queues", metrics_max_queues},
       {"log_level", absl::GetFlag(FLAGS_log_level)},
       {"migrate", absl::GetFlag(FLAGS_migrate)}});

  if (absl::GetFlag(FLAGS_migrate)) {
    if (int rc = Migrate(url); rc != 0) return rc;
  } else if (absl::Status s = spool::store::CheckSchemaCurrent(url); !s.ok()) {
    spool::LogError("database not ready", {{"error", s.message()}});
    return 1;
  }

  spool::ServerOptions options;
  options.database_url = url;
  options.listen = absl::GetFlag(FLAGS_listen);
  options.db_pool_size = pool_size;
  options.shutdown_grace = absl::GetFlag(FLAGS_shutdown_grace);
  options.min_client_ping_interval =
      absl::GetFlag(FLAGS_min_client_ping_interval);
  options.queue.limits.max_wait = absl::GetFlag(FLAGS_max_wait);
  options.queue.limits.max_payload_bytes = max_payload;
  options.queue.limits.max_lease_bytes = absl::GetFlag(FLAGS_max_lease_bytes);
  options.queue.maintenance_interval =
      absl::GetFlag(FLAGS_maintenance_interval);
  options.queue.retention_interval = absl::GetFlag(FLAGS_retention_interval);
  options.queue.fallback_poll = absl::GetFlag(FLAGS_fallback_poll);
  options.queue.queue_config_ttl = absl::GetFlag(FLAGS_queue_config_ttl);
  options.queue.notify_interval = absl::GetFlag(FLAGS_notify_interval);
  options.queue.group_commit_in_flight =
      absl::GetFlag(FLAGS_group_commit_in_flight);
  options.queue.replica_id = ReplicaId();
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.metrics_refresh = metrics_refresh;
  options.metrics_max_queues = metrics_max_queues;
  options.version = SPOOL_VERSION;
  options.revision = SPOOL_GIT_REVISION;

  spool::SpooldServer server(options);
  if (absl::Status s = server.Start(); !s.ok()) {
    spool::LogError("cannot start", {{"error", s.message()}});
    return 1;
  }
  spool::LogInfo("spoold listening",
                 {{"listen", options.listen}, {"port", server.port()}});
  std::fprintf(stderr, "spoold listening on %s\n", options.listen.c_str());
  std::fflush(stderr);

  int sig = 0;
  sigwait(&signals, &sig);
  spool::LogInfo("signal received",
                 {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}});
  server.Shutdown();
  spool::LogInfo("stopped");
  return 0;
}
