// SpooldProcess against the real spoold and a TestPostgres database: the
// start-up contract (flags, --migrate, health) and SIGTERM → exit 0.
#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/spoold_process.h"
#include "tests/support/test_postgres.h"

namespace spool::testing {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

class SpooldProcessPgTest : public PostgresTest {};

TEST_F(SpooldProcessPgTest, ServesMigratesRestartsAndExitsZeroOnSigterm) {
  auto spoold = SpooldProcess::Start(database_url_);
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  SpooldProcess& p = **spoold;
  EXPECT_THAT(p.LogTail(), HasSubstr("spoold listening on " + p.Target()));
  absl::StatusOr<SpooldProcess::ServingStatus> health = p.HealthStatus();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);

  // A second replica on the same database (migrations already applied).
  auto replica = SpooldProcess::Start(database_url_);
  ASSERT_TRUE(replica.ok()) << replica.status();
  EXPECT_NE((*replica)->Port(), p.Port());

  ASSERT_TRUE(p.Kill9().ok());
  absl::Status restarted = p.Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;

  absl::StatusOr<int> code = p.Terminate(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << p.LogTail();
  code = (*replica)->Terminate(absl::Seconds(30));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0) << (*replica)->LogTail();
}

}  // namespace
}  // namespace spool::testing
