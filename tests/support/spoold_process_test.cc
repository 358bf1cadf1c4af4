// Tests SpooldProcess's mechanics against fake_spoold (health only).
#include "tests/support/spoold_process.h"

#include <signal.h>
#include <stdlib.h>

#include <cerrno>
#include <memory>
#include <string>
#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool::testing {
namespace {

using ::grpc::health::v1::HealthCheckResponse;
using ::testing::HasSubstr;

class SpooldProcessTest : public ::testing::Test {
 protected:
  void SetUp() override { UseBinary(SPOOL_FAKE_SPOOLD_PATH); }
  void TearDown() override { unsetenv("SPOOLD_BIN"); }
  static void UseBinary(const char* path) { setenv("SPOOLD_BIN", path, 1); }
};

bool ProcessExists(int pid) { return kill(pid, 0) == 0 || errno != ESRCH; }

TEST_F(SpooldProcessTest, StartsWithTheContractFlagsAndServes) {
  auto spoold = SpooldProcess::Start("postgresql://db.invalid/x",
                                     {"--lease_max_wait=5s"});
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  SpooldProcess& p = **spoold;
  EXPECT_EQ(p.Target(), "127.0.0.1:" + std::to_string(p.Port()));
  EXPECT_GT(p.Pid(), 0);
  EXPECT_TRUE(p.IsRunning());
  absl::StatusOr<SpooldProcess::ServingStatus> health = p.HealthStatus();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);

  const std::string log = p.LogTail();
  EXPECT_THAT(log, HasSubstr("arg: --database_url=postgresql://db.invalid/x"));
  EXPECT_THAT(log, HasSubstr("arg: --listen=" + p.Target()));
  EXPECT_THAT(log, HasSubstr("arg: --migrate\n"));
  EXPECT_THAT(log, HasSubstr("arg: --metrics_listen=\n"));
  EXPECT_THAT(log, HasSubstr("arg: --lease_max_wait=5s"));
  EXPECT_THAT(log, HasSubstr("spoold listening on " + p.Target()));
}

TEST_F(SpooldProcessTest, TerminateReturnsTheExitCode) {
  auto spoold = SpooldProcess::Start("postgresql://db.invalid/x");
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  absl::StatusOr<int> code = (*spoold)->Terminate(absl::Seconds(10));
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_FALSE((*spoold)->IsRunning());
  EXPECT_EQ((*spoold)->Pid(), -1);
  EXPECT_FALSE((*spoold)->Terminate().ok()) << "nothing left to terminate";
}

TEST_F(SpooldProcessTest, Kill9ThenRestartOnTheSamePort) {
  auto spoold = SpooldProcess::Start("postgresql://db.invalid/x");
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  SpooldProcess& p = **spoold;
  const int port = p.Port();
  const int old_pid = p.Pid();
  ASSERT_TRUE(p.Kill9().ok());
  EXPECT_FALSE(ProcessExists(old_pid));
  EXPECT_FALSE(p.HealthStatus(absl::Milliseconds(300)).ok());

  absl::Status restarted = p.Restart();
  ASSERT_TRUE(restarted.ok()) << restarted;
  EXPECT_EQ(p.Port(), port);
  EXPECT_NE(p.Pid(), old_pid);
  absl::StatusOr<SpooldProcess::ServingStatus> health = p.HealthStatus();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);
  // Restart of a running process terminates it first.
  ASSERT_TRUE(p.Restart().ok());
  EXPECT_EQ(p.Port(), port);
  EXPECT_THAT(p.LogTail(), HasSubstr("(run 3)"));
}

TEST_F(SpooldProcessTest, WaitForHealthFollowsTheServer) {
  auto spoold = SpooldProcess::Start("postgresql://db.invalid/x");
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  SpooldProcess& p = **spoold;
  ASSERT_EQ(kill(p.Pid(), SIGUSR1), 0);
  absl::Status s =
      p.WaitForHealth(HealthCheckResponse::NOT_SERVING, absl::Seconds(5));
  EXPECT_TRUE(s.ok()) << s;
  ASSERT_EQ(kill(p.Pid(), SIGUSR2), 0);
  s = p.WaitForHealth(HealthCheckResponse::SERVING, absl::Seconds(5));
  EXPECT_TRUE(s.ok()) << s;
  s = p.WaitForHealth(HealthCheckResponse::NOT_SERVING,
                      absl::Milliseconds(300));
  EXPECT_TRUE(absl::IsDeadlineExceeded(s)) << s;
}

TEST_F(SpooldProcessTest, ExitBeforeServingIsAnErrorWithTheLog) {
  UseBinary("/bin/false");
  auto spoold = SpooldProcess::Start("postgresql://db.invalid/x");
  ASSERT_FALSE(spoold.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(spoold.status())) << spoold.status();
  EXPECT_THAT(spoold.status().message(), HasSubstr("exit code 1"));
}

TEST_F(SpooldProcessTest, MissingBinaryIsNotFound) {
  UseBinary("/nonexistent/spoold");
  auto spoold = SpooldProcess::Start("postgresql://db.invalid/x");
  EXPECT_TRUE(absl::IsNotFound(spoold.status())) << spoold.status();
}

TEST_F(SpooldProcessTest, DestructorKillsTheProcess) {
  int pid = -1;
  {
    auto spoold = SpooldProcess::Start("postgresql://db.invalid/x");
    ASSERT_TRUE(spoold.ok()) << spoold.status();
    pid = (*spoold)->Pid();
    ASSERT_TRUE(ProcessExists(pid));
  }
  EXPECT_FALSE(ProcessExists(pid));
}

TEST_F(SpooldProcessTest, OutlivesTheThreadThatStartedIt) {
  absl::StatusOr<std::unique_ptr<SpooldProcess>> spoold =
      absl::UnknownError("not run");
  std::thread([&] {
    spoold = SpooldProcess::Start("postgresql://db.invalid/x");
  }).join();
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  absl::SleepFor(absl::Milliseconds(200));
  EXPECT_TRUE((*spoold)->IsRunning());
  absl::StatusOr<SpooldProcess::ServingStatus> health =
      (*spoold)->HealthStatus();
  ASSERT_TRUE(health.ok()) << health.status();
  EXPECT_EQ(*health, HealthCheckResponse::SERVING);
}

}  // namespace
}  // namespace spool::testing
