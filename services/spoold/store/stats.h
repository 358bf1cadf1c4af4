// StatsReader: the database side of spoold's gauges: jobs per queue and
// state, the age of each queue's oldest ready job, bloat indicators of the
// hot tables and the age of the oldest open transaction. It owns its own
// connection (application_name "spoold-stats", short statement and lock
// timeouts), so a slow refresh never takes a pool connection from the hot
// path, and it reconnects on its next call after a failure.
//
// Every query stays cheap on a table of 10 million rows: nothing counts the
// whole table unless the table is small. See stats.cc for the strategy and
// the timings measured on 10M rows.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "store/types.h"

namespace spool::store {

// Jobs of one queue in one state.
struct QueueStateCount {
  std::string queue;
  JobState state = JobState::kReady;
  double jobs = 0;  // An estimate when !exact.
  bool exact = true;
};

// Vacuum and bloat indicators of one table (pg_stat_user_tables).
struct TableStats {
  std::string table;
  int64_t live_tuples = 0;
  int64_t dead_tuples = 0;
  int64_t total_bytes = 0;  // Heap, indexes and TOAST.
  std::optional<absl::Time> last_autovacuum;
  std::optional<absl::Time> last_vacuum;  // Manual VACUUM.
};

struct DatabaseStats {
  // Queues from spool_queues, in name order (at most Options::max_queues).
  std::vector<std::string> queues;
  // Non-zero counts only.
  std::vector<QueueStateCount> jobs;
  // Fraction of the jobs table's pages read by the sample behind the
  // estimates (1 when every count is exact).
  double sampled_fraction = 1;
  // Now minus run_at of the oldest ready job, for queues with ready jobs.
  std::vector<std::pair<std::string, absl::Duration>> oldest_ready;
  std::vector<TableStats> tables;
  // Of the oldest transaction open in this database (client sessions and
  // prepared transactions); zero when none.
  absl::Duration oldest_transaction_age = absl::ZeroDuration();
};

class StatsReader {
 public:
  struct Options {
    std::string database_url;
    // Up to this many heap pages (8 KiB each, ~70,000 rows) the jobs table
    // is counted exactly with one GROUP BY.
    int64_t exact_max_pages = 2048;
    // Above that, each state's rows are counted through its partial index up
    // to this many; a state with more is estimated from a page sample.
    int64_t exact_state_rows = 20000;
    // Pages read by that sample (TABLESAMPLE SYSTEM).
    int64_t sample_pages = 1000;
    // Ready jobs of each queue are counted through the ready index up to this
    // many even when the ready state as a whole is estimated, so a small
    // queue next to a big one still reads exactly.
    int64_t exact_ready_per_queue = 1000;
    // Queues read from spool_queues (and loose-index-scan steps / 200).
    int max_queues = 1000;
    absl::Duration statement_timeout = absl::Seconds(5);
  };

  explicit StatsReader(Options options);
  ~StatsReader();

  StatsReader(const StatsReader&) = delete;
  StatsReader& operator=(const StatsReader&) = delete;

  // Reads everything. UNAVAILABLE when the database cannot be reached (the
  // next call reconnects), INTERNAL for other failures. Not thread-safe.
  absl::StatusOr<DatabaseStats> Read();

 private:
  struct Conn;
  absl::Status Connect();
  absl::Status ReadJobCounts(DatabaseStats* out);

  const Options options_;
  std::unique_ptr<Conn> conn_;
};

}  // namespace spool::store
