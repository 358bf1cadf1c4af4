// How the counts stay cheap. Measured on the shared 2-core dev box (load
// average ~3 from other work), PostgreSQL 15, shared_buffers 128 MB, with a
// spool_jobs table of 10,000,000 rows / 287,000 pages / 2.2 GB (2.7 GB with
// indexes) over 20 skewed queues: 5M ready, 2M scheduled, 1M leased,
// 1M dead, 1M succeeded; generate_series, then VACUUM ANALYZE.
//
//   count(*) GROUP BY queue, state over the whole table    1,250-1,970 ms
//     (what this file avoids; used only up to exact_max_pages: 70,000
//      rows / 1,600 pages took 27-30 ms)
//   table size: pg_relation_size                                 <1 ms
//   each state through its partial index, LIMIT 20,001
//     ready (index-only)                                        6-7 ms
//     scheduled / leased / finished                 11-30 ms (60-80 cold)
//   TABLESAMPLE SYSTEM of ~1,000 pages (0.35 %), GROUP BY
//     pages in the OS cache                                   14-28 ms
//     pages read from disk                                  140-170 ms
//     (estimates within 3-12 % of the truth for cells of 25k-1.1M rows)
//   ready per queue through the ready index, LIMIT 1,001          6 ms
//     (20 queues; LIMIT 10,001 took 57-100 ms)
//   oldest ready job per queue, loose index scan              5.5 ms
//     (100 (queue, priority) pairs, ~900 index pages)
//   pg_stat_user_tables + pg_stat_activity                        4 ms
//
// A whole refresh, timed inside spoold on that table: 170-470 ms (3 s for
// the very first one, cold), every --metrics_refresh (10 s). Against a
// small table: 2-17 ms.
#include "store/stats.h"

#include <algorithm>
#include <exception>
#include <map>
#include <pqxx/pqxx>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "store/pg_error.h"

namespace spool::store {
namespace {

// The states of one partial index, and the ORDER BY that makes PostgreSQL
// walk that index (so a LIMIT bounds the work even with stale statistics).
// `state` is a constant where it can be, so the ready index is scanned
// index-only.
struct StateGroup {
  const char* state;
  const char* where;
  const char* order_by;
};
constexpr StateGroup kStateGroups[] = {
    {"1", "state = 1", "run_at"},
    {"2", "state = 2", "queue, priority DESC, run_at, id"},
    {"3", "state = 3", "lease_expires_at"},
    {"state", "state >= 4", "finished_at"},
};

// Exact counts of a small table.
constexpr char kCountAll[] =
    "SELECT queue, state, count(*) FROM spool_jobs GROUP BY queue, state";

// The oldest ready job per queue, without reading every ready row: a loose
// index scan (recursive CTE) finds each distinct (queue, priority) of the
// ready index, (queue, priority DESC, run_at, id) WHERE state = 2, by one
// index probe per pair, then the first run_at of each pair is one more probe.
constexpr char kOldestReady[] = R"sql(
WITH RECURSIVE pr AS (
  (SELECT queue, priority FROM spool_jobs WHERE state = 2
   ORDER BY queue, priority DESC LIMIT 1)
  UNION ALL
  SELECT nxt.queue, nxt.priority FROM pr CROSS JOIN LATERAL (
    (SELECT j.queue, j.priority FROM spool_jobs j
     WHERE j.state = 2 AND j.queue = pr.queue AND j.priority < pr.priority
     ORDER BY j.queue, j.priority DESC LIMIT 1)
    UNION ALL
    (SELECT j.queue, j.priority FROM spool_jobs j
     WHERE j.state = 2 AND j.queue > pr.queue
     ORDER BY j.queue, j.priority DESC LIMIT 1)
    LIMIT 1) nxt
)
SELECT p.queue,
       greatest(0, extract(epoch FROM now() - min(o.run_at)))::float8
FROM (SELECT * FROM pr LIMIT $1) p CROSS JOIN LATERAL (
  SELECT j.run_at FROM spool_jobs j
  WHERE j.state = 2 AND j.queue = p.queue AND j.priority = p.priority
  ORDER BY j.run_at LIMIT 1) o
GROUP BY p.queue)sql";

// Ready jobs of each known queue, counted through the ready index up to $2.
constexpr char kReadyPerQueue[] = R"sql(
SELECT q.name, (SELECT count(*) FROM (
                  SELECT 1 FROM spool_jobs j
                  WHERE j.queue = q.name AND j.state = 2 LIMIT $2) s)
FROM (SELECT name FROM spool_queues ORDER BY name LIMIT $1) q)sql";

constexpr char kTables[] = R"sql(
SELECT relname::text, n_live_tup, n_dead_tup, pg_total_relation_size(relid),
       spool_us(last_autovacuum), spool_us(last_vacuum)
FROM pg_stat_user_tables
WHERE relid IN ('spool_jobs'::regclass, 'spool_idempotency_keys'::regclass)
ORDER BY relname)sql";

// Client sessions only: autovacuum workers also show an xact_start but do
// not hold back vacuum. Sessions of other roles show no xact_start unless
// spoold's role has pg_read_all_stats (or pg_monitor).
constexpr char kOldestTransaction[] = R"sql(
SELECT greatest(
  (SELECT coalesce(extract(epoch FROM max(clock_timestamp() - xact_start)), 0)
   FROM pg_stat_activity
   WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
     AND backend_type = 'client backend' AND datname = current_database()),
  (SELECT coalesce(extract(epoch FROM max(clock_timestamp() - prepared)), 0)
   FROM pg_prepared_xacts WHERE database = current_database()))::float8)sql";

std::optional<absl::Time> OptionalMicros(const pqxx::field& f) {
  if (f.is_null()) return std::nullopt;
  return absl::FromUnixMicros(f.as<int64_t>());
}

}  // namespace

struct StatsReader::Conn {
  explicit Conn(const std::string& url) : c(url) {}
  pqxx::connection c;
};

StatsReader::StatsReader(Options options) : options_(std::move(options)) {}

StatsReader::~StatsReader() = default;

absl::Status StatsReader::Connect() {
  try {
    conn_ = std::make_unique<Conn>(options_.database_url);
    pqxx::nontransaction tx(conn_->c);
    tx.exec(absl::StrCat(
        "SET application_name = 'spoold-stats'; "
        "SET default_transaction_read_only = on; "
        "SET lock_timeout = '1s'; "
        "SET statement_timeout = ",
        std::max<int64_t>(
            1, absl::ToInt64Milliseconds(options_.statement_timeout))));
    return absl::OkStatus();
  } catch (...) {
    conn_.reset();
    return PgConnectErrorToStatus(std::current_exception(), "for statistics");
  }
}

absl::Status StatsReader::ReadJobCounts(DatabaseStats* out) {
  pqxx::nontransaction tx(conn_->c);
  const int64_t pages = tx.exec1(
                              "SELECT pg_relation_size('spool_jobs') / "
                              "current_setting('block_size')::int")[0]
                            .as<int64_t>();
  // (queue, state) -> jobs, exact.
  std::map<std::pair<std::string, int>, double> exact;
  std::vector<int> estimated_groups;
  if (pages <= options_.exact_max_pages) {
    for (const auto& row : tx.exec(kCountAll)) {
      exact[{row[0].as<std::string>(), row[1].as<int>()}] = row[2].as<double>();
    }
  } else {
    for (int g = 0; g < static_cast<int>(std::size(kStateGroups)); ++g) {
      const StateGroup& group = kStateGroups[g];
      pqxx::result r = tx.exec(absl::StrCat(
          "SELECT queue, state, count(*) FROM (SELECT queue, ", group.state,
          " AS state FROM spool_jobs WHERE ", group.where, " ORDER BY ",
          group.order_by, " LIMIT ", options_.exact_state_rows + 1,
          ") s GROUP BY queue, state"));
      int64_t total = 0;
      for (const auto& row : r) total += row[2].as<int64_t>();
      if (total > options_.exact_state_rows) {
        estimated_groups.push_back(g);
        continue;
      }
      for (const auto& row : r) {
        exact[{row[0].as<std::string>(), row[1].as<int>()}] =
            row[2].as<double>();
      }
    }
  }
  std::map<std::pair<std::string, int>, double> estimate;
  if (!estimated_groups.empty()) {
    // Each page is read with probability `percent`, so counts scaled by
    // 100 / percent are unbiased estimates.
    const double percent =
        std::min(100.0, 100.0 * static_cast<double>(options_.sample_pages) /
                            static_cast<double>(pages));
    out->sampled_fraction = percent / 100.0;
    pqxx::result r = tx.exec_params(
        "SELECT queue, state, count(*) FROM spool_jobs "
        "TABLESAMPLE SYSTEM ($1::float4) GROUP BY queue, state",
        percent);
    auto in_estimated_group = [&](int state) {
      for (int g : estimated_groups) {
        const bool match = g == 3 ? state >= 4 : state == g + 1;
        if (match) return true;
      }
      return false;
    };
    for (const auto& row : r) {
      const int state = row[1].as<int>();
      if (!in_estimated_group(state)) continue;
      estimate[{row[0].as<std::string>(), state}] =
          row[2].as<double>() * 100.0 / percent;
    }
    // Ready counts of small queues, exactly, through the ready index.
    if (std::find(estimated_groups.begin(), estimated_groups.end(), 1) !=
        estimated_groups.end()) {
      pqxx::result ready = tx.exec_params(kReadyPerQueue, options_.max_queues,
                                          options_.exact_ready_per_queue + 1);
      for (const auto& row : ready) {
        std::pair<std::string, int> key{row[0].as<std::string>(), 2};
        const double n = row[1].as<double>();
        if (n <= static_cast<double>(options_.exact_ready_per_queue)) {
          estimate.erase(key);
          if (n > 0) exact[key] = n;
        } else {
          estimate[key] = std::max(estimate[key], n);
        }
      }
    }
  }
  for (const auto& [key, n] : exact) {
    out->jobs.push_back(
        {key.first, static_cast<JobState>(key.second), n, true});
  }
  for (const auto& [key, n] : estimate) {
    out->jobs.push_back(
        {key.first, static_cast<JobState>(key.second), n, false});
  }
  return absl::OkStatus();
}

absl::StatusOr<DatabaseStats> StatsReader::Read() {
  if (conn_ == nullptr) {
    if (absl::Status s = Connect(); !s.ok()) return s;
  }
  DatabaseStats out;
  const char* step = "stats";
  try {
    step = "queue list";
    {
      pqxx::nontransaction tx(conn_->c);
      for (const auto& row :
           tx.exec_params("SELECT name FROM spool_queues ORDER BY name "
                          "LIMIT $1",
                          options_.max_queues)) {
        out.queues.push_back(row[0].as<std::string>());
      }
    }
    step = "job counts";
    if (absl::Status s = ReadJobCounts(&out); !s.ok()) return s;
    pqxx::nontransaction tx(conn_->c);
    step = "oldest ready job";
    for (const auto& row :
         tx.exec_params(kOldestReady, int64_t{options_.max_queues} * 200)) {
      out.oldest_ready.emplace_back(row[0].as<std::string>(),
                                    absl::Seconds(row[1].as<double>()));
    }
    step = "table statistics";
    for (const auto& row : tx.exec(kTables)) {
      TableStats t;
      t.table = row[0].as<std::string>();
      t.live_tuples = row[1].as<int64_t>();
      t.dead_tuples = row[2].as<int64_t>();
      t.total_bytes = row[3].as<int64_t>();
      t.last_autovacuum = OptionalMicros(row[4]);
      t.last_vacuum = OptionalMicros(row[5]);
      out.tables.push_back(std::move(t));
    }
    step = "oldest transaction";
    out.oldest_transaction_age =
        absl::Seconds(tx.exec1(kOldestTransaction)[0].as<double>());
  } catch (...) {
    bool lost = false;
    absl::Status s = PgErrorToStatus(std::current_exception(),
                                     {.op = step,
                                      .connection_open = conn_->c.is_open(),
                                      .own_statement_timeout = true},
                                     &lost);
    if (lost || absl::IsUnavailable(s)) conn_.reset();
    return absl::Status(s.code(), absl::StrCat(step, ": ", s.message()));
  }
  return out;
}

}  // namespace spool::store
