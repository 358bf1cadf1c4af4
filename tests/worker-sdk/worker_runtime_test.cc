// spool::Worker against an in-memory JobService on loopback: outcome
// mapping, batching, lease extension, failures and shutdown, without
// PostgreSQL. The same behaviours are checked against real spoold in
// worker_pgtest.cc. The fake's lease expiry and, for the timer-driven
// tests (ClockedWorker), the worker's extension schedule, ack flush delay
// and backoff waits run on a ManualClock: time moves when the test says.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "clocked_worker.h"
#include "fake_job_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "manual_clock.h"
#include "spool/worker.h"
#include "test_util.h"

namespace spool::testing {
namespace {

using ::testing::Contains;
using ::testing::Each;
using ::testing::HasSubstr;
using ::testing::Le;
using ::testing::Not;

class WorkerRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_shared<FakeJobService>(clock_);
    server_ = std::make_unique<FakeServer>(service_);
    ASSERT_TRUE(server_->ok());
    observer_ = std::make_shared<RecordingObserver>();
  }

  void TearDown() override {
    // The worker's log helps explain a failure.
    if (!HasFailure() && getenv("SPOOL_TEST_VERBOSE") == nullptr) return;
    absl::MutexLock lock(&log_mu_);
    for (const std::string& line : log_)
      std::fprintf(stderr, "%s\n", line.c_str());
  }

  WorkerOptions Options() {
    WorkerOptions options;
    options.client.targets = {server_->Target()};
    options.worker_id = "test-worker";
    options.observer = observer_;
    options.reconnect_backoff = {absl::Milliseconds(20),
                                 absl::Milliseconds(200), 2.0, 0.2};
    options.log_sink = [this](std::string_view line) {
      absl::MutexLock lock(&log_mu_);
      log_.emplace_back(line);
    };
    return options;
  }

  QueueOptions Queue(int concurrency, absl::Duration vt = absl::Seconds(30)) {
    QueueOptions q;
    q.concurrency = concurrency;
    q.visibility_timeout = vt;
    q.max_wait = absl::Milliseconds(200);
    return q;
  }

  // Waits until the fake server holds job `id` in `state`.
  bool ReachesState(const std::string& id, v1::JobState state,
                    absl::Duration timeout) {
    return Eventually([&] { return service_->GetFakeJob(id)->state == state; },
                      timeout);
  }

  // Moves the manual clock by `step` at every poll until `condition` holds
  // (real-time `timeout`): for waits whose progress needs time to pass
  // (ack flush delay, backoff) without saying how often.
  bool EventuallyAdvancing(absl::Duration step,
                           const std::function<bool()>& condition,
                           absl::Duration timeout = absl::Seconds(20)) {
    return Eventually(
        [&] {
          if (condition()) return true;
          clock_.Advance(step);
          return false;
        },
        timeout);
  }

  // Advances the clock by one extension interval of `vt` (and a little),
  // then waits until the worker made its `calls`-th ExtendLease call.
  bool AdvanceToExtension(absl::Duration vt, int calls) {
    clock_.Advance(vt / 3 + absl::Milliseconds(1));
    return Eventually([&] { return service_->Calls("ExtendLease") >= calls; },
                      absl::Seconds(10));
  }

  bool LogContains(const std::string& text) {
    absl::MutexLock lock(&log_mu_);
    for (const std::string& line : log_) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }

  ManualClock clock_;
  std::shared_ptr<FakeJobService> service_;
  std::unique_ptr<FakeServer> server_;
  std::shared_ptr<RecordingObserver> observer_;
  absl::Mutex log_mu_;
  std::vector<std::string> log_ ABSL_GUARDED_BY(log_mu_);
};

TEST_F(WorkerRuntimeTest, SuccessIsAckedWithResult) {
  const std::string a = service_->AddJob("q", "alpha");
  const std::string b = service_->AddJob("q", "beta");
  Worker worker(Options());
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [](const Job& job) {
                        return Outcome::Success("done:" + job.payload);
                      },
                      Queue(2))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(Eventually(
      [&] { return service_->CountInState(v1::JOB_STATE_SUCCEEDED) == 2; },
      absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->GetFakeJob(a)->result, "done:alpha");
  EXPECT_EQ(service_->GetFakeJob(b)->result, "done:beta");
  EXPECT_EQ(service_->GetFakeJob(a)->acks, 1);
  EXPECT_TRUE(service_->Nacks().empty());
  EXPECT_EQ(observer_->started().size(), 2u);
  EXPECT_EQ(observer_->finished().size(), 2u);
  // Acks are not held back: each batch went out within a few ms of its
  // oldest completion (bound kept generous for loaded machines).
  ASSERT_FALSE(observer_->ack_latencies().empty());
  for (absl::Duration latency : observer_->ack_latencies()) {
    EXPECT_LT(latency, absl::Milliseconds(500));
  }
}

TEST_F(WorkerRuntimeTest, RetryFailAndExceptionBecomeNacks) {
  const std::string retry_later = service_->AddJob("q", "retry-later");
  const std::string retry_backoff = service_->AddJob("q", "retry-backoff");
  const std::string fail = service_->AddJob("q", "fail");
  const std::string boom = service_->AddJob("q", "throw");
  Worker worker(Options());
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [](const Job& job) -> Outcome {
                        if (job.payload == "retry-later") {
                          return Outcome::Retry(absl::Seconds(60), "later");
                        }
                        if (job.payload == "retry-backoff") {
                          return Outcome::Retry("busy");
                        }
                        if (job.payload == "fail") {
                          return Outcome::Fail("poisoned");
                        }
                        throw std::runtime_error("boom");
                      },
                      Queue(4))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(Eventually([&] { return service_->Nacks().size() >= 4; },
                         absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());

  std::map<std::string, FakeJobService::NackRecord> nacks;
  for (const auto& n : service_->Nacks()) nacks.emplace(n.job_id, n);
  ASSERT_EQ(nacks.count(retry_later), 1u);
  EXPECT_EQ(nacks[retry_later].retry_delay, absl::Seconds(60));
  EXPECT_EQ(nacks[retry_later].error, "later");
  EXPECT_FALSE(nacks[retry_later].dead_letter);

  ASSERT_EQ(nacks.count(retry_backoff), 1u);
  EXPECT_FALSE(nacks[retry_backoff].retry_delay.has_value());
  EXPECT_EQ(nacks[retry_backoff].error, "busy");

  ASSERT_EQ(nacks.count(fail), 1u);
  EXPECT_TRUE(nacks[fail].dead_letter);
  EXPECT_EQ(nacks[fail].error, "poisoned");
  EXPECT_EQ(service_->GetFakeJob(fail)->state, v1::JOB_STATE_DEAD);

  ASSERT_GE(nacks.count(boom), 1u);
  EXPECT_EQ(nacks[boom].error, "boom");
  EXPECT_FALSE(nacks[boom].dead_letter);
  EXPECT_EQ(observer_->CountFailures(JobFailure::kHandlerException), 1);
  EXPECT_TRUE(LogContains("event=handler_exception"));
  EXPECT_TRUE(LogContains("error=boom"));
  EXPECT_TRUE(LogContains("event=job_failed"));
  EXPECT_EQ(service_->Calls("Ack"), 0);
}

TEST_F(WorkerRuntimeTest, NeverLeasesMoreThanFreeSlots) {
  constexpr int kConcurrency = 3;
  for (int i = 0; i < 30; ++i) service_->AddJob("q", absl::StrCat(i));
  ConcurrencyGauge gauge;
  Worker worker(Options());
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job&) {
                        gauge.Enter();
                        // Hold the slot until all are busy (or nothing is
                        // left to lease), so the worker is at its limit.
                        Eventually(
                            [&] {
                              return gauge.now() == kConcurrency ||
                                     service_->CountInState(
                                         v1::JOB_STATE_READY) == 0;
                            },
                            absl::Seconds(5));
                        gauge.Exit();
                        return Outcome::Success();
                      },
                      Queue(kConcurrency))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(Eventually(
      [&] { return service_->CountInState(v1::JOB_STATE_SUCCEEDED) == 30; },
      absl::Seconds(20)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(gauge.max(), kConcurrency);
  const std::vector<int> asked = service_->LeaseMaxJobs();
  ASSERT_FALSE(asked.empty());
  EXPECT_THAT(asked, Each(Le(kConcurrency)));
  EXPECT_THAT(asked, Each(::testing::Ge(1)));
}

TEST_F(WorkerRuntimeTest, AcksAreBatched) {
  constexpr int kJobs = 400;
  for (int i = 0; i < kJobs; ++i) service_->AddJob("q", absl::StrCat(i));
  WorkerOptions options = Options();
  options.ack_flush_delay = absl::Milliseconds(5);
  ClockedWorker worker(std::move(options), clock_);
  ASSERT_TRUE(
      worker
          .Register(
              "q", [](const Job&) { return Outcome::Success(); }, Queue(64))
          .ok());
  ASSERT_TRUE(worker.Start().ok());
  // A flush is due only when the clock passes a completion's flush delay.
  EXPECT_TRUE(EventuallyAdvancing(absl::Milliseconds(5), [&] {
    return service_->CountInState(v1::JOB_STATE_SUCCEEDED) == kJobs;
  }));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  const std::vector<int> sizes = service_->AckBatchSizes();
  int total = 0;
  for (int s : sizes) total += s;
  EXPECT_EQ(total, kJobs);
  // Batching happened: far fewer Ack RPCs than jobs, none over 1,000.
  EXPECT_LT(sizes.size(), static_cast<size_t>(kJobs / 4));
  EXPECT_THAT(sizes, Each(Le(1000)));
  EXPECT_FALSE(observer_->ack_batches().empty());
}

TEST_F(WorkerRuntimeTest, AckRetriedWhileServerUnavailable) {
  const std::string id = service_->AddJob("q", "x");
  service_->FailNext("Ack", 3, grpc::StatusCode::UNAVAILABLE);
  ClockedWorker worker(Options(), clock_);
  ASSERT_TRUE(
      worker
          .Register(
              "q", [](const Job&) { return Outcome::Success("r"); }, Queue(1))
          .ok());
  ASSERT_TRUE(worker.Start().ok());
  // Each retry waits out its backoff (20 ms, 40 ms, 80 ms) on the clock.
  EXPECT_TRUE(EventuallyAdvancing(absl::Milliseconds(10), [&] {
    return service_->GetFakeJob(id)->state == v1::JOB_STATE_SUCCEEDED;
  }));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->Calls("Ack"), 4);
  EXPECT_EQ(service_->GetFakeJob(id)->acks, 1);
  EXPECT_TRUE(observer_->failures().empty());
  EXPECT_TRUE(LogContains("event=ack_retry"));
}

TEST_F(WorkerRuntimeTest, AckAppliedButAnswerLostIsNotReportedAsLost) {
  const std::string id = service_->AddJob("q", "x");
  // The first Ack lands but its answer is lost; the retry then meets a
  // finished job. The worker confirms with GetJob instead of crying wolf.
  service_->FailNext("Ack", 1, grpc::StatusCode::UNAVAILABLE,
                     /*after_apply=*/true);
  Worker worker(Options());
  ASSERT_TRUE(
      worker
          .Register(
              "q", [](const Job&) { return Outcome::Success(); }, Queue(1))
          .ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(Eventually([&] { return service_->Calls("Ack") >= 2; },
                         absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->GetFakeJob(id)->acks, 1);
  EXPECT_EQ(observer_->CountFailures(JobFailure::kLeaseLost), 0);
  EXPECT_TRUE(LogContains("event=ack_confirmed_after_retry"));
}

TEST_F(WorkerRuntimeTest, StaleLeaseAckIsReportedAndNotRetried) {
  const std::string id = service_->AddJob("q", "x");
  Worker worker(Options());
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job& job) {
                        // Another worker takes over meanwhile.
                        service_->StealLease(job.id);
                        return Outcome::Success();
                      },
                      Queue(1))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(Eventually(
      [&] { return observer_->CountFailures(JobFailure::kLeaseLost) == 1; },
      absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->Calls("Ack"), 1);
  EXPECT_EQ(service_->GetFakeJob(id)->acks, 0);
  EXPECT_EQ(service_->GetFakeJob(id)->state, v1::JOB_STATE_LEASED);
  EXPECT_TRUE(LogContains("event=lease_lost"));
}

TEST_F(WorkerRuntimeTest, LeaseExtendedWhileHandlerRunsLong) {
  const std::string id = service_->AddJob("q", "slow");
  const absl::Duration vt = absl::Seconds(2);
  std::atomic<int> runs{0};
  absl::Notification started;
  absl::Notification release;
  ClockedWorker worker(Options(), clock_);
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job&) {
                        ++runs;
                        started.Notify();
                        release.WaitForNotificationWithTimeout(
                            absl::Seconds(60));
                        return Outcome::Success();
                      },
                      Queue(2, vt))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  // The handler runs for 10 extension intervals (> 3.25x the visibility
  // timeout, on the clock that also expires the fake's leases).
  for (int i = 1; i <= 10; ++i) {
    ASSERT_TRUE(AdvanceToExtension(vt, i)) << "extension " << i;
  }
  release.Notify();
  EXPECT_TRUE(EventuallyAdvancing(absl::Milliseconds(5), [&] {
    return service_->GetFakeJob(id)->state == v1::JOB_STATE_SUCCEEDED;
  }));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  // Delivered once: the lease was extended.
  EXPECT_EQ(runs.load(), 1);
  EXPECT_EQ(service_->GetFakeJob(id)->attempt, 1);
  EXPECT_GE(service_->Calls("ExtendLease"), 10);
}

TEST_F(WorkerRuntimeTest, LostLeaseDuringRunCancelsTheHandler) {
  const std::string id = service_->AddJob("q", "x");
  absl::Notification started;
  std::atomic<bool> saw_cancel{false};
  ClockedWorker worker(Options(), clock_);
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job& job) {
                        started.Notify();
                        saw_cancel = job.cancellation.WaitForCancellation(
                            absl::Seconds(20));
                        return Outcome::Success();
                      },
                      Queue(1, absl::Seconds(1)))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  service_->StealLease(id);
  // The next extension finds the lease gone.
  EXPECT_TRUE(AdvanceToExtension(absl::Seconds(1), 1));
  EXPECT_TRUE(Eventually([&] { return saw_cancel.load(); }, absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(observer_->CountFailures(JobFailure::kLeaseLost), 1);
  EXPECT_FALSE(observer_->extension_failures().empty());
  // The outcome of a job whose lease is gone is not sent.
  EXPECT_EQ(service_->Calls("Ack"), 0);
}

TEST_F(WorkerRuntimeTest, ExtensionSurvivesTransientFailures) {
  const std::string id = service_->AddJob("q", "x");
  service_->FailNext("ExtendLease", 2, grpc::StatusCode::UNAVAILABLE);
  const absl::Duration vt = absl::Seconds(2);
  absl::Notification started;
  absl::Notification release;
  ClockedWorker worker(Options(), clock_);
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job&) {
                        started.Notify();
                        release.WaitForNotificationWithTimeout(
                            absl::Seconds(60));
                        return Outcome::Success();
                      },
                      Queue(1, vt))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  ASSERT_TRUE(AdvanceToExtension(vt, 1));  // fails
  // A failed extension is retried a quarter interval later, twice.
  clock_.Advance(vt / 12 + absl::Milliseconds(1));
  ASSERT_TRUE(Eventually([&] { return service_->Calls("ExtendLease") >= 2; },
                         absl::Seconds(10)));  // fails
  clock_.Advance(vt / 12 + absl::Milliseconds(1));
  ASSERT_TRUE(Eventually([&] { return service_->Calls("ExtendLease") >= 3; },
                         absl::Seconds(10)));  // succeeds
  // Past the original lease's end (1.5x the visibility timeout).
  for (int i = 4; i <= 6; ++i) ASSERT_TRUE(AdvanceToExtension(vt, i));
  release.Notify();
  EXPECT_TRUE(EventuallyAdvancing(absl::Milliseconds(5), [&] {
    return service_->GetFakeJob(id)->state == v1::JOB_STATE_SUCCEEDED;
  }));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->GetFakeJob(id)->attempt, 1);
  EXPECT_EQ(observer_->extension_failures().size(), 2u);
  EXPECT_EQ(observer_->CountFailures(JobFailure::kLeaseLost), 0);
}

TEST_F(WorkerRuntimeTest, StopCancelsAndHandsBackRunningJobs) {
  const std::string a = service_->AddJob("q", "a");
  const std::string b = service_->AddJob("q", "b");
  std::atomic<int> started{0};
  std::atomic<int> cancelled{0};
  Worker worker(Options());
  ASSERT_TRUE(
      worker
          .Register(
              "q",
              [&](const Job& job) {
                ++started;
                if (job.cancellation.WaitForCancellation(absl::Seconds(30))) {
                  ++cancelled;
                }
                return Outcome::Success();
              },
              Queue(2))
          .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(
      Eventually([&] { return started.load() == 2; }, absl::Seconds(10)));
  const absl::Time stop_at = absl::Now();
  const absl::Status stopped = worker.Stop(absl::Milliseconds(300));
  EXPECT_LT(absl::Now() - stop_at, absl::Seconds(10));
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(stopped.message()), HasSubstr("2 running job(s)"));
  EXPECT_EQ(cancelled.load(), 2);
  // Handed back for immediate redelivery, outcomes ignored (no ack).
  const auto nacks = service_->Nacks();
  ASSERT_EQ(nacks.size(), 2u);
  for (const auto& n : nacks) {
    EXPECT_EQ(n.retry_delay, absl::ZeroDuration());
    EXPECT_FALSE(n.dead_letter);
  }
  EXPECT_EQ(service_->GetFakeJob(a)->state, v1::JOB_STATE_READY);
  EXPECT_EQ(service_->GetFakeJob(b)->state, v1::JOB_STATE_READY);
  EXPECT_EQ(service_->Calls("Ack"), 0);
}

TEST_F(WorkerRuntimeTest, StopIsBoundedWhenTheServerIsGone) {
  service_->AddJob("q", "quick");
  service_->AddJob("q", "stuck");
  absl::Notification server_down;
  std::atomic<int> started{0};
  WorkerOptions options = Options();
  options.shutdown_flush_timeout = absl::Seconds(1);
  options.cancel_grace = absl::Milliseconds(500);
  Worker worker(std::move(options));
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job& job) {
                        ++started;
                        if (job.payload == "quick") {
                          // Finishes once nobody can take its ack.
                          server_down.WaitForNotificationWithTimeout(
                              absl::Seconds(30));
                          return Outcome::Success();
                        }
                        job.cancellation.WaitForCancellation(absl::Seconds(30));
                        return Outcome::Success();
                      },
                      Queue(2))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(
      Eventually([&] { return started.load() == 2; }, absl::Seconds(10)));
  server_->Shutdown();
  server_down.Notify();
  const absl::Time stop_at = absl::Now();
  const absl::Status stopped = worker.Stop(absl::Milliseconds(300));
  // deadline + flush budget + grace + a little; far below the 30 s waits.
  EXPECT_LT(absl::Now() - stop_at, absl::Seconds(8));
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded);
  // Both the undeliverable ack and the undeliverable hand-back are reported.
  EXPECT_EQ(observer_->CountFailures(JobFailure::kSettleFailed), 2);
  EXPECT_TRUE(LogContains("event=ack_abandoned"));
  EXPECT_TRUE(LogContains("event=nack_abandoned"));
}

TEST_F(WorkerRuntimeTest, StopLetsHandlersFinishWithinDeadline) {
  const std::string id = service_->AddJob("q", "x");
  absl::Notification started;
  Worker worker(Options());
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job&) {
                        started.Notify();
                        // Still running when Stop() begins.
                        Eventually(
                            [&] { return LogContains("worker_stopping"); },
                            absl::Seconds(10));
                        return Outcome::Success("finished");
                      },
                      Queue(1))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());
  // The earned ack was flushed before Stop returned.
  EXPECT_EQ(service_->GetFakeJob(id)->state, v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(service_->GetFakeJob(id)->result, "finished");
  EXPECT_FALSE(worker.running());
  // Idempotent.
  EXPECT_TRUE(worker.Stop(absl::Seconds(1)).ok());
}

TEST_F(WorkerRuntimeTest, StopFromAHandlerIsRefusedNotADeadlock) {
  const std::string id = service_->AddJob("q", "x");
  Worker worker(Options());
  absl::Status from_handler;
  absl::Notification handled;
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&](const Job&) {
                        from_handler = worker.Stop(absl::Seconds(1));
                        handled.Notify();
                        return Outcome::Success("ok");
                      },
                      Queue(1))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(handled.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(absl::IsFailedPrecondition(from_handler)) << from_handler;
  EXPECT_THAT(std::string(from_handler.message()), HasSubstr("another thread"));
  // Still running, and the job was settled as usual.
  EXPECT_TRUE(worker.running());
  EXPECT_TRUE(ReachesState(id, v1::JOB_STATE_SUCCEEDED, absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
}

TEST_F(WorkerRuntimeTest, IdleStopIsQuickEvenDuringALongPoll) {
  Worker worker(Options());
  QueueOptions q = Queue(1);
  q.max_wait = absl::Seconds(20);
  ASSERT_TRUE(worker
                  .Register(
                      "q", [](const Job&) { return Outcome::Success(); }, q)
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  ASSERT_TRUE(Eventually([&] { return service_->Calls("Lease") >= 1; },
                         absl::Seconds(10)));
  const absl::Time stop_at = absl::Now();
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());
  EXPECT_LT(absl::Now() - stop_at, absl::Seconds(3));
}

TEST_F(WorkerRuntimeTest, ReconnectsAfterServerRestart) {
  Worker worker(Options());
  std::atomic<int> handled{0};
  ASSERT_TRUE(worker
                  .Register(
                      "q",
                      [&handled](const Job&) {
                        ++handled;
                        return Outcome::Success();
                      },
                      Queue(2))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  service_->AddJob("q", "before");
  ASSERT_TRUE(
      Eventually([&] { return handled.load() == 1; }, absl::Seconds(10)));
  server_->Shutdown();
  EXPECT_TRUE(Eventually([&] { return observer_->lease_errors() > 0; },
                         absl::Seconds(10)));
  service_->AddJob("q", "during");
  server_->Restart();
  ASSERT_TRUE(server_->ok());
  EXPECT_TRUE(
      Eventually([&] { return handled.load() == 2; }, absl::Seconds(15)));
  EXPECT_TRUE(Eventually(
      [&] { return service_->CountInState(v1::JOB_STATE_SUCCEEDED) == 2; },
      absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_TRUE(LogContains("event=lease_failed"));
  EXPECT_TRUE(LogContains("event=lease_recovered"));
}

TEST_F(WorkerRuntimeTest, ClassHandlersWork) {
  class Upper : public Handler {
   public:
    Outcome Handle(const Job& job) override {
      std::string r = job.payload;
      for (char& c : r) c = static_cast<char>(std::toupper(c));
      return Outcome::Success(r);
    }
  };
  const std::string id = service_->AddJob("q", "abc");
  Worker worker(Options());
  ASSERT_TRUE(worker.Register("q", std::make_shared<Upper>(), Queue(1)).ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(ReachesState(id, v1::JOB_STATE_SUCCEEDED, absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->GetFakeJob(id)->result, "ABC");
}

TEST_F(WorkerRuntimeTest, SeveralQueuesAreServedIndependently) {
  const std::string a = service_->AddJob("alpha", "1");
  const std::string b = service_->AddJob("beta", "2");
  Worker worker(Options());
  ASSERT_TRUE(
      worker
          .Register(
              "alpha",
              [](const Job& j) { return Outcome::Success("A" + j.queue); },
              Queue(1))
          .ok());
  ASSERT_TRUE(
      worker
          .Register(
              "beta",
              [](const Job& j) { return Outcome::Success("B" + j.queue); },
              Queue(1))
          .ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(Eventually(
      [&] { return service_->CountInState(v1::JOB_STATE_SUCCEEDED) == 2; },
      absl::Seconds(10)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
  EXPECT_EQ(service_->GetFakeJob(a)->result, "Aalpha");
  EXPECT_EQ(service_->GetFakeJob(b)->result, "Bbeta");
}

TEST_F(WorkerRuntimeTest, RegisterValidatesOptions) {
  Worker worker(Options());
  auto ok = [](const Job&) { return Outcome::Success(); };
  EXPECT_EQ(worker.Register("q", ok, Queue(0)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker.Register("q", ok, Queue(1, absl::Milliseconds(10))).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker.Register("", ok, Queue(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker.Register("bad name", ok, Queue(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker.Register("-leading-dash", ok, Queue(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker.Register(std::string(129, 'q'), ok, Queue(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(worker.Register("q", HandlerFunc(), Queue(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(worker.Register("q", ok, Queue(1)).ok());
  EXPECT_TRUE(worker.Register("Queue_1.v2-x", ok, Queue(1)).ok());
  EXPECT_EQ(worker.Register("q", ok, Queue(1)).code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_EQ(worker.Register("other", ok, Queue(1)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(worker.Start().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(worker.Stop(absl::Seconds(5)).ok());
}

TEST_F(WorkerRuntimeTest, StartNeedsAQueueAndATarget) {
  Worker no_queue(Options());
  EXPECT_EQ(no_queue.Start().code(), absl::StatusCode::kFailedPrecondition);
  WorkerOptions options = Options();
  options.client.targets.clear();
  Worker no_target(std::move(options));
  ASSERT_TRUE(
      no_target
          .Register(
              "q", [](const Job&) { return Outcome::Success(); }, Queue(1))
          .ok());
  EXPECT_EQ(no_target.Start().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WorkerRuntimeTest, DestructorStopsARunningWorker) {
  const std::string id = service_->AddJob("q", "x");
  absl::Notification started;
  {
    Worker worker(Options());
    ASSERT_TRUE(worker
                    .Register(
                        "q",
                        [&](const Job& job) {
                          started.Notify();
                          job.cancellation.WaitForCancellation(
                              absl::Seconds(30));
                          return Outcome::Success();
                        },
                        Queue(1))
                    .ok());
    ASSERT_TRUE(worker.Start().ok());
    ASSERT_TRUE(started.WaitForNotificationWithTimeout(absl::Seconds(10)));
  }
  // The running job was cancelled and handed back.
  EXPECT_EQ(service_->GetFakeJob(id)->state, v1::JOB_STATE_READY);
}

}  // namespace
}  // namespace spool::testing
