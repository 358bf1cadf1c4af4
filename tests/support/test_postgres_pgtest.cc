// Self-test of TestPostgres: start, databases per test, stop/start, restart.
#include <libpq-fe.h>

#include <filesystem>
#include <memory>
#include <pqxx/pqxx>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/test_postgres.h"

namespace spool::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

std::string QueryOne(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  return tx.exec1(sql)[0].c_str();
}

void Exec(const std::string& url, const std::string& sql) {
  pqxx::connection conn(url);
  pqxx::work tx(conn);
  tx.exec(sql);
  tx.commit();
}

bool Accepts(const std::string& url) {
  return PQping(url.c_str()) == PQPING_OK;
}

TEST(TestPostgresTest, DatabasesAreIsolatedAndSurviveStopStartAndRestart) {
  absl::StatusOr<std::unique_ptr<TestPostgres>> started = TestPostgres::Start();
  ASSERT_TRUE(started.ok()) << started.status();
  TestPostgres& pg = **started;
  ASSERT_TRUE(pg.IsRunning());
  EXPECT_EQ(pg.AdminUrl(), "postgresql://spool@127.0.0.1:" +
                               std::to_string(pg.Port()) + "/postgres");

  // Durable, loopback-only settings.
  EXPECT_EQ(QueryOne(pg.AdminUrl(), "SHOW fsync"), "on");
  EXPECT_EQ(QueryOne(pg.AdminUrl(), "SHOW synchronous_commit"), "on");
  EXPECT_EQ(QueryOne(pg.AdminUrl(), "SHOW max_connections"), "200");
  EXPECT_EQ(QueryOne(pg.AdminUrl(), "SHOW listen_addresses"), "127.0.0.1");
  EXPECT_EQ(QueryOne(pg.AdminUrl(), "SHOW server_version_num").substr(0, 2),
            "15");

  absl::StatusOr<std::string> a = pg.CreateDatabase();
  absl::StatusOr<std::string> b = pg.CreateDatabase();
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_NE(*a, *b);
  EXPECT_THAT(*a, StartsWith("postgresql://spool@127.0.0.1:"));
  EXPECT_EQ(pg.UrlFor(QueryOne(*a, "SELECT current_database()")), *a);
  EXPECT_EQ(pg.UrlFor(QueryOne(*b, "SELECT current_database()")), *b);

  Exec(*a, "CREATE TABLE t (v text); INSERT INTO t VALUES ('in a')");
  Exec(*b, "CREATE TABLE t (v text); INSERT INTO t VALUES ('in b')");
  EXPECT_EQ(QueryOne(*a, "SELECT v FROM t"), "in a");
  EXPECT_EQ(QueryOne(*b, "SELECT v FROM t"), "in b");
  EXPECT_EQ(QueryOne(*a, "SELECT count(*) FROM t"), "1");

  // Stop: nothing answers; start again: the same port, the data is there.
  const int port = pg.Port();
  ASSERT_TRUE(pg.Stop().ok());
  EXPECT_FALSE(pg.IsRunning());
  EXPECT_FALSE(Accepts(*a));
  EXPECT_THROW(QueryOne(*a, "SELECT 1"), pqxx::broken_connection);
  EXPECT_TRUE(pg.Stop().ok()) << "stopping twice is fine";

  absl::Status again = pg.StartAgain();
  ASSERT_TRUE(again.ok()) << again << "\n" << pg.LogTail();
  EXPECT_EQ(pg.Port(), port);
  EXPECT_TRUE(pg.IsRunning());
  EXPECT_EQ(QueryOne(*a, "SELECT v FROM t"), "in a");
  EXPECT_EQ(QueryOne(*b, "SELECT v FROM t"), "in b");

  // Restart drops open connections; new ones work.
  pqxx::connection held(*a);
  absl::Status restarted = pg.Restart();
  ASSERT_TRUE(restarted.ok()) << restarted << "\n" << pg.LogTail();
  EXPECT_ANY_THROW({
    pqxx::nontransaction tx(held);
    tx.exec("SELECT 1");
  });
  Exec(*a, "INSERT INTO t VALUES ('after restart')");
  EXPECT_EQ(QueryOne(*a, "SELECT count(*) FROM t"), "2");
}

TEST(TestPostgresTest, DestructorStopsServerAndRemovesDirectory) {
  std::string dir;
  std::string url;
  {
    absl::StatusOr<std::unique_ptr<TestPostgres>> pg = TestPostgres::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    dir = (*pg)->Dir();
    url = (*pg)->AdminUrl();
    ASSERT_TRUE(std::filesystem::exists(dir + "/data/PG_VERSION"));
    ASSERT_TRUE(Accepts(url));
    EXPECT_THAT((*pg)->LogTail(), HasSubstr("starting postgres on port"));
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_FALSE(Accepts(url));
}

TEST(SharedPostgresTest, OneServerPerBinaryWithFreshDatabases) {
  TestPostgres* first = SharedPostgres();
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(SharedPostgres(), first);
  absl::StatusOr<std::string> url = first->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  EXPECT_EQ(QueryOne(*url,
                     "SELECT count(*) FROM pg_tables "
                     "WHERE schemaname = 'public'"),
            "0");
}

class PostgresFixtureTest : public PostgresTest {};

TEST_F(PostgresFixtureTest, GivesEachTestItsOwnDatabase) {
  ASSERT_NE(postgres_, nullptr);
  EXPECT_EQ(postgres_, SharedPostgres());
  EXPECT_EQ(
      postgres_->UrlFor(QueryOne(database_url_, "SELECT current_database()")),
      database_url_);
  Exec(database_url_, "CREATE TABLE only_here (id int)");
}

TEST_F(PostgresFixtureTest, DoesNotSeeOtherTestsTables) {
  EXPECT_EQ(QueryOne(database_url_, "SELECT to_regclass('only_here') IS NULL"),
            "t");
}

}  // namespace
}  // namespace spool::testing
