// Crash behaviour: kill -9 of spoold while jobs are leased or being enqueued,
// a PostgreSQL restart under load, and graceful SIGTERM.
#include <signal.h>

#include <atomic>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "tests/services/spoold/api_helpers.h"

namespace spool::testing {
namespace {

using Serving = grpc::health::v1::HealthCheckResponse;

// Four threads enqueuing one job at a time on `queue` until Stop(): the ids
// the server acknowledged, and how the other calls failed.
class Producers {
 public:
  Producers(SpooldProcess* server, const std::string& queue,
            absl::Duration call_deadline) {
    for (int p = 0; p < 4; ++p) {
      threads_.emplace_back([this, server, queue, call_deadline] {
        Api api(server->NewChannel());
        while (!stop_.load()) {
          v1::JobSpec spec;
          spec.set_queue(queue);
          v1::EnqueueResponse resp;
          grpc::Status s = api.Enqueue(spec, &resp, call_deadline);
          {
            absl::MutexLock lock(&mu_);
            if (s.ok()) {
              acknowledged_.insert(resp.job_id());
              continue;
            }
            ++failures_;
            if (s.error_code() != grpc::StatusCode::UNAVAILABLE) {
              ++not_unavailable_;
            }
          }
          // Paces retries while the server is down (not a synchronisation).
          absl::SleepFor(absl::Milliseconds(20));
        }
      });
    }
  }
  ~Producers() { Stop(); }

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  std::set<std::string> acknowledged() {
    absl::MutexLock lock(&mu_);
    return acknowledged_;
  }
  int failures() {
    absl::MutexLock lock(&mu_);
    return failures_;
  }
  // Failures with a code other than UNAVAILABLE.
  int not_unavailable() {
    absl::MutexLock lock(&mu_);
    return not_unavailable_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  absl::Mutex mu_;
  std::set<std::string> acknowledged_ ABSL_GUARDED_BY(mu_);
  int failures_ ABSL_GUARDED_BY(mu_) = 0;
  int not_unavailable_ ABSL_GUARDED_BY(mu_) = 0;
};

// With metrics, so tests can read spool_long_polls_waiting.
class CrashTest : public SpooldWithMetricsTest {};

TEST_F(CrashTest, Kill9WhileJobsAreLeasedLosesNoJob) {
  std::set<std::string> ids;
  for (int i = 0; i < 50; ++i) ids.insert(api_->MustEnqueue("crash", "x"));
  auto leased =
      api_->LeaseJobs("crash", 20, absl::ZeroDuration(), absl::Seconds(2));
  ASSERT_EQ(leased.size(), 20u);
  ASSERT_TRUE(server_->Kill9().ok());
  ASSERT_TRUE(server_->Restart().ok()) << server_->LogTail();
  Api api(server_->Channel());
  std::set<std::string> seen;
  int redelivered = 0;
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (seen.size() < ids.size() && absl::Now() < until) {
    auto jobs = api.LeaseJobs("crash", 50, absl::Seconds(1));
    for (const auto& j : jobs) {
      EXPECT_TRUE(seen.insert(j.job_id()).second) << j.job_id();
      if (j.attempt() == 2) ++redelivered;
      EXPECT_EQ(api.AckOne(j.job_id(), j.lease_id()), 0);
    }
  }
  EXPECT_EQ(seen, ids);
  EXPECT_EQ(redelivered, 20);
  EXPECT_EQ(QueryInt(url_, "SELECT count(*) FROM spool_jobs"), 0);
}

TEST_F(CrashTest, Kill9DuringEnqueuesKeepsEveryAcknowledgedJob) {
  Producers producers(server_.get(), "enqcrash", absl::Seconds(2));
  // Killed while enqueues are flowing...
  ASSERT_TRUE(WaitUntil([&] { return producers.acknowledged().size() > 10; },
                        absl::Seconds(30), "10 acknowledged enqueues"));
  ASSERT_TRUE(server_->Kill9().ok());
  // ...and the producers saw the crash before they stop.
  ASSERT_TRUE(WaitUntil([&] { return producers.failures() > 0; },
                        absl::Seconds(30), "an enqueue failing after kill -9"));
  producers.Stop();
  const std::set<std::string> acknowledged = producers.acknowledged();
  ASSERT_GT(acknowledged.size(), 10u);
  // Every job the server acknowledged is committed.
  EXPECT_EQ(CountExistingJobs(url_, acknowledged),
            static_cast<int64_t>(acknowledged.size()));
}

TEST_F(CrashTest, PostgresRestartUnderLoadRecoversWithoutRestartingSpoold) {
  TestPostgres* pg = SharedPostgres();
  Producers producers(server_.get(), "pgrestart", absl::Seconds(5));
  const int pid = server_->Pid();
  ASSERT_TRUE(WaitUntil([&] { return !producers.acknowledged().empty(); },
                        absl::Seconds(30), "a first acknowledged enqueue"));
  ASSERT_TRUE(pg->Stop().ok());
  EXPECT_TRUE(
      server_->WaitForHealth(Serving::NOT_SERVING, absl::Seconds(15)).ok())
      << server_->LogTail();
  // The producers see the outage while PostgreSQL is down.
  EXPECT_TRUE(WaitUntil([&] { return producers.failures() > 0; },
                        absl::Seconds(30), "an enqueue failing in the outage"));
  ASSERT_TRUE(pg->StartAgain().ok()) << pg->LogTail();
  EXPECT_TRUE(server_->WaitForHealth(Serving::SERVING, absl::Seconds(15)).ok())
      << server_->LogTail();
  const size_t before = producers.acknowledged().size();
  EXPECT_TRUE(
      WaitUntil([&] { return producers.acknowledged().size() > before; },
                absl::Seconds(30), "an acknowledged enqueue after the outage"));
  producers.Stop();
  const std::set<std::string> acknowledged = producers.acknowledged();
  EXPECT_EQ(server_->Pid(), pid);             // Same process throughout.
  EXPECT_GT(producers.failures(), 0);         // The outage was seen...
  EXPECT_EQ(producers.not_unavailable(), 0);  // ...as UNAVAILABLE...
  EXPECT_GT(acknowledged.size(), before);     // ...and enqueues work again.
  // Leases work again too, and every acknowledged job is there. A call cut
  // off with the connection may still have committed (UNAVAILABLE says the
  // outcome is unknown), so a few more rows than acknowledgements are fine;
  // never fewer.
  EXPECT_FALSE(api_->LeaseJobs("pgrestart", 1, absl::Seconds(5)).empty());
  EXPECT_EQ(CountExistingJobs(url_, acknowledged),
            static_cast<int64_t>(acknowledged.size()));
  const int64_t rows = QueryInt(url_, "SELECT count(*) FROM spool_jobs");
  EXPECT_GE(rows, static_cast<int64_t>(acknowledged.size()));
  EXPECT_LE(rows,
            static_cast<int64_t>(acknowledged.size()) + producers.failures());
}

TEST_F(CrashTest, SigtermReturnsWaitingPollsEmptyAndExitsZero) {
  std::vector<std::thread> waiters;
  std::atomic<int> empty_ok{0};
  constexpr int kWaiters = 5;
  for (int i = 0; i < kWaiters; ++i) {
    waiters.emplace_back([&] {
      Api api(server_->Channel());
      v1::LeaseRequest req;
      req.set_queue("term");
      *req.mutable_wait() = ToProtoDuration(absl::Seconds(25));
      v1::LeaseResponse resp;
      grpc::Status s = api.Lease(req, &resp);
      if (s.ok() && resp.jobs_size() == 0) ++empty_ok;
    });
  }
  // SIGTERM only once all five are parked, so the test shows parked polls
  // being ended, not calls refused on their way in. (No ASSERT before the
  // joins: the waiter threads must end first.)
  EXPECT_TRUE(WaitForLongPollsWaiting(MustMetricsPort(), kWaiters))
      << server_->LogTail();
  absl::Time start = absl::Now();
  auto code = server_->Terminate(absl::Seconds(20));
  for (auto& t : waiters) t.join();
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_EQ(*code, 0);
  EXPECT_EQ(empty_ok.load(), kWaiters);
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
}

}  // namespace
}  // namespace spool::testing
