// spool-bench's command-line flags; see flags.h.
#include "tools/bench/flags.h"

#include "absl/flags/flag.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051",
          "spoold address(es), comma-separated (ignored with --start).");
ABSL_FLAG(bool, start, false,
          "Start a throwaway PostgreSQL and spoold for the run.");
ABSL_FLAG(std::string, spoold, "build/services/spoold/spoold",
          "spoold binary for --start.");
ABSL_FLAG(std::string, pg_script, "tools/pg",
          "Ignored; kept so existing command lines work (--start runs its "
          "PostgreSQL with the test support launcher, TestPostgres).");
ABSL_FLAG(std::vector<std::string>, spoold_flags, {},
          "Extra spoold flags for --start (comma-separated).");
ABSL_FLAG(std::vector<std::string>, scenarios,
          std::vector<std::string>({"rpc_ceiling", "enqueue", "batch",
                                    "process", "latency", "mixed", "idle"}),
          "Scenarios to run, in order.");
ABSL_FLAG(bool, quick, false, "Small counts for a smoke run.");
ABSL_FLAG(int64_t, max_depth, 0,
          "With --start: each scenario's queue gets this max depth (0: none) "
          "before it runs.");
ABSL_FLAG(bool, json, false, "Also print one JSON object per scenario.");
ABSL_FLAG(int, callers, 64, "enqueue: concurrent single-job callers.");
ABSL_FLAG(int, client_threads, 2,
          "enqueue, rpc_ceiling: client threads, each with its own "
          "completion queue and connection.");
ABSL_FLAG(int, enqueue_jobs, 100000, "enqueue: jobs in total.");
ABSL_FLAG(int, batch_size, 1000, "batch: jobs per EnqueueBatch.");
ABSL_FLAG(int, batch_callers, 4, "batch: concurrent callers.");
ABSL_FLAG(int, batch_jobs, 200000, "batch: jobs in total.");
ABSL_FLAG(int, process_jobs, 20000, "process: pre-filled jobs.");
ABSL_FLAG(int, workers, 2, "process: worker processes.");
ABSL_FLAG(int, worker_concurrency, 256, "process: handler slots per worker.");
ABSL_FLAG(int, latency_rate, 200, "latency: jobs per second.");
ABSL_FLAG(absl::Duration, latency_duration, absl::Seconds(10),
          "latency: how long to trickle.");
ABSL_FLAG(int, latency_workers, 4, "latency: idle long-polling handlers.");
ABSL_FLAG(absl::Duration, mixed_duration, absl::Seconds(10),
          "mixed: how long producers run.");
ABSL_FLAG(int, mixed_rate, 2000, "mixed: jobs per second enqueued.");
ABSL_FLAG(int, retry_percent, 5, "mixed: first attempts that ask to retry.");
ABSL_FLAG(int, idle_polls, 1000, "idle: concurrent idle long-polls.");
ABSL_FLAG(absl::Duration, timeout, absl::Minutes(5),
          "Upper bound for any one scenario.");
// Internal: the worker-process mode of `process`.
ABSL_FLAG(std::string, worker_queue, "", "internal");
ABSL_FLAG(std::string, worker_ids_out, "", "internal");
