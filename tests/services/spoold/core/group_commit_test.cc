// GroupCommit: requests that arrive while a statement runs are combined into
// the next one, at most max_in_flight statements run at once, the row and
// byte budgets split groups, and a session error reaches every request. The
// executor runs drains only when the test says, so every interleaving here
// is exact.
#include "core/group_commit.h"

#include <vector>

#include "fakes.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

using testing::ManualExecutor;
using testing::MockStoreSession;

struct Req {
  int id = 0;
  size_t rows = 1;
  size_t bytes = 0;
};

// Records each group's request ids and the session status it got.
struct Recorder {
  std::vector<std::vector<int>> groups;
  std::vector<absl::Status> statuses;
  int answered = 0;
  GroupCommit<Req>::Process Process() {
    return [this](absl::StatusOr<StoreSession*> s, std::vector<Req>& group) {
      groups.emplace_back();
      for (const Req& r : group) groups.back().push_back(r.id);
      statuses.push_back(s.status());
      answered += static_cast<int>(group.size());
    };
  }
};

GroupCommit<Req>::Size RowsAndBytes() {
  return [](const Req& r) { return std::make_pair(r.rows, r.bytes); };
}

TEST(GroupCommitTest, RequestsArrivingDuringAStatementShareTheNextOne) {
  ManualExecutor executor;
  MockStoreSession session;
  Recorder rec;
  GroupCommit<Req>::Options options;
  options.max_in_flight = 1;
  GroupCommit<Req> gc(&executor, options, RowsAndBytes(), rec.Process());
  gc.Add(Req{0});
  ASSERT_EQ(executor.Pending(), 1u);  // The first request's statement.
  // Arrive while it is queued to run: they wait, no second drain.
  for (int i = 1; i <= 50; ++i) gc.Add(Req{i});
  EXPECT_EQ(executor.Pending(), 1u);
  // The drain takes everything waiting at the time it runs.
  ASSERT_TRUE(executor.RunNext(&session));
  EXPECT_EQ(executor.Pending(), 0u);
  ASSERT_EQ(rec.groups.size(), 1u);
  ASSERT_EQ(rec.groups[0].size(), 51u);
  for (int i = 0; i <= 50; ++i) EXPECT_EQ(rec.groups[0][i], i);  // In order.
  EXPECT_EQ(gc.Counts(), std::make_pair(int64_t{1}, int64_t{51}));
}

TEST(GroupCommitTest, ArrivalsDuringARunningStatementGoInTheNext) {
  ManualExecutor executor;
  MockStoreSession session;
  std::vector<std::vector<int>> groups;
  GroupCommit<Req>* gcp = nullptr;
  GroupCommit<Req>::Options options;
  options.max_in_flight = 1;
  GroupCommit<Req> gc(
      &executor, options, RowsAndBytes(),
      [&](absl::StatusOr<StoreSession*>, std::vector<Req>& group) {
        groups.emplace_back();
        for (const Req& r : group) groups.back().push_back(r.id);
        // While the first statement "runs", more requests arrive.
        if (groups.size() == 1) {
          for (int i = 1; i <= 3; ++i) gcp->Add(Req{i});
        }
      });
  gcp = &gc;
  gc.Add(Req{0});
  ASSERT_TRUE(executor.RunNext(&session));
  // The drain re-queued itself behind other work instead of looping.
  ASSERT_EQ(executor.Pending(), 1u);
  ASSERT_TRUE(executor.RunNext(&session));
  EXPECT_EQ(executor.Pending(), 0u);
  EXPECT_EQ(groups, (std::vector<std::vector<int>>{{0}, {1, 2, 3}}));
}

TEST(GroupCommitTest, AtMostMaxInFlightStatementsAreQueued) {
  ManualExecutor executor;
  MockStoreSession session;
  Recorder rec;
  GroupCommit<Req>::Options options;
  options.max_in_flight = 2;
  GroupCommit<Req> gc(&executor, options, RowsAndBytes(), rec.Process());
  for (int i = 0; i < 10; ++i) gc.Add(Req{i});
  EXPECT_EQ(executor.Pending(), 2u);
  EXPECT_EQ(executor.RunAll(&session), 2);
  // The first drain took all ten; the second found nothing and ended.
  EXPECT_EQ(rec.answered, 10);
  ASSERT_EQ(rec.groups.size(), 1u);
  // Idle again: the next request starts a statement at once.
  gc.Add(Req{10});
  EXPECT_EQ(executor.Pending(), 1u);
}

// Adds `reqs` to an idle GroupCommit with one statement in flight, runs
// every drain, and returns the groups.
std::vector<std::vector<int>> GroupsOf(GroupCommit<Req>::Options options,
                                       const std::vector<Req>& reqs) {
  ManualExecutor executor;
  MockStoreSession session;
  Recorder rec;
  options.max_in_flight = 1;
  GroupCommit<Req> gc(&executor, options, RowsAndBytes(), rec.Process());
  for (const Req& r : reqs) gc.Add(r);
  executor.RunAll(&session);
  return rec.groups;
}

TEST(GroupCommitTest, RowBudgetSplitsGroupsButNeverStarvesABigRequest) {
  GroupCommit<Req>::Options options;
  options.max_rows = 100;
  EXPECT_EQ(GroupsOf(options, {{0, 1},    // 61 rows with the next: together.
                               {1, 60},   //
                               {2, 60},   // Would exceed 100: next group.
                               {3, 500},  // Over the budget alone: own group.
                               {4, 1}}),  // Nothing joins an overfull group.
            (std::vector<std::vector<int>>{{0, 1}, {2}, {3}, {4}}));
}

TEST(GroupCommitTest, ByteBudgetSplitsGroups) {
  GroupCommit<Req>::Options options;
  options.max_bytes = 1000;
  EXPECT_EQ(GroupsOf(options, {{0, 1, 600}, {1, 1, 600}, {2, 1, 300}}),
            (std::vector<std::vector<int>>{{0}, {1, 2}}));
}

TEST(GroupCommitTest, PassesTheSessionErrorToEveryRequest) {
  ManualExecutor executor;
  Recorder rec;
  GroupCommit<Req> gc(&executor, {}, RowsAndBytes(), rec.Process());
  for (int i = 0; i < 10; ++i) gc.Add(Req{i});
  executor.RunAll(absl::UnavailableError("the database is unavailable"));
  EXPECT_EQ(rec.answered, 10);
  for (const absl::Status& s : rec.statuses)
    EXPECT_TRUE(absl::IsUnavailable(s));
}

}  // namespace
}  // namespace spool::core
