// spoold's command line: bad flags stop it at once with exit code 2 and a
// message naming the flag, before it touches a database.
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/spoold_process.h"
#include "tests/support/subprocess.h"

namespace spool::testing {
namespace {

using ::testing::HasSubstr;

struct Outcome {
  int exit_code = -1;
  std::string output;
};

using Env = std::vector<std::pair<std::string, std::string>>;

// Runs the spoold binary with exactly `args` and `env` (no other SPOOL_
// variable) to completion.
Outcome RunSpooldArgs(std::vector<std::string> args, Env env) {
  Outcome run;
  auto binary = SpooldProcess::BinaryPath();
  EXPECT_TRUE(binary.ok()) << binary.status();
  if (!binary.ok()) return run;
  auto dir = MakeTempDir("spoold-main-test");
  EXPECT_TRUE(dir.ok()) << dir.status();
  if (!dir.ok()) return run;
  SpawnOptions options;
  options.argv = {*binary};
  for (std::string& a : args) options.argv.push_back(std::move(a));
  options.set_env = std::move(env);
  options.drop_env_prefixes = {"SPOOL_"};
  options.output_path = *dir + "/out.log";
  auto status = RunToCompletion(options, absl::Seconds(30));
  EXPECT_TRUE(status.ok()) << status.status();
  if (status.ok()) run.exit_code = *status;
  run.output = ReadFileTail(options.output_path, 1 << 16);
  return run;
}

// Runs spoold to completion with `flags` (and `env`) and no reachable
// database.
Outcome RunSpoold(std::vector<std::string> flags, Env env = {}) {
  std::vector<std::string> args = {"--database_url=postgresql://db.invalid/x",
                                   "--listen=127.0.0.1:0", "--metrics_listen="};
  for (std::string& f : flags) args.push_back(std::move(f));
  return RunSpooldArgs(std::move(args), std::move(env));
}

std::string EnvName(const std::string& flag) {
  return "SPOOL_" + absl::AsciiStrToUpper(flag);
}

TEST(SpooldFlagsTest, EachBadValueIsRefusedWithItsFlagNamed) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"--db_pool_size=0", "--db_pool_size must be at least 1 (got 0)"},
      {"--max_payload_bytes=-5", "--max_payload_bytes must be at least 1"},
      {"--max_lease_bytes=0", "--max_lease_bytes must be at least 1"},
      {"--metrics_max_queues=0", "--metrics_max_queues must be at least 1"},
      {"--group_commit_in_flight=0",
       "--group_commit_in_flight must be at least 1"},
      {"--max_wait=0s", "--max_wait must be more than 0 (got 0)"},
      {"--maintenance_interval=0s",
       "--maintenance_interval must be more than 0"},
      {"--retention_interval=-1s", "--retention_interval must be more than 0"},
      {"--fallback_poll=0s", "--fallback_poll must be more than 0"},
      {"--metrics_refresh=5ms",
       "--metrics_refresh must be at least 10ms (got 5ms)"},
      {"--notify_interval=-1ms", "--notify_interval must be at least 0"},
      {"--queue_config_ttl=-1s", "--queue_config_ttl must be at least 0"},
      {"--shutdown_grace=-1s", "--shutdown_grace must be at least 0"},
      {"--min_client_ping_interval=-1s",
       "--min_client_ping_interval must be at least 0"},
  };
  for (const auto& [flag, message] : cases) {
    SCOPED_TRACE(flag);
    Outcome run = RunSpoold({flag});
    EXPECT_EQ(run.exit_code, 2);
    EXPECT_THAT(run.output, HasSubstr("spoold: " + message));
    EXPECT_THAT(run.output, ::testing::Not(HasSubstr("starting spoold")));
  }
}

TEST(SpooldFlagsTest, EveryBadFlagIsReportedAtOnce) {
  Outcome run = RunSpoold({"--db_pool_size=0", "--max_wait=0s"});
  EXPECT_EQ(run.exit_code, 2);
  EXPECT_THAT(run.output, HasSubstr("--db_pool_size must be at least 1"));
  EXPECT_THAT(run.output, HasSubstr("--max_wait must be more than 0"));
}

TEST(SpooldFlagsTest, BadValuesFromTheEnvironmentAreRefusedToo) {
  Outcome bad_syntax = RunSpoold({}, {{"SPOOL_MAX_WAIT", "soon"}});
  EXPECT_EQ(bad_syntax.exit_code, 2);
  EXPECT_THAT(bad_syntax.output, HasSubstr("spoold: bad SPOOL_MAX_WAIT"));

  Outcome bad_value = RunSpoold({}, {{"SPOOL_DB_POOL_SIZE", "0"}});
  EXPECT_EQ(bad_value.exit_code, 2);
  EXPECT_THAT(bad_value.output, HasSubstr("--db_pool_size must be at least 1"));
}

TEST(SpooldFlagsTest, ZeroWhereZeroMeansNoneIsAccepted) {
  // notify_interval=0 (notify every time), queue_config_ttl=0 (no cache) and
  // shutdown_grace=0 are valid: spoold goes on to the database, which here
  // does not exist, so it fails later with exit code 1, not 2.
  Outcome run = RunSpoold(
      {"--notify_interval=0s", "--queue_config_ttl=0s", "--shutdown_grace=0s"});
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_THAT(run.output, HasSubstr("starting spoold"));
}

TEST(SpooldFlagsTest, UnknownCommandIsExplained) {
  Outcome unknown = RunSpoold({"serve-please"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.output, HasSubstr("unknown command 'serve-please'"));
}

TEST(SpooldFlagsTest, FlagsCommandPrintsEffectiveValuesWithPasswordMasked) {
  Outcome run = RunSpooldArgs(
      {"flags", "--database_url=postgresql://spool:hunter2@db.invalid/x"},
      {{"SPOOL_MAX_WAIT", "12s"}});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_THAT(run.output, HasSubstr("--max_wait=12s\n"));
  EXPECT_THAT(run.output, HasSubstr("--db_pool_size=4\n"));
  EXPECT_THAT(run.output, HasSubstr("--database_url=postgresql://spool:***@"));
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("hunter2")));
  // Only spoold's own flags, not absl's built-in ones.
  EXPECT_THAT(run.output, ::testing::Not(HasSubstr("--flagfile=")));
}

// Every flag spoold has (as `spoold flags` lists them, no list kept here)
// is read from SPOOL_<NAME>: a value its type cannot parse is refused naming
// the variable, and any other value shows up as the flag's value (or is
// refused by the flag's own check, naming the flag).
TEST(SpooldFlagsTest, EveryFlagIsReadFromItsEnvironmentVariable) {
  Outcome listing = RunSpooldArgs({"flags"}, {});
  ASSERT_EQ(listing.exit_code, 0) << listing.output;
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(listing.output, '\n')) {
    if (!absl::ConsumePrefix(&line, "--")) continue;
    names.emplace_back(line.substr(0, line.find('=')));
  }
  ASSERT_GE(names.size(), 20u) << listing.output;
  EXPECT_THAT(names, ::testing::Contains("database_url"));
  EXPECT_THAT(names, ::testing::Contains("min_client_ping_interval"));

  Env garbage;
  for (const std::string& name : names) {
    garbage.emplace_back(EnvName(name), "x-" + name);
  }
  Outcome all = RunSpooldArgs({"flags"}, garbage);
  EXPECT_EQ(all.exit_code, 2) << all.output;
  for (const std::string& name : names) {
    SCOPED_TRACE(name);
    if (absl::StrContains(all.output, "spoold: bad " + EnvName(name) + ":")) {
      continue;  // Not a string: refused, so it was read.
    }
    Outcome one = RunSpooldArgs({"flags"}, {{EnvName(name), "x-" + name}});
    EXPECT_TRUE(
        absl::StrContains(one.output, "--" + name + "=x-" + name + "\n") ||
        (one.exit_code == 2 && absl::StrContains(one.output, "--" + name)))
        << one.output;
  }
}

}  // namespace
}  // namespace spool::testing
