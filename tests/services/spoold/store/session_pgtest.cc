// PostgreSQL specifics of the store: the statements' plans on large tables,
// migrations, and a lost connection. The contract of each store operation is
// checked by the conformance suite (store_conformance_pgtest.cc).
#include <pqxx/pqxx>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/migrator.h"
#include "store/pg_codec.h"
#include "store/session.h"
#include "tests/support/test_postgres.h"

namespace spool::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int64_t QueryCount(pqxx::nontransaction& tx, const std::string& sql) {
  return tx.exec1(sql)[0].as<int64_t>();
}

// 400k rows on queues q0..q19, ready on q0, q4, q8, q12 and q16, plus
// leased, scheduled (due in an hour) and dead (finished an hour ago) rows.
void InsertMixedJobs(pqxx::nontransaction& tx) {
  tx.exec(R"sql(
INSERT INTO spool_jobs (queue, state, priority, run_at, max_attempts, payload,
                        lease_id, lease_expires_at, finished_at)
SELECT 'q' || (g % 20),
       CASE WHEN g % 4 = 0 THEN 2 WHEN g % 4 = 1 THEN 3
            WHEN g % 4 = 2 THEN 1 ELSE 5 END,
       (g % 7) - 3,
       now() + CASE WHEN g % 4 = 2 THEN interval '1 hour' ELSE interval '0' END
             - (g % 1000) * interval '1 second',
       20, '\x00'::bytea,
       CASE WHEN g % 4 = 1 THEN gen_random_uuid() END,
       CASE WHEN g % 4 = 1 THEN now() + interval '1 hour' END,
       CASE WHEN g % 4 = 3 THEN now() - interval '1 hour' END
FROM generate_series(1, 400000) g)sql");
}

class SessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto url = testing::SharedPostgres()->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto applied = ApplyMigrations(url_);
    ASSERT_TRUE(applied.ok()) << applied.status();
    EXPECT_EQ(*applied, static_cast<int>(EmbeddedMigrations().size()));
  }
  std::string url_;
};

TEST_F(SessionTest, MigrationsAreRecordedAndNotReapplied) {
  auto again = ApplyMigrations(url_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0);
  EXPECT_TRUE(CheckSchemaCurrent(url_).ok());
  auto fresh = testing::SharedPostgres()->CreateDatabase();
  ASSERT_TRUE(fresh.ok());
  absl::Status s = CheckSchemaCurrent(*fresh);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("spoold migrate"));
}

// The lease must walk the ready index in order and stop at LIMIT, however
// many leased, scheduled and finished rows the table holds.
TEST_F(SessionTest, LeaseQueryUsesTheReadyIndexOnALargeTable) {
  {
    pqxx::connection conn(url_);
    pqxx::nontransaction tx(conn);
    InsertMixedJobs(tx);
    tx.exec("ANALYZE spool_jobs");
    tx.exec(absl::StrCat("PREPARE lease_q(text, int, bigint, text, bigint) AS ",
                         StatementSql("lease")));
    std::string plan;
    for (const auto& row :
         tx.exec("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) "
                 "EXECUTE lease_q('q4', 32, 30000000, 'w', 3145728)")) {
      plan += row[0].as<std::string>() + "\n";
    }
    EXPECT_THAT(plan, HasSubstr("spool_jobs_ready_idx")) << plan;
    EXPECT_THAT(plan, Not(HasSubstr("Seq Scan"))) << plan;
    EXPECT_THAT(plan, Not(HasSubstr("Sort"))) << plan;
    EXPECT_THAT(plan, HasSubstr("LockRows")) << plan;
    std::cout << plan;
  }
  auto session = Session::Connect(url_);
  ASSERT_TRUE(session.ok()) << session.status();
  LeaseParams p;
  p.queue = "q4";
  p.max_jobs = 32;
  auto jobs = (*session)->Lease(p);
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 32u);
  for (size_t i = 1; i < jobs->size(); ++i) {
    const LeasedJob& a = (*jobs)[i - 1];
    const LeasedJob& b = (*jobs)[i];
    EXPECT_TRUE(a.priority > b.priority ||
                (a.priority == b.priority && a.run_at <= b.run_at));
  }
}

// Acks go through the primary key even when the statistics are stale and
// claim almost nothing is leased (the partial index on leased rows then looks
// cheap, but walking it costs O(leased jobs) per ack).
TEST_F(SessionTest, AckUsesThePrimaryKeyEvenWithStaleStatistics) {
  pqxx::connection conn(url_);
  pqxx::nontransaction tx(conn);
  tx.exec("INSERT INTO spool_queues (name) VALUES ('q')");
  tx.exec(
      "INSERT INTO spool_jobs (queue, state, run_at, max_attempts, payload)"
      " SELECT 'q', 2, now(), 20, '' FROM generate_series(1, 50000)");
  tx.exec("ANALYZE spool_jobs");  // Statistics: nothing leased.
  tx.exec(
      "UPDATE spool_jobs SET state = 3, lease_id = gen_random_uuid(), "
      "lease_expires_at = now() + interval '1 hour' WHERE id % 2 = 0");
  for (const char* mode : {"auto", "force_generic_plan"}) {
    tx.exec(absl::StrCat("SET plan_cache_mode = ", mode));
    tx.exec("DEALLOCATE ALL");
    tx.exec(absl::StrCat("PREPARE ack_q(int8[], text[], int4[], bytea) AS ",
                         StatementSql("ack")));
    std::string plan;
    for (const auto& row :
         tx.exec("EXPLAIN EXECUTE ack_q('{2,4}', "
                 "'{00000000-0000-4000-8000-000000000000,"
                 "00000000-0000-4000-8000-000000000000}', '{0,0}', '\\x')")) {
      plan += row[0].as<std::string>() + "\n";
    }
    EXPECT_THAT(plan, Not(HasSubstr("spool_jobs_leased_idx"))) << mode << plan;
    EXPECT_THAT(plan, Not(HasSubstr("Seq Scan on spool_jobs"))) << mode << plan;
    EXPECT_THAT(plan, HasSubstr("spool_jobs_pkey")) << mode << plan;
  }
}

// PostgreSQL switches prepared statements to a generic plan after five runs,
// and the generic plan guesses batch sizes. Every batch statement must still
// reach spool_jobs through an index, and never join its inputs back to its
// results in a nested loop (quadratic in the batch): on a 400k-row table, with
// real batch sizes, under plan_cache_mode = force_generic_plan.
TEST_F(SessionTest, BatchStatementsStayIndexedUnderGenericPlans) {
  pqxx::connection conn(url_);
  pqxx::nontransaction tx(conn);
  tx.exec(
      "INSERT INTO spool_queues (name) SELECT 'q' || g "
      "FROM generate_series(0, 19) g");
  InsertMixedJobs(tx);
  tx.exec(R"sql(
INSERT INTO spool_idempotency_keys (queue, key, job_id, expires_at)
SELECT 'q1', 'k' || g, g, now() - interval '1 minute'
FROM generate_series(1, 20000) g)sql");
  // Due work for the maintenance statements: expired leases, due scheduled
  // jobs, dead jobs past a 1-minute retention.
  tx.exec(
      "UPDATE spool_jobs SET lease_expires_at = now() - interval '1 second' "
      "WHERE state = 3 AND id % 100 = 1");
  tx.exec(
      "UPDATE spool_jobs SET run_at = now() - interval '1 second' "
      "WHERE state = 1 AND id % 100 = 2");
  tx.exec("UPDATE spool_queues SET dead_retention = '1 minute'");
  tx.exec("ANALYZE");
  tx.exec("SET plan_cache_mode = force_generic_plan");

  auto explain = [&](const std::string& name, const std::string& types,
                     const std::string& args, bool may_scan_table = false) {
    tx.exec(absl::StrCat("PREPARE ", name, "_q(", types, ") AS ",
                         StatementSql(name)));
    std::string plan;
    for (const auto& row :
         tx.exec(absl::StrCat("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, "
                              "SUMMARY OFF) EXECUTE ",
                              name, "_q(", args, ")"))) {
      plan += row[0].as<std::string>() + "\n";
    }
    if (!may_scan_table) {
      EXPECT_THAT(plan, Not(HasSubstr("Seq Scan on spool_jobs")))
          << name << plan;
    }
    EXPECT_THAT(plan, Not(HasSubstr("Rows Removed by Join Filter")))
        << name << plan;
    return plan;
  };
  auto lease_batch = [&](const std::string& queue, std::string* ids,
                         std::string* leases, std::string* lens) {
    pqxx::result r = tx.exec(absl::StrCat(
        "UPDATE spool_jobs SET state = 3, lease_id = gen_random_uuid() "
        "WHERE id = ANY(ARRAY(SELECT id FROM spool_jobs WHERE queue = '",
        queue, "' AND state = 2 LIMIT 500)) RETURNING id, lease_id"));
    ASSERT_EQ(r.size(), 500u);
    for (const auto& row : r) {
      absl::StrAppend(ids, ids->empty() ? "" : ",", row[0].c_str());
      absl::StrAppend(leases, leases->empty() ? "" : ",", row[1].c_str());
      absl::StrAppend(lens, lens->empty() ? "" : ",", "0");
    }
  };

  std::string plan = explain("lease", "text, int4, int8, text, int8",
                             "'q4', 256, 30000000, 'w', 3145728");
  EXPECT_THAT(plan, HasSubstr("spool_jobs_ready_idx")) << plan;
  EXPECT_THAT(plan, HasSubstr("rows=256")) << plan;

  std::string ids, leases, lens;
  lease_batch("q8", &ids, &leases, &lens);
  plan = explain(
      "ack", "int8[], text[], int4[], bytea",
      absl::StrCat("'{", ids, "}', '{", leases, "}', '{", lens, "}', '\\x'"));
  EXPECT_THAT(plan, HasSubstr("Delete on spool_jobs")) << plan;
  EXPECT_THAT(plan, HasSubstr("rows=500")) << plan;

  ids.clear(), leases.clear(), lens.clear();
  lease_batch("q12", &ids, &leases, &lens);
  plan = explain("release_leases", "int8[], text[]",
                 absl::StrCat("'{", ids, "}', '{", leases, "}'"));
  EXPECT_EQ(QueryCount(tx, absl::StrCat("SELECT count(*) FROM spool_jobs "
                                        "WHERE state = 2 AND id = ANY('{",
                                        ids, "}')")),
            500);

  pqxx::row held = tx.exec1(
      "SELECT id, lease_id FROM spool_jobs WHERE state = 3 "
      "AND lease_expires_at > now() LIMIT 1");
  plan = explain("nack", "int8, text, int8, text, bool, float8",
                 absl::StrCat(held[0].c_str(), ", '", held[1].c_str(),
                              "', -1, 'failed', false, 0.5"));
  EXPECT_THAT(plan, HasSubstr("Update on spool_jobs")) << plan;

  // The depth count finds a queue's ready jobs through their index. Its
  // scheduled and leased jobs have no index by queue: with a quarter of
  // this table scheduled, the planner rightly scans it (see README, "Max
  // depth"; counts are rare).
  plan = explain("count_depths", "text[], int8[]",
                 "'{q0,q1,q2}', '{100000,100000,100000}'",
                 /*may_scan_table=*/true);
  EXPECT_THAT(plan, HasSubstr("spool_jobs_ready_idx")) << plan;
  // A queue full on ready jobs alone (the usual state of a full queue) is
  // never scanned for the rest.
  tx.exec("DEALLOCATE count_depths_q");
  plan = explain("count_depths", "text[], int8[]", "'{q0}', '{100}'",
                 /*may_scan_table=*/true);
  EXPECT_THAT(plan, HasSubstr("spool_jobs_ready_idx")) << plan;
  EXPECT_THAT(plan, HasSubstr("never executed")) << plan;
  // The ready jobs are read in index order and only up to the limit.
  EXPECT_THAT(plan, HasSubstr("Index Only Scan using spool_jobs_ready_idx"))
      << plan;
  EXPECT_THAT(plan, Not(HasSubstr("Bitmap"))) << plan;

  plan = explain("reap_expired", "int4", "500");
  EXPECT_THAT(plan, HasSubstr("spool_jobs_leased_idx")) << plan;
  plan = explain("promote_scheduled", "int4", "500");
  plan = explain("purge_finished", "int4", "500");
  plan = explain("purge_keys", "int4", "500");
  EXPECT_THAT(plan, Not(HasSubstr("Seq Scan on spool_idempotency_keys")))
      << plan;
  // Each did its full batch.
  EXPECT_EQ(QueryCount(tx, "SELECT count(*) FROM spool_idempotency_keys"),
            20000 - 500);
}

TEST_F(SessionTest, ConnectionLossBecomesUnavailable) {
  auto s = Session::Connect(url_);
  ASSERT_TRUE(s.ok());
  {
    pqxx::connection admin(url_);
    pqxx::nontransaction tx(admin);
    tx.exec(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()");
  }
  absl::Status st = (*s)->Ping();
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_TRUE((*s)->broken());
  EXPECT_THAT(std::string(st.message()), Not(HasSubstr("SELECT")));
  auto bad = Session::Connect("postgresql://spool@127.0.0.1:1/none");
  EXPECT_TRUE(absl::IsUnavailable(bad.status())) << bad.status();
}

}  // namespace
}  // namespace spool::store
