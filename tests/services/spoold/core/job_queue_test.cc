// The queue core's own logic, deterministic: a manual clock, an executor
// that runs tasks when the test says, and a scripted store session. Covers
// long-poll bookkeeping (wait, wake on enqueue, timeout, cancel while the
// lease query runs, shutdown), enqueue retries and errors reaching every
// caller, notification coalescing and maintenance scheduling.
#include "core/job_queue.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/health_monitor.h"
#include "core/maintenance.h"
#include "core/notifier.h"
#include "core/queue_config_cache.h"
#include "fakes.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

using ::testing::_;
using ::testing::HasSubstr;
using ::testing::Invoke;
using testing::ManualClock;
using testing::ManualExecutor;
using testing::MockStoreSession;
using ::testing::NiceMock;
using ::testing::Return;

// Keeps a callback's last answer.
template <typename T>
struct Answer {
  std::optional<absl::StatusOr<T>> got;
  Callback<T> Fn() {
    return [this](absl::StatusOr<T> r) { got = std::move(r); };
  }
};

class CountingObserver : public Observer {
 public:
  void OnLongPollTimeout(const std::string&) override { ++timeouts; }
  void OnLeasesReleased(const std::string&, int64_t jobs) override {
    released += jobs;
  }
  int timeouts = 0;
  int64_t released = 0;
};

LeasedJob Leased(int64_t id) {
  LeasedJob j;
  j.job_id = id;
  j.lease_id = "lease-" + std::to_string(id);
  j.queue = "q";
  return j;
}

JobInput NewInput(std::string queue = "q") {
  JobInput j;
  j.queue = std::move(queue);
  j.payload = "x";
  return j;
}

class JobQueueTest : public ::testing::Test {
 protected:
  JobQueueTest() {
    store_.SetQuietDefaults();
    JobQueueOptions o;
    o.replica_id = "r1";
    queue_ = std::make_unique<JobQueue>(&executor_, o, &observer_, &clock_);
  }

  std::shared_ptr<LeaseCall> LeaseWaiting(Answer<std::vector<LeasedJob>>& a,
                                          absl::Duration wait) {
    LeaseInput in;
    in.queue = "q";
    in.wait = wait;
    return queue_->Lease(in, absl::InfiniteFuture(), a.Fn());
  }

  std::vector<JobInput> OneJob() {
    std::vector<JobInput> jobs;
    jobs.push_back(NewInput());
    return jobs;
  }

  ManualClock clock_;
  ManualExecutor executor_;
  NiceMock<MockStoreSession> store_;
  CountingObserver observer_;
  std::unique_ptr<JobQueue> queue_;
};

TEST_F(JobQueueTest, LongPollWaitsThenWakesOnEnqueueWithoutTimePassing) {
  EXPECT_CALL(store_, Lease(_))
      .WillOnce(Return(std::vector<LeasedJob>()))
      .WillOnce(Return(std::vector<LeasedJob>{Leased(7)}));
  Answer<std::vector<LeasedJob>> lease;
  LeaseWaiting(lease, absl::Seconds(10));
  executor_.RunAll(&store_);
  EXPECT_EQ(queue_->WaitingLongPolls(), 1);
  EXPECT_FALSE(lease.got.has_value());

  Answer<std::vector<EnqueueResult>> enq;
  queue_->Enqueue(OneJob(), false, enq.Fn());
  executor_.RunAll(&store_);  // The insert, then the woken lease query.
  ASSERT_TRUE(enq.got.has_value());
  EXPECT_TRUE(enq.got->ok());
  ASSERT_TRUE(lease.got.has_value());
  ASSERT_TRUE(lease.got->ok());
  ASSERT_EQ((*lease.got)->size(), 1u);
  EXPECT_EQ((*lease.got)->front().job_id, 7);
  EXPECT_EQ(queue_->WaitingLongPolls(), 0);
}

TEST_F(JobQueueTest, LongPollTimesOutOnTheClockWithNoJobs) {
  Answer<std::vector<LeasedJob>> lease;
  LeaseWaiting(lease, absl::Seconds(10));
  executor_.RunAll(&store_);
  clock_.Advance(absl::Seconds(9));
  EXPECT_FALSE(lease.got.has_value());
  EXPECT_EQ(queue_->WaitingLongPolls(), 1);
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(lease.got.has_value());
  ASSERT_TRUE(lease.got->ok());
  EXPECT_TRUE((*lease.got)->empty());
  EXPECT_EQ(observer_.timeouts, 1);
  EXPECT_EQ(queue_->WaitingLongPolls(), 0);
}

TEST_F(JobQueueTest, CancelWhileTheLeaseQueryRunsReleasesItsJobs) {
  std::shared_ptr<LeaseCall> call;
  EXPECT_CALL(store_, Lease(_)).WillOnce(Invoke([&](const LeaseParams&) {
    call->Cancel();  // The client went away while the query ran.
    return absl::StatusOr<std::vector<LeasedJob>>(
        std::vector<LeasedJob>{Leased(7), Leased(8)});
  }));
  EXPECT_CALL(store_, ReleaseLeases(_))
      .WillOnce(Invoke([](const std::vector<LeasedJob>& jobs) {
        EXPECT_EQ(jobs.size(), 2u);
        EXPECT_EQ(jobs[0].lease_id, "lease-7");
        return absl::OkStatus();
      }));
  Answer<std::vector<LeasedJob>> lease;
  call = LeaseWaiting(lease, absl::Seconds(10));
  executor_.RunAll(&store_);
  ASSERT_TRUE(lease.got.has_value());
  EXPECT_TRUE(absl::IsCancelled(lease.got->status()));
  EXPECT_EQ(observer_.released, 2);
}

TEST_F(JobQueueTest, ShutdownEndsWaitersEmptyAndLaterPollsReturnAtOnce) {
  Answer<std::vector<LeasedJob>> a, b;
  LeaseWaiting(a, absl::Seconds(10));
  LeaseWaiting(b, absl::Seconds(10));
  executor_.RunAll(&store_);
  EXPECT_EQ(queue_->WaitingLongPolls(), 2);
  queue_->BeginShutdown();
  for (auto* x : {&a, &b}) {
    ASSERT_TRUE(x->got.has_value());
    ASSERT_TRUE(x->got->ok());
    EXPECT_TRUE((*x->got)->empty());
  }
  EXPECT_EQ(queue_->WaitingLongPolls(), 0);
  Answer<std::vector<LeasedJob>> c;
  LeaseWaiting(c, absl::Seconds(10));
  executor_.RunAll(&store_);
  ASSERT_TRUE(c.got.has_value());
  EXPECT_EQ(queue_->WaitingLongPolls(), 0);
}

TEST_F(JobQueueTest, UnavailableMidBatchAnswersEveryCaller) {
  std::vector<Answer<std::vector<EnqueueResult>>> answers(3);
  for (auto& a : answers) queue_->Enqueue(OneJob(), false, a.Fn());
  executor_.RunAll(absl::UnavailableError("the database is unavailable"));
  for (auto& a : answers) {
    ASSERT_TRUE(a.got.has_value());
    EXPECT_TRUE(absl::IsUnavailable(a.got->status()));
  }
}

TEST_F(JobQueueTest, AbortedEnqueueIsRetriedOnce) {
  EXPECT_CALL(store_, Enqueue(_))
      .WillOnce(Return(absl::AbortedError("serialization failure")))
      .WillOnce(
          Return(std::vector<EnqueueResult>{EnqueueResult{5, false, {}}}));
  Answer<std::vector<EnqueueResult>> a;
  queue_->Enqueue(OneJob(), false, a.Fn());
  executor_.RunAll(&store_);
  ASSERT_TRUE(a.got.has_value());
  ASSERT_TRUE(a.got->ok());
  EXPECT_EQ((*a.got)->front().job_id, 5);
}

TEST_F(JobQueueTest, AbortedTwiceReachesTheCaller) {
  EXPECT_CALL(store_, Enqueue(_))
      .Times(2)
      .WillRepeatedly(Return(absl::AbortedError("serialization failure")));
  Answer<std::vector<EnqueueResult>> a;
  queue_->Enqueue(OneJob(), false, a.Fn());
  executor_.RunAll(&store_);
  ASSERT_TRUE(a.got.has_value());
  EXPECT_TRUE(absl::IsAborted(a.got->status()));
}

TEST_F(JobQueueTest, BatchTooLargeIsRefusedBeforeAnyStorageWork) {
  std::vector<JobInput> jobs(queue_->limits().max_batch_jobs + 1, NewInput());
  Answer<std::vector<EnqueueResult>> a;
  queue_->Enqueue(std::move(jobs), true, a.Fn());
  ASSERT_TRUE(a.got.has_value());
  EXPECT_TRUE(absl::IsInvalidArgument(a.got->status()));
  EXPECT_THAT(std::string(a.got->status().message()), HasSubstr("per call"));
  EXPECT_EQ(executor_.Pending(), 0u);
}

TEST_F(JobQueueTest, RefusedNackIsWordedByTheFencingRule) {
  EXPECT_CALL(store_, Nack(_))
      .WillOnce(Return(absl::FailedPreconditionError("fenced")));
  JobLease now;
  now.job_id = 12;
  now.state = JobState::kLeased;
  now.lease_id = "someone-else";
  EXPECT_CALL(store_, GetJobLease(12)).WillOnce(Return(now));
  NackInput in;
  in.job_id = "12";
  in.lease_id = "6f1c2f5e-8a9b-4c3d-9e8f-0a1b2c3d4e5f";
  Answer<NackResult> a;
  queue_->Nack(in, a.Fn());
  executor_.RunAll(&store_);
  ASSERT_TRUE(a.got.has_value());
  EXPECT_TRUE(absl::IsFailedPrecondition(a.got->status()));
  EXPECT_THAT(std::string(a.got->status().message()),
              HasSubstr("leased by a newer attempt"));
}

// --- Notifier: coalescing of cross-replica NOTIFY ---

TEST(NotifierTest, ABurstCostsOneNotifyAndTheIntervalIsRespected) {
  ManualClock clock;
  ManualExecutor executor;
  NiceMock<MockStoreSession> store;
  std::vector<std::string> sent;
  ON_CALL(store, Notify("spool_jobs", _))
      .WillByDefault(Invoke([&](const std::string&, const std::string& p) {
        sent.push_back(p);
        return absl::OkStatus();
      }));
  Notifier notifier(&executor, &clock,
                    {"spool_jobs", "r1", absl::Milliseconds(10)});
  notifier.Publish("a");
  // While the first send is queued, the rest of the burst waits for it.
  for (int i = 0; i < 50; ++i) notifier.Publish("a");
  EXPECT_EQ(executor.Pending(), 1u);
  executor.RunAll(&store);
  EXPECT_EQ(sent, std::vector<std::string>{"r1\na"});
  // Within the interval: armed on the clock, not sent.
  notifier.Publish("b");
  notifier.Publish("c");
  EXPECT_EQ(executor.Pending(), 0u);
  clock.Advance(absl::Milliseconds(9));
  EXPECT_EQ(executor.Pending(), 0u);
  clock.Advance(absl::Milliseconds(1));
  executor.RunAll(&store);
  ASSERT_EQ(sent.size(), 2u);
  EXPECT_TRUE(sent[1] == "r1\nb\nc" || sent[1] == "r1\nc\nb") << sent[1];
}

TEST(NotifierTest, ParseIgnoresThisReplicasOwnPayloads) {
  ManualClock clock;
  ManualExecutor executor;
  Notifier notifier(&executor, &clock, {"spool_jobs", "r1", {}});
  EXPECT_TRUE(notifier.Parse("r1\na").empty());
  EXPECT_EQ(notifier.Parse("r2\na\n\nb"), (std::vector<std::string>{"a", "b"}));
}

// --- Maintenance scheduling ---

class MaintenanceTest : public ::testing::Test {
 protected:
  MaintenanceTest()
      : maintenance_(&executor_, &clock_, &observer_, Options(),
                     [this](const std::string& q, int64_t n) {
                       ready_.emplace_back(q, n);
                     }) {
    store_.SetQuietDefaults();
  }
  static Maintenance::Options Options() {
    Maintenance::Options o;
    o.interval = absl::Seconds(1);
    o.retention_interval = absl::Seconds(30);
    o.batch = 100;
    return o;
  }
  ManualClock clock_;
  ManualExecutor executor_;
  NiceMock<MockStoreSession> store_;
  Observer observer_;
  std::vector<std::pair<std::string, int64_t>> ready_;
  Maintenance maintenance_;
};

TEST_F(MaintenanceTest, RetentionRunsEveryRetentionInterval) {
  EXPECT_CALL(store_, PurgeFinished(_)).Times(2);
  EXPECT_CALL(store_, ReapExpiredLeases(_)).Times(31);
  maintenance_.Start();
  clock_.RunDue();  // First pass: with retention.
  executor_.RunAll(&store_);
  for (int i = 0; i < 30; ++i) {  // 29 passes without, the 30th with.
    clock_.Advance(absl::Seconds(1));
    executor_.RunAll(&store_);
  }
  maintenance_.Stop();
}

TEST_F(MaintenanceTest, ADueScheduledJobArmsAWakeUp) {
  const absl::Time due = clock_.Now() + absl::Milliseconds(300);
  EXPECT_CALL(store_, NextScheduledRunAt())
      .WillOnce(Return(std::optional<absl::Time>(due)))
      .WillRepeatedly(Return(std::optional<absl::Time>()));
  EXPECT_CALL(store_, PromoteScheduled(_))
      .WillOnce(Return(QueueCounts()))
      .WillOnce(Return(QueueCounts{{"q", 1}}));
  maintenance_.Start();
  clock_.RunDue();
  executor_.RunAll(&store_);
  EXPECT_EQ(clock_.NextTimer(), due);  // Before the 1 s periodic pass.
  clock_.Advance(absl::Milliseconds(300));
  executor_.RunAll(&store_);
  EXPECT_EQ(ready_, (std::vector<std::pair<std::string, int64_t>>{{"q", 1}}));
  maintenance_.Stop();
}

TEST_F(MaintenanceTest, ReapedLeasesWakeTheirQueue) {
  ReapResult reaped;
  reaped.made_ready = {{"q", 3}};
  reaped.total = 3;
  EXPECT_CALL(store_, ReapExpiredLeases(_))
      .WillOnce(Return(reaped))
      .WillRepeatedly(Return(ReapResult()));
  maintenance_.Start();
  clock_.RunDue();
  executor_.RunAll(&store_);
  EXPECT_EQ(ready_, (std::vector<std::pair<std::string, int64_t>>{{"q", 3}}));
  maintenance_.Stop();
}

// --- Queue settings cache and health ---

TEST(QueueConfigCacheTest, ReadsTheStoreAgainOnlyAfterTheTtl) {
  ManualClock clock;
  NiceMock<MockStoreSession> store;
  store.SetQuietDefaults();
  EXPECT_CALL(store, EnsureQueue("q")).Times(2);
  QueueConfigCache cache(&clock, absl::Seconds(5));
  ASSERT_TRUE(cache.Get(&store, "q").ok());
  clock.Advance(absl::Seconds(4));
  ASSERT_TRUE(cache.Get(&store, "q").ok());  // Cached.
  clock.Advance(absl::Seconds(1));
  ASSERT_TRUE(cache.Get(&store, "q").ok());  // Expired: read again.
}

TEST(QueueConfigCacheTest, AFailedReadIsNotCached) {
  ManualClock clock;
  NiceMock<MockStoreSession> store;
  EXPECT_CALL(store, EnsureQueue("q"))
      .WillOnce(Return(absl::UnavailableError("down")))
      .WillOnce(Return(QueueConfig{}));
  QueueConfigCache cache(&clock, absl::Seconds(5));
  EXPECT_TRUE(absl::IsUnavailable(cache.Get(&store, "q").status()));
  EXPECT_TRUE(cache.Get(&store, "q").ok());
}

TEST(HealthMonitorTest, ReportsChangesOnlyAndPingsEveryInterval) {
  ManualClock clock;
  ManualExecutor executor;
  NiceMock<MockStoreSession> store;
  EXPECT_CALL(store, Ping())
      .WillOnce(Return(absl::OkStatus()))
      .WillOnce(Return(absl::OkStatus()))
      .WillOnce(Return(absl::UnavailableError("gone")));
  HealthMonitor health(&executor, &clock, absl::Seconds(1));
  std::vector<bool> changes;
  health.SetCallback([&](bool h) { changes.push_back(h); });
  health.Start();
  executor.RunAll(&store);
  EXPECT_TRUE(health.Healthy());
  clock.Advance(absl::Seconds(1));
  executor.RunAll(&store);  // Still healthy: no callback.
  clock.Advance(absl::Seconds(1));
  executor.RunAll(&store);
  EXPECT_FALSE(health.Healthy());
  EXPECT_EQ(changes, (std::vector<bool>{true, false}));
  health.Stop();
  clock.Advance(absl::Seconds(1));
  EXPECT_EQ(executor.Pending(), 0u);  // Stopped: no more pings.
}

// --- The manual clock itself (every test above relies on it) ---

TEST(ManualClockTest, FiresDueTimersInTimeOrderIncludingOnesTheyArm) {
  ManualClock clock;
  const absl::Time t0 = clock.Now();
  std::vector<int> ran;
  clock.Schedule(t0 + absl::Seconds(3), [&] { ran.push_back(3); });
  clock.Schedule(t0 + absl::Seconds(1), [&] {
    ran.push_back(1);
    clock.Schedule(clock.Now() + absl::Seconds(1), [&] { ran.push_back(2); });
  });
  const Clock::TimerId cancelled =
      clock.Schedule(t0 + absl::Seconds(2), [&] { ran.push_back(-1); });
  EXPECT_TRUE(clock.Cancel(cancelled));
  EXPECT_FALSE(clock.Cancel(cancelled));
  clock.Advance(absl::Seconds(2));
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(2));
  clock.Shutdown();
  clock.Advance(absl::Seconds(5));
  EXPECT_EQ(ran, (std::vector<int>{1, 2}));  // Dropped at shutdown.
}

}  // namespace
}  // namespace spool::core
