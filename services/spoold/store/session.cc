#include "store/session.h"

#include <algorithm>
#include <exception>
#include <pqxx/pqxx>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "core/fencing.h"
#include "store/pg_codec.h"
#include "store/pg_error.h"

namespace spool::store {

using core::LeaseMismatchStatus;
namespace {

// Interval columns read as microseconds.
constexpr char kQueueColumns[] =
    "name, "
    "(extract(epoch FROM visibility_timeout) * 1000000)::bigint, "
    "max_attempts, "
    "(extract(epoch FROM backoff_initial) * 1000000)::bigint, "
    "backoff_factor, "
    "(extract(epoch FROM backoff_max) * 1000000)::bigint, "
    "backoff_jitter, "
    "(extract(epoch FROM dead_retention) * 1000000)::bigint, "
    "(extract(epoch FROM succeeded_retention) * 1000000)::bigint, "
    "(extract(epoch FROM idempotency_window) * 1000000)::bigint, "
    "max_depth";

struct Statement {
  const char* name;
  std::string sql;
};

// Fenced changes of one leased job test `state::int4 = 3`, not `state = 3`:
// the cast keeps the planner from matching the partial index on leased rows
// (spool_jobs_leased_idx, for the expiry scan), which it would otherwise
// walk in full whenever its statistics think few jobs are leased. These
// statements must always go through the primary key.

std::vector<Statement> Statements() {
  return {
      {"ping", "SELECT 1"},
      {"notify", "SELECT pg_notify($1, $2)"},
      {"ensure_queue",
       absl::StrCat("WITH ins AS (INSERT INTO spool_queues (name) VALUES ($1) "
                    "ON CONFLICT (name) DO NOTHING RETURNING *), "
                    "q AS (SELECT * FROM ins UNION ALL "
                    "SELECT * FROM spool_queues WHERE name = $1) "
                    "SELECT ",
                    kQueueColumns, " FROM q LIMIT 1")},
      // Depth-limited enqueues (see migrations/0003): lock the queues'
      // rows, reading each bound and whether it was counted within $2 µs;
      // count a queue's ready jobs through their index up to the limit and,
      // unless that already fills it, its scheduled and leased jobs (those
      // have no index by queue); store the new bounds. A count cut at the
      // limit is at least the max depth, so its bound is never trusted.
      {"lock_queue_depths",
       "SELECT name, max_depth, depth_bound, coalesce(depth_counted_at > "
       "now() - $2 * interval '1 microsecond', false) "
       "FROM spool_queues WHERE name = ANY($1::text[]) "
       "ORDER BY name FOR NO KEY UPDATE"},
      {"count_depths", R"sql(
SELECT t.queue,
       CASE WHEN r.n >= t.lim THEN r.n  -- Full on ready jobs alone.
            ELSE r.n
               + (SELECT count(*) FROM (SELECT 1 FROM spool_jobs j
                                        WHERE j.queue = t.queue AND j.state = 1
                                        LIMIT t.lim) s)
               + (SELECT count(*) FROM (SELECT 1 FROM spool_jobs j
                                        WHERE j.queue = t.queue AND j.state = 3
                                        LIMIT t.lim) l)
       END
FROM unnest($1::text[], $2::int8[]) AS t(queue, lim),
     LATERAL (SELECT count(*) AS n
              FROM (SELECT 1 FROM spool_jobs j
                    WHERE j.queue = t.queue AND j.state = 2
                    ORDER BY j.priority DESC, j.run_at, j.id  -- Index order:
                    LIMIT t.lim) q) r)sql"},  // stops at the limit (no bitmap).
      {"set_depth_bounds",
       "UPDATE spool_queues q SET depth_bound = t.bound, "
       "depth_counted_at = CASE WHEN t.counted = 1 THEN now() "
       "ELSE q.depth_counted_at END "
       "FROM unnest($1::text[], $2::int8[], $3::int4[]) AS t(name, bound, "
       "counted) WHERE q.name = t.name"},
      // Jobs without idempotency keys (the common case): one insert, with
      // ids drawn per input row so each caller learns its own. The insert
      // runs to completion even though the SELECT does not read it. Payloads
      // arrive as one bytea and are cut by offset ($8) and length ($9).
      {"enqueue_nokey", R"sql(
WITH input AS (
  SELECT t.ord,
         nextval('spool_jobs_id_seq') AS new_id,
         t.queue, t.priority,
         coalesce('epoch'::timestamptz + t.run_at_us * interval '1 microsecond',
                  now() + t.delay_us * interval '1 microsecond') AS run_at,
         t.max_attempts, t.headers, t.off, t.len
  FROM unnest($1::text[], $2::int2[], $3::int8[], $4::int8[], $5::int4[],
              $6::text[], $7::int4[], $8::int4[])
       WITH ORDINALITY AS t(queue, priority, run_at_us, delay_us, max_attempts,
                            headers, off, len, ord)
),
inserted AS (
  INSERT INTO spool_jobs (id, queue, state, priority, run_at, max_attempts,
                          headers, payload)
  SELECT new_id, queue, CASE WHEN run_at > now() THEN 1 ELSE 2 END, priority,
         run_at, max_attempts, headers::jsonb,
         substring($9::bytea FROM off FOR len)
  FROM input
)
SELECT ord, new_id, CASE WHEN run_at > now() THEN spool_us(run_at) END
FROM input)sql"},
      // Jobs of which some have keys: allocate ids in input order, claim
      // the keys (a held key keeps its job; an expired key of a finished job
      // is taken over), insert the jobs whose key was claimed or that have
      // none.
      {"enqueue", R"sql(
WITH input AS MATERIALIZED (
  SELECT t.ord,
         nextval('spool_jobs_id_seq') AS new_id,
         t.queue, t.priority,
         coalesce('epoch'::timestamptz + t.run_at_us * interval '1 microsecond',
                  now() + t.delay_us * interval '1 microsecond') AS run_at,
         t.max_attempts, t.key,
         now() + t.key_window_us * interval '1 microsecond' AS key_expires,
         t.headers::jsonb AS headers,
         substring($11::bytea FROM t.off FOR t.len) AS payload
  FROM unnest($1::text[], $2::int2[], $3::int8[], $4::int8[], $5::int4[],
              $6::text[], $7::int8[], $8::text[], $9::int4[], $10::int4[])
       WITH ORDINALITY AS t(queue, priority, run_at_us, delay_us, max_attempts,
                            key, key_window_us, headers, off, len, ord)
),
claims AS (
  INSERT INTO spool_idempotency_keys AS k (queue, key, job_id, expires_at)
  SELECT queue, key, new_id, key_expires FROM input WHERE key IS NOT NULL
  ORDER BY queue, key  -- One lock order for all writers: no deadlocks.
  ON CONFLICT (queue, key) DO UPDATE SET
    job_id = CASE WHEN k.expires_at <= now() AND NOT EXISTS (
                 SELECT 1 FROM spool_jobs j WHERE j.id = k.job_id AND j.state <= 3)
             THEN excluded.job_id ELSE k.job_id END,
    expires_at = CASE WHEN k.expires_at <= now() AND NOT EXISTS (
                 SELECT 1 FROM spool_jobs j WHERE j.id = k.job_id AND j.state <= 3)
             THEN excluded.expires_at ELSE k.expires_at END
  RETURNING k.queue, k.key, k.job_id
),
inserted AS (
  INSERT INTO spool_jobs (id, queue, state, priority, run_at, max_attempts,
                          idempotency_key, headers, payload)
  SELECT i.new_id, i.queue, CASE WHEN i.run_at > now() THEN 1 ELSE 2 END,
         i.priority, i.run_at, i.max_attempts, i.key, i.headers, i.payload
  FROM input i
  WHERE i.key IS NULL OR EXISTS (
    SELECT 1 FROM claims c
    WHERE c.queue = i.queue AND c.key = i.key AND c.job_id = i.new_id)
  RETURNING id, state, run_at
)
SELECT i.ord, coalesce(c.job_id, i.new_id),
       (c.job_id IS NOT NULL AND c.job_id <> i.new_id),
       CASE WHEN ins.state = 1 THEN spool_us(ins.run_at) END
FROM input i
LEFT JOIN claims c ON c.queue = i.queue AND c.key = i.key
LEFT JOIN inserted ins ON ins.id = i.new_id
ORDER BY i.ord)sql"},
      // The lease: pick in index order with SKIP LOCKED in an InitPlan (run
      // once, so the LIMIT cannot be re-evaluated per row), keep the jobs
      // that fit the byte budget ($5; rows locked but not kept are free
      // again when the statement commits), then update those rows through
      // the primary key. The budget's running sum follows the rows as the
      // index hands them out (an ORDER BY there would re-sort them: LockRows
      // drops the known order); the reply is sorted in C++. A CTE joined to
      // spool_jobs instead got a generic plan that hashed the whole table
      // on every lease.
      {"lease", R"sql(
UPDATE spool_jobs j
SET state = 3, attempt = j.attempt + 1, lease_id = gen_random_uuid(),
    leased_at = now(),
    lease_expires_at = now() + $3::int8 * interval '1 microsecond',
    worker_id = nullif($4, '')
WHERE j.id = ANY(ARRAY(
  SELECT id FROM (
    SELECT id, size,
           sum(size) OVER (ROWS UNBOUNDED PRECEDING) - size AS before
    FROM (
      SELECT id, priority, run_at,
             octet_length(payload) + coalesce(pg_column_size(headers), 0)
               + 200 AS size
      FROM spool_jobs
      WHERE queue = $1 AND state = 2
      ORDER BY priority DESC, run_at, id
      LIMIT $2
      FOR UPDATE SKIP LOCKED) picked
  ) sized
  WHERE before = 0 OR before + size <= $5::int8))
RETURNING j.id, j.lease_id::text, j.payload, j.headers::text, j.priority,
          j.attempt, j.max_attempts, spool_us(j.run_at), spool_us(j.enqueued_at),
          spool_us(j.lease_expires_at))sql"},
      {"release_leases", R"sql(
UPDATE spool_jobs j
SET state = 2, attempt = j.attempt - 1, lease_id = NULL, leased_at = NULL,
    lease_expires_at = NULL
FROM unnest($1::int8[], $2::uuid[]) AS t(id, lease)
WHERE j.id = t.id AND j.lease_id = t.lease AND j.state::int4 = 3)sql"},
      // Ack returns a row only for the completions it settled (by ordinal):
      // joining results back to the input made a quadratic nested loop under
      // the generic plan. The queues that keep succeeded jobs are read once
      // per statement (usually none, and then the UPDATE is skipped).
      {"ack", R"sql(
WITH input AS (
  SELECT t.ord, t.id, t.lease::uuid AS lease,
         substring($4::bytea FROM (sum(t.len) OVER (ORDER BY t.ord) - t.len + 1)::int
                   FOR t.len) AS result
  FROM unnest($1::int8[], $2::text[], $3::int4[])
       WITH ORDINALITY AS t(id, lease, len, ord)
),
deleted AS (
  DELETE FROM spool_jobs j USING input i
  WHERE j.id = i.id AND j.lease_id = i.lease AND j.state::int4 = 3
    AND j.queue <> ALL(ARRAY(SELECT name FROM spool_queues
                             WHERE succeeded_retention > '0'))
  RETURNING i.ord, spool_us(now()) - spool_us(j.leased_at) AS took, j.queue
),
kept AS (
  UPDATE spool_jobs j
  SET state = 4, result = i.result, finished_at = now(), lease_expires_at = NULL
  FROM input i
  WHERE EXISTS (SELECT 1 FROM spool_queues WHERE succeeded_retention > '0')
    AND j.id = i.id AND j.lease_id = i.lease AND j.state::int4 = 3
    AND j.queue = ANY(ARRAY(SELECT name FROM spool_queues
                            WHERE succeeded_retention > '0'))
  RETURNING i.ord, spool_us(now()) - spool_us(j.leased_at) AS took, j.queue
)
SELECT ord, took, queue FROM deleted
UNION ALL SELECT ord, took, queue FROM kept)sql"},
      // Why completions the ack did not settle failed (read afterwards, for
      // the error message only).
      {"ack_failures", R"sql(
SELECT t.ord, j.state, coalesce(j.lease_id = t.lease::uuid, false), j.queue
FROM unnest($1::int8[], $2::text[]) WITH ORDINALITY AS t(id, lease, ord)
LEFT JOIN spool_jobs j ON j.id = t.id)sql"},
      {"get_job_lease",
       "SELECT queue, state, coalesce(lease_id::text, ''), attempt, "
       "max_attempts FROM spool_jobs WHERE id = $1"},
      // Fenced; the delay is the caller's or the queue's backoff for the
      // job's attempt (read unlocked: it only changes with the lease, and
      // the fence re-checks the lease under the row lock).
      {"nack", R"sql(
WITH delay AS (
  SELECT CASE WHEN $3::int8 >= 0 THEN $3::int8 ELSE coalesce((
    SELECT spool_backoff_us(q.backoff_initial, q.backoff_factor, q.backoff_max,
                            q.backoff_jitter, j.attempt, $6)
    FROM spool_jobs j JOIN spool_queues q ON q.name = j.queue
    WHERE j.id = $1), 0) END AS us
)
UPDATE spool_jobs j SET
  state = CASE WHEN $5 OR j.attempt >= j.max_attempts THEN 5
               WHEN d.us > 0 THEN 1 ELSE 2 END,
  run_at = CASE WHEN $5 OR j.attempt >= j.max_attempts THEN j.run_at
                ELSE now() + d.us * interval '1 microsecond' END,
  finished_at = CASE WHEN $5 OR j.attempt >= j.max_attempts THEN now() END,
  last_error = $4, lease_expires_at = NULL
FROM delay d
WHERE j.id = $1 AND j.lease_id = $2::uuid AND j.state::int4 = 3
RETURNING j.state, spool_us(j.run_at), spool_us(now()) - spool_us(j.leased_at),
          j.queue)sql"},
      {"extend_lease", R"sql(
UPDATE spool_jobs
SET lease_expires_at = now() + $3::int8 * interval '1 microsecond'
WHERE id = $1 AND lease_id = $2::uuid AND state::int4 = 3
RETURNING spool_us(lease_expires_at))sql"},
      {"get_job", R"sql(
SELECT id, queue, state, priority, attempt, max_attempts, payload,
       coalesce(headers::text, '{}'), coalesce(idempotency_key, ''),
       spool_us(enqueued_at), spool_us(run_at), spool_us(lease_expires_at),
       spool_us(finished_at), coalesce(last_error, ''), result,
       coalesce(worker_id, '')
FROM spool_jobs WHERE id = $1)sql"},
      {"reap_expired", R"sql(
WITH upd AS (
  UPDATE spool_jobs j SET
    state = CASE WHEN j.attempt >= j.max_attempts THEN 5 ELSE 2 END,
    finished_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
    last_error = format('lease expired on attempt %s of %s (worker %s)',
                        j.attempt, j.max_attempts, coalesce(j.worker_id, 'unnamed')),
    lease_expires_at = NULL
  WHERE j.id = ANY(ARRAY(
    SELECT id FROM spool_jobs
    WHERE state = 3 AND lease_expires_at < now()
    ORDER BY lease_expires_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED))
  RETURNING j.queue, j.state
)
SELECT queue, count(*) FILTER (WHERE state = 2), count(*) FILTER (WHERE state = 5)
FROM upd GROUP BY queue)sql"},
      {"promote_scheduled", R"sql(
WITH upd AS (
  UPDATE spool_jobs j SET state = 2
  WHERE j.id = ANY(ARRAY(
    SELECT id FROM spool_jobs
    WHERE state = 1 AND run_at <= now()
    ORDER BY run_at
    LIMIT $1
    FOR UPDATE SKIP LOCKED))
  RETURNING j.queue
)
SELECT queue, count(*) FROM upd GROUP BY queue)sql"},
      {"next_scheduled",
       "SELECT spool_us(min(run_at)) FROM spool_jobs WHERE state = 1"},
      {"purge_finished", R"sql(
DELETE FROM spool_jobs WHERE id = ANY(ARRAY(
  SELECT j.id FROM spool_jobs j JOIN spool_queues q ON q.name = j.queue
  WHERE j.state >= 4
    AND j.finished_at < now() - (
      SELECT coalesce(min(least(CASE WHEN succeeded_retention > '0'
                                     THEN succeeded_retention END,
                                dead_retention)), '0')
      FROM spool_queues)
    AND j.finished_at < now() - CASE WHEN j.state = 4 THEN q.succeeded_retention
                                     ELSE q.dead_retention END
  ORDER BY j.finished_at
  LIMIT $1
  FOR UPDATE OF j SKIP LOCKED)))sql"},
      {"purge_keys", R"sql(
DELETE FROM spool_idempotency_keys WHERE ctid = ANY(ARRAY(
  SELECT k.ctid FROM spool_idempotency_keys k
  WHERE k.expires_at < now()
    AND NOT EXISTS (SELECT 1 FROM spool_jobs j
                    WHERE j.id = k.job_id AND j.state <= 3)
  ORDER BY k.expires_at
  LIMIT $1
  FOR UPDATE SKIP LOCKED)))sql"},
  };
}

QueueConfig ReadQueueConfig(const pqxx::row& r) {
  QueueConfig c;
  c.name = r[0].as<std::string>();
  c.visibility_timeout = absl::Microseconds(r[1].as<int64_t>());
  c.max_attempts = r[2].as<int32_t>();
  c.backoff_initial = absl::Microseconds(r[3].as<int64_t>());
  c.backoff_factor = r[4].as<double>();
  c.backoff_max = absl::Microseconds(r[5].as<int64_t>());
  c.backoff_jitter = r[6].as<double>();
  c.dead_retention = absl::Microseconds(r[7].as<int64_t>());
  c.succeeded_retention = absl::Microseconds(r[8].as<int64_t>());
  c.idempotency_window = absl::Microseconds(r[9].as<int64_t>());
  c.max_depth = r[10].as<int64_t>();
  return c;
}

std::string Bytes(const pqxx::field& f) {
  if (f.is_null()) return std::string();
  return pqxx::binarystring(f).str();
}

QueueCounts ReadQueueCounts(const pqxx::result& res, int column) {
  QueueCounts out;
  for (const auto& row : res) {
    int64_t n = row[column].as<int64_t>();
    if (n > 0) out.emplace_back(row[0].as<std::string>(), n);
  }
  return out;
}

// Runs the enqueue statement for `jobs` in `tx`; pqxx exceptions pass through.
absl::StatusOr<std::vector<EnqueueResult>> ExecEnqueue(
    pqxx::transaction_base& tx, const std::vector<NewJob>& jobs) {
  if (jobs.empty()) return std::vector<EnqueueResult>();
  std::vector<std::string> queues;
  std::vector<int16_t> priorities;
  std::vector<std::optional<std::string>> run_at_us, keys, headers;
  std::vector<int64_t> delay_us, key_window_us;
  std::vector<int32_t> max_attempts, offsets, lens;
  std::string blob;
  size_t total = 0;
  bool any_key = false;
  for (const NewJob& j : jobs) {
    total += j.payload.size();
    any_key = any_key || !j.idempotency_key.empty();
  }
  blob.reserve(total);
  for (const NewJob& j : jobs) {
    queues.push_back(j.queue);
    priorities.push_back(j.priority);
    if (j.run_at.has_value()) {
      run_at_us.push_back(std::to_string(ToMicros(*j.run_at)));
    } else {
      run_at_us.push_back(std::nullopt);
    }
    delay_us.push_back(ToMicros(j.delay));
    max_attempts.push_back(j.max_attempts);
    if (any_key) {
      if (j.idempotency_key.empty()) {
        keys.push_back(std::nullopt);
      } else {
        keys.push_back(j.idempotency_key);
      }
      key_window_us.push_back(ToMicros(j.idempotency_window));
    }
    if (j.headers.empty()) {
      headers.push_back(std::nullopt);
    } else {
      headers.push_back(EncodeHeadersJson(j.headers));
    }
    offsets.push_back(static_cast<int32_t>(blob.size() + 1));  // 1-based.
    lens.push_back(static_cast<int32_t>(j.payload.size()));
    blob += j.payload;
  }
  const pqxx::binarystring payloads(blob.data(), blob.size());
  pqxx::result r =
      any_key ? tx.exec_prepared(
                    "enqueue", TextArrayLiteral(queues),
                    IntArrayLiteral(priorities), TextArrayLiteral(run_at_us),
                    IntArrayLiteral(delay_us), IntArrayLiteral(max_attempts),
                    TextArrayLiteral(keys), IntArrayLiteral(key_window_us),
                    TextArrayLiteral(headers), IntArrayLiteral(offsets),
                    IntArrayLiteral(lens), payloads)
              : tx.exec_prepared(
                    "enqueue_nokey", TextArrayLiteral(queues),
                    IntArrayLiteral(priorities), TextArrayLiteral(run_at_us),
                    IntArrayLiteral(delay_us), IntArrayLiteral(max_attempts),
                    TextArrayLiteral(headers), IntArrayLiteral(offsets),
                    IntArrayLiteral(lens), payloads);
  if (r.size() != jobs.size()) {
    return absl::InternalError("enqueue returned the wrong number of rows");
  }
  std::vector<EnqueueResult> out(jobs.size());
  for (const auto& row : r) {
    size_t ord = row[0].as<size_t>() - 1;
    out[ord].job_id = row[1].as<int64_t>();
    if (any_key) {
      out[ord].duplicate = row[2].as<bool>();
      if (!row[3].is_null()) {
        out[ord].scheduled_for = FromMicros(row[3].as<int64_t>());
      }
    } else if (!row[2].is_null()) {
      out[ord].scheduled_for = FromMicros(row[2].as<int64_t>());
    }
  }
  return out;
}

}  // namespace

std::string StatementSql(absl::string_view name) {
  for (const Statement& s : Statements()) {
    if (name == s.name) return s.sql;
  }
  return std::string();
}

struct Session::Conn {
  explicit Conn(const std::string& url) : c(url) {}
  pqxx::connection c;
};

Session::Session(std::unique_ptr<Conn> conn) : conn_(std::move(conn)) {}

Session::~Session() = default;

absl::StatusOr<std::unique_ptr<Session>> Session::Connect(
    const std::string& url) {
  try {
    auto conn = std::make_unique<Conn>(url);
    for (const Statement& s : Statements()) conn->c.prepare(s.name, s.sql);
    return std::unique_ptr<Session>(new Session(std::move(conn)));
  } catch (...) {
    return PgConnectErrorToStatus(std::current_exception(), "");
  }
}

absl::Status Session::ConvertException(const char* op) {
  bool lost = false;
  absl::Status status =
      PgErrorToStatus(std::current_exception(),
                      {.op = op, .connection_open = conn_->c.is_open()}, &lost);
  if (lost) broken_ = true;
  return status;
}

absl::Status Session::Ping() {
  try {
    pqxx::nontransaction tx(conn_->c);
    tx.exec_prepared("ping");
    return absl::OkStatus();
  } catch (...) {
    return ConvertException("ping");
  }
}

absl::Status Session::Notify(const std::string& channel,
                             const std::string& payload) {
  try {
    pqxx::nontransaction tx(conn_->c);
    tx.exec_prepared("notify", channel, payload);
    return absl::OkStatus();
  } catch (...) {
    return ConvertException("notify");
  }
}

absl::StatusOr<QueueConfig> Session::EnsureQueue(const std::string& name) {
  try {
    // A concurrent first use may commit between our insert and read; the
    // second try then sees its row.
    for (int i = 0; i < 3; ++i) {
      pqxx::nontransaction tx(conn_->c);
      pqxx::result r = tx.exec_prepared("ensure_queue", name);
      if (!r.empty()) return ReadQueueConfig(r[0]);
    }
    return absl::AbortedError(
        absl::StrCat("queue ", name, " could not be created"));
  } catch (...) {
    return ConvertException("ensure_queue");
  }
}

absl::StatusOr<std::vector<EnqueueResult>> Session::Enqueue(
    const std::vector<NewJob>& jobs) {
  if (jobs.empty()) return std::vector<EnqueueResult>();
  try {
    pqxx::nontransaction tx(conn_->c);
    return ExecEnqueue(tx, jobs);
  } catch (...) {
    return ConvertException("enqueue");
  }
}

absl::StatusOr<std::vector<EnqueueResult>> Session::EnqueueWithinDepth(
    const absl::flat_hash_map<std::string, int64_t>& wanted,
    absl::Duration recount_after,
    absl::FunctionRef<const std::vector<NewJob>&(const QueueDepths&)> choose) {
  std::vector<std::string> queues;
  for (const auto& [name, n] : wanted) queues.push_back(name);
  try {
    pqxx::work tx(conn_->c);
    // Row locks in name order (one order for every writer: no deadlocks);
    // NO KEY UPDATE leaves the settings rows readable by everyone else.
    pqxx::result locked = tx.exec_prepared(
        "lock_queue_depths", TextArrayLiteral(queues), ToMicros(recount_after));
    QueueDepths depths;
    std::vector<std::string> to_count;
    std::vector<int64_t> limits;
    for (const auto& row : locked) {
      const int64_t max_depth = row[1].as<int64_t>();
      if (max_depth <= 0) continue;  // No longer limited.
      const std::string name = row[0].as<std::string>();
      QueueDepth& d = depths[name];
      d.max_depth = max_depth;
      // A recent bound under which everything fits spares the count; one
      // that would refuse anything is checked against the jobs themselves.
      if (!row[2].is_null() && row[3].as<bool>() &&
          row[2].as<int64_t>() + wanted.at(name) <= max_depth) {
        d.depth = row[2].as<int64_t>();
      } else {
        d.counted = true;
        to_count.push_back(name);
        limits.push_back(max_depth);
      }
    }
    // A statement of its own: its snapshot, taken after the locks were
    // granted, sees every job committed by the writers that held them.
    if (!to_count.empty()) {
      pqxx::result counts = tx.exec_prepared(
          "count_depths", TextArrayLiteral(to_count), IntArrayLiteral(limits));
      for (const auto& row : counts) {
        depths[row[0].as<std::string>()].depth = row[1].as<int64_t>();
      }
    }
    const std::vector<NewJob>& jobs = choose(depths);
    std::vector<EnqueueResult> out;
    if (!jobs.empty()) {
      auto inserted = ExecEnqueue(tx, jobs);
      if (!inserted.ok()) return inserted.status();
      out = *std::move(inserted);
    }
    // New bounds: the depth seen plus every job inserted (a repeated
    // idempotency key adds nothing, which only makes the bound looser).
    absl::flat_hash_map<std::string, int64_t> added;
    for (const NewJob& j : jobs) {
      if (depths.contains(j.queue)) ++added[j.queue];
    }
    std::vector<std::string> names;
    std::vector<int64_t> bounds;
    std::vector<int32_t> counted;
    for (const auto& [name, d] : depths) {
      if (!d.counted && added[name] == 0) continue;
      names.push_back(name);
      bounds.push_back(d.depth + added[name]);
      counted.push_back(d.counted ? 1 : 0);
    }
    if (!names.empty()) {
      tx.exec_prepared("set_depth_bounds", TextArrayLiteral(names),
                       IntArrayLiteral(bounds), IntArrayLiteral(counted));
    }
    tx.commit();
    return out;
  } catch (...) {
    return ConvertException("enqueue");
  }
}

absl::StatusOr<std::vector<LeasedJob>> Session::Lease(
    const LeaseParams& params) {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("lease", params.queue, params.max_jobs,
                                      ToMicros(params.visibility_timeout),
                                      params.worker_id, params.max_bytes);
    std::vector<LeasedJob> out;
    out.reserve(r.size());
    for (const auto& row : r) {
      LeasedJob j;
      j.job_id = row[0].as<int64_t>();
      j.lease_id = row[1].as<std::string>();
      j.queue = params.queue;
      j.payload = Bytes(row[2]);
      if (!row[3].is_null()) {
        auto h = DecodeHeadersJson(row[3].c_str());
        if (h.ok()) j.headers = *std::move(h);
      }
      j.priority = row[4].as<int16_t>();
      j.attempt = row[5].as<int32_t>();
      j.max_attempts = row[6].as<int32_t>();
      j.run_at = FromMicros(row[7].as<int64_t>());
      j.enqueued_at = FromMicros(row[8].as<int64_t>());
      j.lease_expires_at = FromMicros(row[9].as<int64_t>());
      out.push_back(std::move(j));
    }
    std::sort(out.begin(), out.end(),
              [](const LeasedJob& a, const LeasedJob& b) {
                if (a.priority != b.priority) return a.priority > b.priority;
                if (a.run_at != b.run_at) return a.run_at < b.run_at;
                return a.job_id < b.job_id;
              });
    return out;
  } catch (...) {
    return ConvertException("lease");
  }
}

absl::Status Session::ReleaseLeases(const std::vector<LeasedJob>& jobs) {
  if (jobs.empty()) return absl::OkStatus();
  std::vector<int64_t> ids;
  std::vector<std::string> leases;
  for (const LeasedJob& j : jobs) {
    ids.push_back(j.job_id);
    leases.push_back(j.lease_id);
  }
  try {
    pqxx::nontransaction tx(conn_->c);
    tx.exec_prepared("release_leases", IntArrayLiteral(ids),
                     TextArrayLiteral(leases));
    return absl::OkStatus();
  } catch (...) {
    return ConvertException("release_leases");
  }
}

absl::StatusOr<std::vector<AckItem>> Session::Ack(
    const std::vector<Completion>& completions) {
  if (completions.empty()) return std::vector<AckItem>();
  std::vector<int64_t> ids;
  std::vector<std::string> leases;
  std::vector<int32_t> lens;
  std::string blob;
  for (const Completion& c : completions) {
    ids.push_back(c.job_id);
    leases.push_back(c.lease_id);
    lens.push_back(static_cast<int32_t>(c.result.size()));
    blob += c.result;
  }
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared(
        "ack", IntArrayLiteral(ids), TextArrayLiteral(leases),
        IntArrayLiteral(lens), pqxx::binarystring(blob.data(), blob.size()));
    std::vector<AckItem> out(completions.size());
    std::vector<bool> settled(completions.size(), false);
    for (const auto& row : r) {
      const size_t ord = row[0].as<size_t>() - 1;
      if (ord >= out.size()) {
        return absl::InternalError("ack returned an unknown ordinal");
      }
      settled[ord] = true;
      if (!row[1].is_null()) {
        out[ord].processing = absl::Microseconds(row[1].as<int64_t>());
      }
      out[ord].queue = row[2].as<std::string>();
    }
    if (r.size() == completions.size()) return out;

    // The same (job, lease) twice in one batch settles once: both succeed.
    absl::flat_hash_map<std::pair<int64_t, std::string>, size_t> settled_at;
    for (size_t i = 0; i < out.size(); ++i) {
      if (settled[i]) {
        settled_at.emplace(std::make_pair(ids[i], leases[i]), i);
      }
    }
    std::vector<int64_t> failed_ids;
    std::vector<std::string> failed_leases;
    std::vector<size_t> failed_ords;
    for (size_t i = 0; i < out.size(); ++i) {
      if (settled[i]) continue;
      auto it = settled_at.find(std::make_pair(ids[i], leases[i]));
      if (it != settled_at.end()) {
        out[i] = out[it->second];
        continue;
      }
      out[i].status = absl::NotFoundError(absl::StrCat(
          "job ", ids[i], " not found: it never existed or already finished"));
      failed_ids.push_back(ids[i]);
      failed_leases.push_back(leases[i]);
      failed_ords.push_back(i);
    }
    if (failed_ords.empty()) return out;
    pqxx::result f =
        tx.exec_prepared("ack_failures", IntArrayLiteral(failed_ids),
                         TextArrayLiteral(failed_leases));
    for (const auto& row : f) {
      const size_t k = row[0].as<size_t>() - 1;
      if (k >= failed_ords.size()) continue;
      AckItem& item = out[failed_ords[k]];
      const int64_t id = failed_ids[k];
      if (!row[1].is_null()) {
        item.queue = row[3].as<std::string>();
        item.status = LeaseMismatchStatus(
            id, static_cast<JobState>(row[1].as<int16_t>()), row[2].as<bool>());
      }
    }
    return out;
  } catch (...) {
    return ConvertException("ack");
  }
}

absl::StatusOr<JobLease> Session::GetJobLease(int64_t job_id) {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("get_job_lease", job_id);
    if (r.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "job ", job_id, " not found: it never existed or already finished"));
    }
    JobLease l;
    l.job_id = job_id;
    l.queue = r[0][0].as<std::string>();
    l.state = static_cast<JobState>(r[0][1].as<int16_t>());
    l.lease_id = r[0][2].as<std::string>();
    l.attempt = r[0][3].as<int32_t>();
    l.max_attempts = r[0][4].as<int32_t>();
    return l;
  } catch (...) {
    return ConvertException("get_job_lease");
  }
}

absl::StatusOr<NackResult> Session::Nack(const NackParams& p) {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared(
        "nack", p.job_id, p.lease_id,
        p.retry_delay.has_value() ? ToMicros(*p.retry_delay) : int64_t{-1},
        p.error, p.dead_letter, p.backoff_unit);
    if (r.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", p.job_id, " is no longer held by this lease"));
    }
    NackResult out;
    out.queue = r[0][3].as<std::string>();
    out.state = static_cast<JobState>(r[0][0].as<int16_t>());
    if (out.state != JobState::kDead) {
      out.next_run_at = FromMicros(r[0][1].as<int64_t>());
    }
    if (!r[0][2].is_null()) {
      out.processing = absl::Microseconds(r[0][2].as<int64_t>());
    }
    return out;
  } catch (...) {
    return ConvertException("nack");
  }
}

absl::StatusOr<absl::Time> Session::ExtendLease(
    int64_t job_id, const std::string& lease_id,
    absl::Duration visibility_timeout) {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("extend_lease", job_id, lease_id,
                                      ToMicros(visibility_timeout));
    if (r.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", job_id, " is no longer held by this lease"));
    }
    return FromMicros(r[0][0].as<int64_t>());
  } catch (...) {
    return ConvertException("extend_lease");
  }
}

absl::StatusOr<Job> Session::GetJob(int64_t job_id) {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("get_job", job_id);
    if (r.empty()) {
      return absl::NotFoundError(absl::StrCat(
          "job ", job_id,
          " not found: it never existed, or it finished and was deleted"));
    }
    const pqxx::row row = r[0];
    Job j;
    j.job_id = row[0].as<int64_t>();
    j.queue = row[1].as<std::string>();
    j.state = static_cast<JobState>(row[2].as<int16_t>());
    j.priority = row[3].as<int16_t>();
    j.attempt = row[4].as<int32_t>();
    j.max_attempts = row[5].as<int32_t>();
    j.payload = Bytes(row[6]);
    auto h = DecodeHeadersJson(row[7].c_str());
    if (h.ok()) j.headers = *std::move(h);
    j.idempotency_key = row[8].as<std::string>();
    j.enqueued_at = FromMicros(row[9].as<int64_t>());
    j.run_at = FromMicros(row[10].as<int64_t>());
    if (!row[11].is_null()) {
      j.lease_expires_at = FromMicros(row[11].as<int64_t>());
    }
    if (!row[12].is_null()) j.finished_at = FromMicros(row[12].as<int64_t>());
    j.last_error = row[13].as<std::string>();
    j.result = Bytes(row[14]);
    j.worker_id = row[15].as<std::string>();
    return j;
  } catch (...) {
    return ConvertException("get_job");
  }
}

absl::StatusOr<ReapResult> Session::ReapExpiredLeases(int limit) {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::result r = tx.exec_prepared("reap_expired", limit);
    ReapResult out;
    out.made_ready = ReadQueueCounts(r, 1);
    out.dead = ReadQueueCounts(r, 2);
    for (const auto& [q, n] : out.made_ready) out.total += n;
    for (const auto& [q, n] : out.dead) out.total += n;
    return out;
  } catch (...) {
    return ConvertException("reap_expired");
  }
}

absl::StatusOr<QueueCounts> Session::PromoteScheduled(int limit) {
  try {
    pqxx::nontransaction tx(conn_->c);
    return ReadQueueCounts(tx.exec_prepared("promote_scheduled", limit), 1);
  } catch (...) {
    return ConvertException("promote_scheduled");
  }
}

absl::StatusOr<std::optional<absl::Time>> Session::NextScheduledRunAt() {
  try {
    pqxx::nontransaction tx(conn_->c);
    pqxx::row r = tx.exec_prepared1("next_scheduled");
    if (r[0].is_null()) return std::optional<absl::Time>();
    return std::optional<absl::Time>(FromMicros(r[0].as<int64_t>()));
  } catch (...) {
    return ConvertException("next_scheduled");
  }
}

absl::StatusOr<int64_t> Session::PurgeFinished(int limit) {
  try {
    pqxx::nontransaction tx(conn_->c);
    return static_cast<int64_t>(
        tx.exec_prepared("purge_finished", limit).affected_rows());
  } catch (...) {
    return ConvertException("purge_finished");
  }
}

absl::StatusOr<int64_t> Session::PurgeIdempotencyKeys(int limit) {
  try {
    pqxx::nontransaction tx(conn_->c);
    return static_cast<int64_t>(
        tx.exec_prepared("purge_keys", limit).affected_rows());
  } catch (...) {
    return ConvertException("purge_keys");
  }
}

}  // namespace spool::store
