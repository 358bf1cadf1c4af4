// GroupCommit: requests that arrive while a statement runs are combined into
// the next one, every request is answered once, and the budgets split groups.
#include "core/group_commit.h"

#include <atomic>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

struct Req {
  int id = 0;
  size_t rows = 1;
};

// A pool whose database is unreachable still runs tasks (with an error
// status), which is all the batching logic needs.
store::SessionPool::Options UnreachablePool() {
  store::SessionPool::Options o;
  o.database_url = "postgresql://nobody@127.0.0.1:1/none?connect_timeout=1";
  o.size = 1;
  return o;
}

TEST(GroupCommitTest, RequestsArrivingDuringAStatementShareTheNextOne) {
  store::SessionPool pool(UnreachablePool());
  absl::Notification first_running, release_first;
  std::vector<std::vector<int>> groups;
  absl::Mutex mu;
  std::atomic<int> answered{0};
  GroupCommit<Req>::Options options;
  options.max_in_flight = 1;
  GroupCommit<Req> gc(
      &pool, options, [](const Req& r) { return std::make_pair(r.rows, 0ul); },
      [&](absl::StatusOr<store::Session*>, std::vector<Req>& group) {
        {
          absl::MutexLock lock(&mu);
          groups.emplace_back();
          for (const Req& r : group) groups.back().push_back(r.id);
        }
        if (!first_running.HasBeenNotified()) {
          first_running.Notify();
          release_first.WaitForNotification();
        }
        answered += static_cast<int>(group.size());
      });
  gc.Add(Req{0});
  first_running.WaitForNotification();
  for (int i = 1; i <= 50; ++i) gc.Add(Req{i});
  release_first.Notify();
  absl::Time until = absl::Now() + absl::Seconds(10);
  while (answered.load() < 51 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  pool.Shutdown();
  ASSERT_EQ(answered.load(), 51);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0], std::vector<int>{0});
  ASSERT_EQ(groups[1].size(), 50u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(groups[1][i], i + 1);  // In order.
  EXPECT_EQ(gc.Counts(), std::make_pair(int64_t{2}, int64_t{51}));
}

TEST(GroupCommitTest, RowBudgetSplitsGroupsButNeverStarvesABigRequest) {
  store::SessionPool pool(UnreachablePool());
  absl::Notification first_running, release_first;
  std::vector<size_t> group_rows;
  absl::Mutex mu;
  std::atomic<int> answered{0};
  GroupCommit<Req>::Options options;
  options.max_in_flight = 1;
  options.max_rows = 100;
  GroupCommit<Req> gc(
      &pool, options, [](const Req& r) { return std::make_pair(r.rows, 0ul); },
      [&](absl::StatusOr<store::Session*>, std::vector<Req>& group) {
        size_t rows = 0;
        for (const Req& r : group) rows += r.rows;
        {
          absl::MutexLock lock(&mu);
          group_rows.push_back(rows);
        }
        if (!first_running.HasBeenNotified()) {
          first_running.Notify();
          release_first.WaitForNotification();
        }
        answered += static_cast<int>(group.size());
      });
  gc.Add(Req{0, 1});
  first_running.WaitForNotification();
  gc.Add(Req{1, 60});
  gc.Add(Req{2, 60});   // Would exceed 100 with the first: next group.
  gc.Add(Req{3, 500});  // Larger than the budget alone: a group of its own.
  release_first.Notify();
  absl::Time until = absl::Now() + absl::Seconds(10);
  while (answered.load() < 4 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  pool.Shutdown();
  ASSERT_EQ(answered.load(), 4);
  EXPECT_EQ(group_rows, (std::vector<size_t>{1, 60, 60, 500}));
}

TEST(GroupCommitTest, PassesTheConnectionErrorToEveryRequest) {
  store::SessionPool pool(UnreachablePool());
  std::atomic<int> unavailable{0};
  GroupCommit<Req> gc(
      &pool, {}, [](const Req& r) { return std::make_pair(r.rows, 0ul); },
      [&](absl::StatusOr<store::Session*> s, std::vector<Req>& group) {
        if (absl::IsUnavailable(s.status())) {
          unavailable += static_cast<int>(group.size());
        }
      });
  for (int i = 0; i < 10; ++i) gc.Add(Req{i});
  absl::Time until = absl::Now() + absl::Seconds(10);
  while (unavailable.load() < 10 && absl::Now() < until) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  pool.Shutdown();
  EXPECT_EQ(unavailable.load(), 10);
}

}  // namespace
}  // namespace spool::core
