// Enqueue planning, pure: which rows a group of requests inserts, which
// requests a full queue refuses (one by one, in arrival order), how a key
// repeated within the group answers, and what the answers report.
#include "core/enqueue_planner.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

JobInput Job(std::string queue, std::string key = "") {
  JobInput j;
  j.queue = std::move(queue);
  j.payload = "p";
  j.idempotency_key = std::move(key);
  return j;
}

QueueConfigs Configs(int64_t limited_depth = 0) {
  QueueConfigs c;
  c["a"].name = "a";
  c["a"].max_attempts = 7;
  c["a"].idempotency_window = absl::Minutes(3);
  c["limited"].name = "limited";
  c["limited"].max_depth = limited_depth;
  return c;
}

TEST(EnqueuePlannerTest, AppliesQueueDefaultsAndSortsHeaders) {
  std::vector<JobInput> jobs = {Job("a")};
  jobs[0].headers = {{"z", "1"}, {"b", "2"}};
  jobs[0].delay = absl::Seconds(5);
  jobs[0].priority = 3;
  EnqueueRequests requests = {&jobs};
  EnqueuePlan plan;
  PlanEnqueue(requests, Configs(), nullptr, plan);
  ASSERT_EQ(plan.rows.size(), 1u);
  const NewJob& row = plan.rows[0];
  EXPECT_EQ(row.queue, "a");
  EXPECT_EQ(row.max_attempts, 7);
  EXPECT_EQ(row.idempotency_window, absl::Minutes(3));
  EXPECT_EQ(row.delay, absl::Seconds(5));
  EXPECT_EQ(row.priority, 3);
  EXPECT_THAT(row.headers, ElementsAre(Pair("b", "2"), Pair("z", "1")));
}

TEST(EnqueuePlannerTest, KeyRepeatedInAGroupInsertsOneRowAndAnswersDuplicate) {
  std::vector<JobInput> first = {Job("a", "k"), Job("a", "other")};
  std::vector<JobInput> second = {Job("a", "k"), Job("b", "k")};
  EnqueueRequests requests = {&first, &second};
  QueueConfigs configs = Configs();
  configs["b"].name = "b";
  EnqueuePlan plan;
  PlanEnqueue(requests, configs, nullptr, plan);
  // ("a","k") once; the same key on another queue is another job.
  ASSERT_EQ(plan.rows.size(), 3u);
  EXPECT_EQ(plan.slots[1][0].row, -1);
  EXPECT_EQ(plan.slots[1][0].same_as, plan.slots[0][0].row);
  EXPECT_GE(plan.slots[1][1].row, 0);

  std::vector<EnqueueResult> inserted(3);
  for (int i = 0; i < 3; ++i) inserted[i].job_id = 100 + i;
  EnqueueOutcome out = AnswerEnqueue(plan, inserted);
  ASSERT_EQ(out.results.size(), 2u);
  EXPECT_EQ(out.results[0][0].job_id, 100);
  EXPECT_FALSE(out.results[0][0].duplicate);
  EXPECT_EQ(out.results[1][0].job_id, 100);  // The first job with the key.
  EXPECT_TRUE(out.results[1][0].duplicate);
  EXPECT_THAT(out.counts, UnorderedElementsAre(Pair("a", Pair(2, 1)),
                                               Pair("b", Pair(1, 0))));
  EXPECT_THAT(out.ready, UnorderedElementsAre(Pair("a", 2), Pair("b", 1)));
}

TEST(EnqueuePlannerTest, DepthRefusesRequestByRequestInArrivalOrder) {
  // Depth 8 of 10: the first request (2) fills the queue, so the second
  // (3) and the third (1) are refused, each alone; the request for an
  // unlimited queue goes ahead.
  std::vector<JobInput> r0 = {Job("limited"), Job("limited")};
  std::vector<JobInput> r1 = {Job("limited"), Job("limited"), Job("limited")};
  std::vector<JobInput> r2 = {Job("limited")};
  std::vector<JobInput> r3 = {Job("a")};
  EnqueueRequests requests = {&r0, &r1, &r2, &r3};
  QueueConfigs configs = Configs(/*limited_depth=*/10);
  EXPECT_THAT(DepthLimitedWants(requests, configs),
              UnorderedElementsAre(Pair("limited", 6)));
  QueueDepths depths;
  depths["limited"] = QueueDepth{8, 10, true};
  EnqueuePlan plan;
  PlanEnqueue(requests, configs, &depths, plan);
  EXPECT_TRUE(plan.refused[0].ok());
  EXPECT_TRUE(absl::IsResourceExhausted(plan.refused[1]));
  EXPECT_THAT(std::string(plan.refused[1].message()),
              ::testing::HasSubstr("queue limited is full: 10 jobs"));
  EXPECT_TRUE(absl::IsResourceExhausted(plan.refused[2]));
  EXPECT_TRUE(plan.refused[3].ok());
  EXPECT_EQ(plan.rows.size(), 3u);  // r0's two and r3's one.
  // With depths the jobs are copied: planning again (a retried
  // transaction) gives the same rows.
  depths["limited"].depth = 0;
  PlanEnqueue(requests, configs, &depths, plan);
  EXPECT_EQ(plan.rows.size(), 7u);
  for (const absl::Status& s : plan.refused) EXPECT_TRUE(s.ok());
}

TEST(EnqueuePlannerTest, ARefusedRequestLeavesRoomForALaterSmallerOne) {
  std::vector<JobInput> big = {Job("limited"), Job("limited")};
  std::vector<JobInput> small = {Job("limited")};
  EnqueueRequests requests = {&big, &small};
  QueueDepths depths;
  depths["limited"] = QueueDepth{9, 10, true};
  EnqueuePlan plan;
  PlanEnqueue(requests, Configs(10), &depths, plan);
  EXPECT_FALSE(plan.refused[0].ok());
  EXPECT_TRUE(plan.refused[1].ok());
  EXPECT_EQ(plan.rows.size(), 1u);
}

TEST(EnqueuePlannerTest, ScheduledJobsArmTheEarliestWakeUpAndWakeNobody) {
  std::vector<JobInput> jobs = {Job("a"), Job("a"), Job("a")};
  EnqueueRequests requests = {&jobs};
  EnqueuePlan plan;
  PlanEnqueue(requests, Configs(), nullptr, plan);
  const absl::Time t = absl::FromUnixSeconds(1000);
  std::vector<EnqueueResult> inserted(3);
  inserted[0].scheduled_for = t + absl::Seconds(9);
  inserted[1].scheduled_for = t + absl::Seconds(4);
  EnqueueOutcome out = AnswerEnqueue(plan, inserted);
  EXPECT_EQ(out.earliest_scheduled, t + absl::Seconds(4));
  EXPECT_THAT(out.ready, UnorderedElementsAre(Pair("a", 1)));
}

}  // namespace
}  // namespace spool::core
