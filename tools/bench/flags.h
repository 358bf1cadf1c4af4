// spool-bench's command-line flags (defined in flags.cc), read by main and
// by the scenarios.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

ABSL_DECLARE_FLAG(std::string, target);
ABSL_DECLARE_FLAG(bool, start);
ABSL_DECLARE_FLAG(std::string, spoold);
ABSL_DECLARE_FLAG(std::string, pg_script);
ABSL_DECLARE_FLAG(std::vector<std::string>, spoold_flags);
ABSL_DECLARE_FLAG(std::vector<std::string>, scenarios);
ABSL_DECLARE_FLAG(bool, quick);
ABSL_DECLARE_FLAG(int64_t, max_depth);
ABSL_DECLARE_FLAG(bool, json);
ABSL_DECLARE_FLAG(int, callers);
ABSL_DECLARE_FLAG(int, client_threads);
ABSL_DECLARE_FLAG(int, enqueue_jobs);
ABSL_DECLARE_FLAG(int, batch_size);
ABSL_DECLARE_FLAG(int, batch_callers);
ABSL_DECLARE_FLAG(int, batch_jobs);
ABSL_DECLARE_FLAG(int, process_jobs);
ABSL_DECLARE_FLAG(int, workers);
ABSL_DECLARE_FLAG(int, worker_concurrency);
ABSL_DECLARE_FLAG(int, latency_rate);
ABSL_DECLARE_FLAG(absl::Duration, latency_duration);
ABSL_DECLARE_FLAG(int, latency_workers);
ABSL_DECLARE_FLAG(absl::Duration, mixed_duration);
ABSL_DECLARE_FLAG(int, mixed_rate);
ABSL_DECLARE_FLAG(int, retry_percent);
ABSL_DECLARE_FLAG(int, idle_polls);
ABSL_DECLARE_FLAG(absl::Duration, timeout);
ABSL_DECLARE_FLAG(std::string, worker_queue);
ABSL_DECLARE_FLAG(std::string, worker_ids_out);
