// Pure logic of the worker SDK: backoff, ack batching, outcome mapping,
// target planning, log formatting, conversions, cancellation.
#include <csignal>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ack_buffer.h"
#include "backoff.h"
#include "connection.h"
#include "convert.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "log.h"
#include "settle.h"
#include "spool/job.h"
#include "spool/outcome.h"
#include "spool/worker.h"

namespace spool::internal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// ---- Backoff -------------------------------------------------------------

TEST(BackoffDelayTest, GrowsExponentiallyAndCaps) {
  BackoffPolicy policy{absl::Milliseconds(100), absl::Seconds(1), 2.0, 0.0};
  EXPECT_EQ(BackoffDelay(policy, 0, 0.5), absl::Milliseconds(100));
  EXPECT_EQ(BackoffDelay(policy, 1, 0.5), absl::Milliseconds(200));
  EXPECT_EQ(BackoffDelay(policy, 2, 0.5), absl::Milliseconds(400));
  EXPECT_EQ(BackoffDelay(policy, 3, 0.5), absl::Milliseconds(800));
  EXPECT_EQ(BackoffDelay(policy, 4, 0.5), absl::Seconds(1));
  // No overflow for huge attempt numbers.
  EXPECT_EQ(BackoffDelay(policy, 10000, 0.5), absl::Seconds(1));
}

TEST(BackoffDelayTest, JitterStaysWithinBounds) {
  BackoffPolicy policy{absl::Seconds(1), absl::Seconds(10), 2.0, 0.2};
  EXPECT_EQ(BackoffDelay(policy, 0, 0.0), absl::Milliseconds(800));
  EXPECT_EQ(BackoffDelay(policy, 0, 1.0), absl::Milliseconds(1200));
  EXPECT_EQ(BackoffDelay(policy, 0, 0.5), absl::Seconds(1));
  // The cap applies before jitter, so delays spread around it too.
  EXPECT_EQ(BackoffDelay(policy, 20, 1.0), absl::Seconds(12));
}

TEST(BackoffDelayTest, NonsensePolicyIsTamed) {
  BackoffPolicy policy{absl::Milliseconds(-5), absl::Milliseconds(-1), 0.1,
                       7.0};
  const absl::Duration d = BackoffDelay(policy, 3, 0.9);
  EXPECT_GE(d, absl::ZeroDuration());
  EXPECT_LE(d, absl::Milliseconds(1));
}

TEST(BackoffTest, RandomDelaysGrowAndResetRestarts) {
  Backoff backoff({absl::Milliseconds(10), absl::Seconds(1), 2.0, 0.2});
  const absl::Duration first = backoff.Next();
  EXPECT_GE(first, absl::Milliseconds(8));
  EXPECT_LE(first, absl::Milliseconds(12));
  backoff.Next();
  backoff.Next();
  const absl::Duration fourth = backoff.Next();
  EXPECT_GE(fourth, absl::Milliseconds(64));  // 80 ms - 20 %
  EXPECT_EQ(backoff.attempt(), 4);
  backoff.Reset();
  EXPECT_LE(backoff.Next(), absl::Milliseconds(12));
}

// ---- Ack batching ----------------------------------------------------------

TEST(AckBufferTest, WaitsForFlushDelayThenFlushesAll) {
  AckBuffer<int> buffer(1000, absl::Milliseconds(5));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  EXPECT_EQ(buffer.NextFlushTime(), absl::InfiniteFuture());
  buffer.Add(1, t0);
  buffer.Add(2, t0 + absl::Milliseconds(1));
  buffer.Add(3, t0 + absl::Milliseconds(4));
  EXPECT_EQ(buffer.NextFlushTime(), t0 + absl::Milliseconds(5));
  EXPECT_FALSE(buffer.FlushDue(t0 + absl::Milliseconds(4)));
  EXPECT_TRUE(buffer.Take(t0 + absl::Milliseconds(4), false, nullptr).empty());
  absl::Time oldest;
  EXPECT_THAT(buffer.Take(t0 + absl::Milliseconds(5), false, &oldest),
              ElementsAre(1, 2, 3));
  EXPECT_EQ(oldest, t0);
  EXPECT_TRUE(buffer.empty());
}

TEST(AckBufferTest, FullBatchIsDueAtOnceAndCappedAtMax) {
  AckBuffer<int> buffer(1000, absl::Seconds(10));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 2500; ++i) buffer.Add(i, t0);
  EXPECT_TRUE(buffer.FlushDue(t0));
  std::vector<int> first = buffer.Take(t0, false, nullptr);
  ASSERT_EQ(first.size(), 1000u);
  EXPECT_EQ(first.front(), 0);
  EXPECT_EQ(first.back(), 999);
  EXPECT_EQ(buffer.Take(t0, false, nullptr).size(), 1000u);
  // 500 left: not a full batch, so not due until the delay passes.
  EXPECT_FALSE(buffer.FlushDue(t0));
  EXPECT_EQ(buffer.Take(t0, /*force=*/true, nullptr).size(), 500u);
}

TEST(AckBufferTest, RequeuedBatchGoesFirstInOrderAndIsDue) {
  AckBuffer<int> buffer(3, absl::Milliseconds(5));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  buffer.Add(1, t0);
  buffer.Add(2, t0);
  buffer.Add(3, t0);
  buffer.Add(4, t0 + absl::Milliseconds(2));
  std::vector<int> batch = buffer.Take(t0, false, nullptr);
  ASSERT_THAT(batch, ElementsAre(1, 2, 3));
  buffer.Add(5, t0 + absl::Milliseconds(3));
  buffer.Requeue(batch, t0);
  EXPECT_TRUE(buffer.FlushDue(t0 + absl::Milliseconds(5)));
  EXPECT_THAT(buffer.Take(t0 + absl::Milliseconds(5), false, nullptr),
              ElementsAre(1, 2, 3));
  EXPECT_THAT(buffer.Take(t0 + absl::Milliseconds(8), false, nullptr),
              ElementsAre(4, 5));
}

// ---- Outcome mapping -------------------------------------------------------

TEST(SettleActionTest, SuccessIsAckWithResult) {
  SettleAction a = ToSettleAction(Outcome::Success("thumb.png"));
  EXPECT_EQ(a.kind, SettleAction::Kind::kAck);
  EXPECT_EQ(a.result, "thumb.png");
  EXPECT_FALSE(a.dead_letter);
}

TEST(SettleActionTest, RetryWithoutDelayUsesQueueBackoff) {
  SettleAction a = ToSettleAction(Outcome::Retry("flaky"));
  EXPECT_EQ(a.kind, SettleAction::Kind::kNack);
  EXPECT_FALSE(a.retry_delay.has_value());
  EXPECT_EQ(a.error, "flaky");
  EXPECT_FALSE(a.dead_letter);
}

TEST(SettleActionTest, RetryWithDelayKeepsItAndClampsNegative) {
  SettleAction a = ToSettleAction(Outcome::Retry(absl::Seconds(7), "later"));
  ASSERT_TRUE(a.retry_delay.has_value());
  EXPECT_EQ(*a.retry_delay, absl::Seconds(7));
  SettleAction b = ToSettleAction(Outcome::Retry(absl::Seconds(-3)));
  ASSERT_TRUE(b.retry_delay.has_value());
  EXPECT_EQ(*b.retry_delay, absl::ZeroDuration());
}

TEST(SettleActionTest, FailIsDeadLetter) {
  SettleAction a = ToSettleAction(Outcome::Fail("poisoned"));
  EXPECT_EQ(a.kind, SettleAction::Kind::kNack);
  EXPECT_TRUE(a.dead_letter);
  EXPECT_EQ(a.error, "poisoned");
}

TEST(SettleActionTest, HandBackIsImmediateRetry) {
  SettleAction a = HandBackAction("stopping");
  EXPECT_EQ(a.kind, SettleAction::Kind::kNack);
  ASSERT_TRUE(a.retry_delay.has_value());
  EXPECT_EQ(*a.retry_delay, absl::ZeroDuration());
  EXPECT_FALSE(a.dead_letter);
}

std::exception_ptr Capture(void (*thrower)()) {
  try {
    thrower();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

TEST(OutcomeFromExceptionTest, StdExceptionMessageBecomesRetryError) {
  Outcome o = OutcomeFromException(
      Capture([] { throw std::runtime_error("disk full"); }));
  EXPECT_TRUE(o.is_retry());
  EXPECT_EQ(o.error(), "disk full");
  EXPECT_FALSE(o.retry_delay().has_value());
}

TEST(OutcomeFromExceptionTest, NonStdExceptionsStillRetry) {
  Outcome a = OutcomeFromException(Capture([] { throw 42; }));
  EXPECT_TRUE(a.is_retry());
  EXPECT_THAT(a.error(), HasSubstr("unknown exception"));
  Outcome b =
      OutcomeFromException(Capture([] { throw std::string("text thrown"); }));
  EXPECT_EQ(b.error(), "text thrown");
}

TEST(ExtensionIntervalTest, IsAThirdOfTheVisibilityTimeout) {
  EXPECT_EQ(ExtensionInterval(absl::Seconds(30)), absl::Seconds(10));
  EXPECT_EQ(ExtensionInterval(absl::Seconds(3)), absl::Seconds(1));
  EXPECT_EQ(ExtensionInterval(absl::Milliseconds(30)), absl::Milliseconds(100));
}

TEST(ClassifyTest, ItemCodes) {
  EXPECT_EQ(ClassifyItemCode(0), ItemVerdict::kOk);
  EXPECT_EQ(ClassifyItemCode(9), ItemVerdict::kLeaseLost);
  EXPECT_EQ(ClassifyItemCode(5), ItemVerdict::kNotFound);
  EXPECT_EQ(ClassifyItemCode(3), ItemVerdict::kRejected);
}

TEST(ClassifyTest, TransientCodes) {
  EXPECT_TRUE(IsTransient(absl::StatusCode::kUnavailable));
  EXPECT_TRUE(IsTransient(absl::StatusCode::kDeadlineExceeded));
  EXPECT_FALSE(IsTransient(absl::StatusCode::kFailedPrecondition));
  EXPECT_FALSE(IsTransient(absl::StatusCode::kInvalidArgument));
  EXPECT_TRUE(IsUnreachable(absl::StatusCode::kUnavailable));
  EXPECT_FALSE(IsUnreachable(absl::StatusCode::kInternal));
}

TEST(ClientRetryRuleTest, UnsentCallsAlwaysRetry) {
  EXPECT_TRUE(ShouldRetryClientCall(absl::StatusCode::kUnavailable,
                                    /*idempotent=*/false, /*sent=*/false));
}

TEST(ClientRetryRuleTest, SentNonIdempotentCallsNeverRetry) {
  EXPECT_FALSE(
      ShouldRetryClientCall(absl::StatusCode::kUnavailable, false, true));
  EXPECT_FALSE(
      ShouldRetryClientCall(absl::StatusCode::kDeadlineExceeded, false, true));
}

TEST(ClientRetryRuleTest, AbortedMeansNothingWasWrittenSoAnyCallRetries) {
  EXPECT_TRUE(ShouldRetryClientCall(absl::StatusCode::kAborted, false, true));
  EXPECT_TRUE(ShouldRetryClientCall(absl::StatusCode::kAborted, true, true));
}

TEST(ClientRetryRuleTest, IdempotentCallsRetryOnlyUnavailable) {
  EXPECT_TRUE(
      ShouldRetryClientCall(absl::StatusCode::kUnavailable, true, true));
  EXPECT_FALSE(
      ShouldRetryClientCall(absl::StatusCode::kInvalidArgument, true, true));
  EXPECT_FALSE(ShouldRetryClientCall(absl::StatusCode::kNotFound, true, true));
}

// ---- Targets
// -----------------------------------------------------------------

TEST(PlanChannelTargetsTest, SingleTargetPassesThrough) {
  EXPECT_THAT(PlanChannelTargets({"127.0.0.1:50051"}),
              ElementsAre("127.0.0.1:50051"));
  EXPECT_THAT(PlanChannelTargets({"spoold.internal:50051"}),
              ElementsAre("spoold.internal:50051"));
  EXPECT_THAT(PlanChannelTargets({"dns:///spoold:50051"}),
              ElementsAre("dns:///spoold:50051"));
}

TEST(PlanChannelTargetsTest, IpLiteralsMergeIntoOneBalancedTarget) {
  EXPECT_THAT(PlanChannelTargets({"127.0.0.1:1", "127.0.0.2:2"}),
              ElementsAre("ipv4:127.0.0.1:1,127.0.0.2:2"));
  EXPECT_THAT(PlanChannelTargets({"[::1]:1", "[::2]:2"}),
              ElementsAre("ipv6:[::1]:1,[::2]:2"));
}

TEST(PlanChannelTargetsTest, NamesGetChannelsOfTheirOwn) {
  EXPECT_THAT(
      PlanChannelTargets(
          {"a.example:1", "10.0.0.1:2", "b.example:3", "10.0.0.2:4", ""}),
      ElementsAre("a.example:1", "ipv4:10.0.0.1:2,10.0.0.2:4", "b.example:3"));
  // Not an IP literal: no port, or a bad address.
  EXPECT_THAT(PlanChannelTargets({"1.2.3.4", "999.1.1.1:5"}),
              ElementsAre("1.2.3.4", "999.1.1.1:5"));
}

// ---- Logging ---------------------------------------------------------------

TEST(FormatLogLineTest, KeyValueWithQuotingWhereNeeded) {
  const std::string line = FormatLogLine(
      absl::FromUnixMillis(1700000000123), "warn", "spool.worker", "ack_failed",
      {{"job_id", "job-1"},
       {"error", "connection \"reset\" by peer"},
       {"empty", ""},
       {"multi", "a\nb"}});
  EXPECT_EQ(line,
            "ts=2023-11-14T22:13:20.123Z level=warn component=spool.worker "
            "event=ack_failed job_id=job-1 "
            "error=\"connection \\\"reset\\\" by peer\" empty=\"\" "
            "multi=\"a\\nb\"");
}

TEST(LoggerTest, SinkGetsOneLinePerEvent) {
  std::vector<std::string> lines;
  Logger logger("spool.test",
                [&lines](std::string_view l) { lines.emplace_back(l); });
  logger.Warn("lease_failed", {{"queue", "q"}, {"code", "UNAVAILABLE"}});
  logger.Info("done", {});
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0],
              HasSubstr("level=warn component=spool.test "
                        "event=lease_failed queue=q code=UNAVAILABLE"));
  EXPECT_EQ(lines[0].find('\n'), std::string::npos);
  EXPECT_THAT(lines[1], HasSubstr("level=info"));
}

// ---- Conversions -----------------------------------------------------------

TEST(ConvertTest, JobOptionsToSpec) {
  JobOptions job;
  job.queue = "thumbnail";
  job.payload = std::string("a\0b", 3);
  job.priority = 7;
  job.delay = absl::Seconds(5);
  job.max_attempts = 3;
  job.idempotency_key = "k1";
  job.headers = {{"trace", "abc"}};
  v1::JobSpec spec;
  ToProto(job, &spec);
  EXPECT_EQ(spec.queue(), "thumbnail");
  EXPECT_EQ(spec.payload(), std::string("a\0b", 3));
  EXPECT_EQ(spec.priority(), 7);
  EXPECT_EQ(spec.delay().seconds(), 5);
  EXPECT_FALSE(spec.has_run_at());
  EXPECT_EQ(spec.max_attempts(), 3);
  EXPECT_EQ(spec.idempotency_key(), "k1");
  EXPECT_EQ(spec.headers().at("trace"), "abc");
}

TEST(ConvertTest, LeasedJobToJob) {
  v1::LeasedJob leased;
  leased.set_job_id("j1");
  leased.set_lease_id("l1");
  leased.set_queue("q");
  leased.set_payload("p");
  (*leased.mutable_headers())["h"] = "v";
  leased.set_attempt(2);
  leased.set_max_attempts(5);
  leased.mutable_enqueued_at()->set_seconds(1700000000);
  CancellationSource source;
  Job job = FromProto(leased, source.token());
  EXPECT_EQ(job.id, "j1");
  EXPECT_EQ(job.queue, "q");
  EXPECT_EQ(job.payload, "p");
  EXPECT_EQ(job.headers.at("h"), "v");
  EXPECT_EQ(job.attempt, 2);
  EXPECT_EQ(job.max_attempts, 5);
  EXPECT_EQ(job.enqueued_at, absl::FromUnixSeconds(1700000000));
  EXPECT_FALSE(job.is_last_attempt());
  EXPECT_FALSE(job.cancelled());
  source.Cancel();
  EXPECT_TRUE(job.cancelled());
}

TEST(ConvertTest, JobStateNames) {
  EXPECT_EQ(FromProto(v1::JOB_STATE_DEAD), JobState::kDead);
  EXPECT_STREQ(JobStateName(JobState::kSucceeded), "succeeded");
}

// ---- Cancellation
// ------------------------------------------------------------

TEST(CancellationTest, DefaultTokenIsNeverCancelled) {
  CancellationToken token;
  EXPECT_FALSE(token.cancelled());
  EXPECT_FALSE(token.WaitForCancellation(absl::Milliseconds(1)));
}

TEST(CancellationTest, WaitWakesOnCancel) {
  CancellationSource source;
  CancellationToken token = source.token();
  std::thread canceller([&source] {
    absl::SleepFor(absl::Milliseconds(50));
    source.Cancel();
  });
  const absl::Time start = absl::Now();
  EXPECT_TRUE(token.WaitForCancellation(absl::Seconds(30)));
  // Woken by the cancel, not by the 30 s timeout.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  canceller.join();
  EXPECT_TRUE(token.cancelled());
}

TEST(CancellationTest, WaitTimesOutWhenNotCancelled) {
  CancellationSource source;
  EXPECT_FALSE(source.token().WaitForCancellation(absl::Milliseconds(20)));
}

// ---- Signals
// -------------------------------------------------------------------

TEST(SignalsTest, WaitForSignalReturnsSigtermAndTimesOut) {
  InstallSignalHandlers();
  EXPECT_EQ(WaitForSignal(absl::Milliseconds(10)), 0);
  ASSERT_EQ(raise(SIGTERM), 0);  // caught: the process lives on
  EXPECT_EQ(WaitForSignal(absl::Seconds(10)), SIGTERM);
  EXPECT_EQ(WaitForSignal(absl::Milliseconds(10)), 0);
}

}  // namespace
}  // namespace spool::internal
