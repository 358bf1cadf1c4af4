// spoold semantics over real gRPC against real PostgreSQL: ordering, delays,
// visibility expiry, fencing, nack/backoff, dead letters, idempotency,
// retention, depth limits, long-poll behaviour and input validation.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <pqxx/pqxx>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "tests/services/spoold/api_helpers.h"
#include "tests/services/spoold/metrics/metrics_test_util.h"
#include "tests/support/subprocess.h"

namespace spool::testing {
namespace {

using ::testing::HasSubstr;

// With metrics, so tests can read spool_long_polls_waiting.
class SemanticsTest : public SpooldWithMetricsTest {};

TEST_F(SemanticsTest, LeasesByPriorityThenRunTimeThenEnqueueOrder) {
  std::string low = api_->MustEnqueue("order", "low", -5);
  std::string a = api_->MustEnqueue("order", "a", 10);
  std::string mid = api_->MustEnqueue("order", "mid", 0);
  std::string b = api_->MustEnqueue("order", "b", 10);
  // An older run time wins among equal priority.
  v1::JobSpec old;
  old.set_queue("order");
  old.set_payload("old");
  *old.mutable_run_at() = ToProtoTimestamp(absl::Now() - absl::Hours(1));
  v1::EnqueueResponse resp;
  ASSERT_TRUE(api_->Enqueue(old, &resp).ok());

  auto jobs = api_->LeaseJobs("order", 10);
  ASSERT_EQ(jobs.size(), 5u);
  EXPECT_EQ(jobs[0].payload(), "a");
  EXPECT_EQ(jobs[1].payload(), "b");
  EXPECT_EQ(jobs[2].payload(), "old");
  EXPECT_EQ(jobs[3].payload(), "mid");
  EXPECT_EQ(jobs[4].payload(), "low");
  for (const auto& j : jobs) {
    EXPECT_EQ(j.attempt(), 1);
    EXPECT_EQ(j.max_attempts(), 20);
    EXPECT_EQ(j.queue(), "order");
    EXPECT_FALSE(j.lease_id().empty());
  }
}

TEST_F(SemanticsTest, LeaseRespectsMaxJobsAndReturnsPayloadAndHeaders) {
  v1::JobSpec spec;
  spec.set_queue("hdr");
  spec.set_payload(std::string("\0bin\xff", 5));
  (*spec.mutable_headers())["trace"] = "abc \"quoted\" \\ ü";
  (*spec.mutable_headers())["tenant"] = "t1";
  v1::EnqueueResponse resp;
  ASSERT_TRUE(api_->Enqueue(spec, &resp).ok());
  api_->MustEnqueue("hdr", "second");
  auto jobs = api_->LeaseJobs("hdr", 1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job_id(), resp.job_id());
  EXPECT_EQ(jobs[0].payload(), std::string("\0bin\xff", 5));
  EXPECT_EQ(jobs[0].headers().at("trace"), "abc \"quoted\" \\ ü");
  EXPECT_EQ(jobs[0].headers().at("tenant"), "t1");
  EXPECT_GT(ToTime(jobs[0].lease_expires_at()), absl::Now());
  // max_jobs 0 means 1.
  v1::LeaseRequest req;
  req.set_queue("hdr");
  v1::LeaseResponse lr;
  ASSERT_TRUE(api_->Lease(req, &lr).ok());
  EXPECT_EQ(lr.jobs_size(), 1);
}

TEST_F(SemanticsTest, DelayedJobIsInvisibleUntilDueThenLeasable) {
  v1::JobSpec spec;
  spec.set_queue("delay");
  spec.set_payload("later");
  *spec.mutable_delay() = ToProtoDuration(absl::Seconds(2));
  v1::EnqueueResponse resp;
  absl::Time enqueued = absl::Now();
  ASSERT_TRUE(api_->Enqueue(spec, &resp).ok());
  EXPECT_EQ(api_->MustGetJob(resp.job_id()).state(), v1::JOB_STATE_SCHEDULED);
  EXPECT_TRUE(api_->LeaseJobs("delay", 1).empty());
  // A long-poll started now must be woken by the delayed job, not time out.
  auto jobs = api_->LeaseJobs("delay", 1, absl::Seconds(20));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].job_id(), resp.job_id());
  EXPECT_GE(absl::Now() - enqueued, absl::Milliseconds(1900));
}

TEST_F(SemanticsTest, RunAtInThePastIsReadyAtOnce) {
  v1::JobSpec spec;
  spec.set_queue("runat");
  *spec.mutable_run_at() = ToProtoTimestamp(absl::Now() - absl::Minutes(5));
  v1::EnqueueResponse resp;
  ASSERT_TRUE(api_->Enqueue(spec, &resp).ok());
  EXPECT_EQ(api_->MustGetJob(resp.job_id()).state(), v1::JOB_STATE_READY);
  EXPECT_EQ(api_->LeaseJobs("runat", 1).size(), 1u);
}

TEST_F(SemanticsTest, ExpiredLeaseRedeliversWithNextAttempt) {
  std::string id = api_->MustEnqueue("vis", "x");
  auto first =
      api_->LeaseJobs("vis", 1, absl::ZeroDuration(), absl::Seconds(1));
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].attempt(), 1);
  auto second = api_->LeaseJobs("vis", 1, absl::Seconds(15), absl::Seconds(30));
  ASSERT_EQ(second.size(), 1u);
  EXPECT_EQ(second[0].job_id(), id);
  EXPECT_EQ(second[0].attempt(), 2);
  EXPECT_NE(second[0].lease_id(), first[0].lease_id());
  v1::Job job = api_->MustGetJob(id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_LEASED);
  EXPECT_THAT(job.last_error(), HasSubstr("lease expired"));
  // The first worker's lease is stale now.
  EXPECT_EQ(api_->AckOne(id, first[0].lease_id()),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(api_->AckOne(id, second[0].lease_id()), grpc::StatusCode::OK);
}

TEST_F(SemanticsTest, StaleLeaseCannotAckNackOrExtend) {
  std::string id = api_->MustEnqueue("fence", "x");
  auto first =
      api_->LeaseJobs("fence", 1, absl::ZeroDuration(), absl::Seconds(1));
  ASSERT_EQ(first.size(), 1u);
  auto second = api_->LeaseJobs("fence", 1, absl::Seconds(15));
  ASSERT_EQ(second.size(), 1u);
  const std::string stale = first[0].lease_id();

  v1::ExtendLeaseResponse er;
  grpc::Status s = api_->Extend(id, stale, absl::Seconds(30), &er);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("newer attempt"));

  v1::NackRequest nack;
  nack.set_job_id(id);
  nack.set_lease_id(stale);
  nack.set_dead_letter(true);
  v1::NackResponse nr;
  s = api_->Nack(nack, &nr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);

  EXPECT_EQ(api_->AckOne(id, stale), grpc::StatusCode::FAILED_PRECONDITION);
  // None of that touched the current attempt.
  v1::Job job = api_->MustGetJob(id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_LEASED);
  EXPECT_EQ(job.attempt(), 2);
  // A well-formed lease id that never existed is refused too.
  EXPECT_EQ(api_->AckOne(id, "00000000-0000-4000-8000-000000000000"),
            grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(api_->AckOne(id, second[0].lease_id()), grpc::StatusCode::OK);
  // Acked and deleted (no retention): a second ack finds nothing.
  EXPECT_EQ(api_->AckOne(id, second[0].lease_id()),
            grpc::StatusCode::NOT_FOUND);
  v1::Job gone;
  EXPECT_EQ(api_->GetJob(id, &gone).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(SemanticsTest, UnknownJobsAreNotFound) {
  const std::string lease = "00000000-0000-4000-8000-000000000000";
  EXPECT_EQ(api_->AckOne("999999", lease), grpc::StatusCode::NOT_FOUND);
  v1::NackRequest nack;
  nack.set_job_id("999999");
  nack.set_lease_id(lease);
  v1::NackResponse nr;
  EXPECT_EQ(api_->Nack(nack, &nr).error_code(), grpc::StatusCode::NOT_FOUND);
  v1::ExtendLeaseResponse er;
  EXPECT_EQ(api_->Extend("999999", lease, absl::Seconds(5), &er).error_code(),
            grpc::StatusCode::NOT_FOUND);
  v1::Job job;
  EXPECT_EQ(api_->GetJob("999999", &job).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(SemanticsTest, ExtendLeaseKeepsJobAwayPastItsTimeout) {
  std::string id = api_->MustEnqueue("extend", "x");
  auto jobs =
      api_->LeaseJobs("extend", 1, absl::ZeroDuration(), absl::Seconds(1));
  ASSERT_EQ(jobs.size(), 1u);
  // What this proves is that something does NOT happen (the job coming back
  // when its first 1 s lease would have run out), so real time must pass:
  // four 1 s extensions 500 ms apart carry the lease 2 s past that.
  const absl::Time first_expiry = ToTime(jobs[0].lease_expires_at());
  for (int i = 0; i < 4; ++i) {
    v1::ExtendLeaseResponse er;
    grpc::Status s =
        api_->Extend(id, jobs[0].lease_id(), absl::Seconds(1), &er);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_GT(ToTime(er.lease_expires_at()), absl::Now());
    absl::SleepFor(absl::Milliseconds(500));
  }
  // Well past the original timeout, still ours.
  ASSERT_GT(absl::Now(), first_expiry + absl::Milliseconds(500));
  EXPECT_TRUE(api_->LeaseJobs("extend", 1).empty());
  EXPECT_EQ(api_->AckOne(id, jobs[0].lease_id()), grpc::StatusCode::OK);
}

TEST_F(SemanticsTest, NackWithDelayReschedules) {
  std::string id = api_->MustEnqueue("nack", "x");
  auto jobs = api_->LeaseJobs("nack", 1);
  ASSERT_EQ(jobs.size(), 1u);
  v1::NackRequest req;
  req.set_job_id(id);
  req.set_lease_id(jobs[0].lease_id());
  *req.mutable_retry_delay() = ToProtoDuration(absl::Seconds(2));
  req.set_error("upstream timed out");
  v1::NackResponse resp;
  absl::Time before = absl::Now();
  ASSERT_TRUE(api_->Nack(req, &resp).ok());
  EXPECT_EQ(resp.state(), v1::JOB_STATE_SCHEDULED);
  absl::Time next = ToTime(resp.next_run_at());
  EXPECT_GE(next, before + absl::Milliseconds(1500));
  EXPECT_LE(next, absl::Now() + absl::Seconds(3));
  v1::Job job = api_->MustGetJob(id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_SCHEDULED);
  EXPECT_EQ(job.last_error(), "upstream timed out");
  EXPECT_TRUE(api_->LeaseJobs("nack", 1).empty());
  auto again = api_->LeaseJobs("nack", 1, absl::Seconds(20));
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt(), 2);
  EXPECT_GE(absl::Now(), next - absl::Milliseconds(100));
}

// Durations travel as 64-bit microseconds: the longest allowed values work.
TEST_F(SemanticsTest, LongestVisibilityTimeoutAndRetryDelayAreAccepted) {
  std::string id = api_->MustEnqueue("long", "x");
  auto jobs = api_->LeaseJobs("long", 1, absl::ZeroDuration(), absl::Hours(12));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_GT(ToTime(jobs[0].lease_expires_at()), absl::Now() + absl::Hours(11));
  v1::ExtendLeaseResponse er;
  ASSERT_TRUE(api_->Extend(id, jobs[0].lease_id(), absl::Hours(12), &er).ok());
  EXPECT_GT(ToTime(er.lease_expires_at()), absl::Now() + absl::Hours(11));
  v1::NackRequest req;
  req.set_job_id(id);
  req.set_lease_id(jobs[0].lease_id());
  *req.mutable_retry_delay() = ToProtoDuration(absl::Hours(24 * 366));
  v1::NackResponse resp;
  grpc::Status s = api_->Nack(req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.state(), v1::JOB_STATE_SCHEDULED);
  EXPECT_GT(ToTime(resp.next_run_at()), absl::Now() + absl::Hours(24 * 365));
}

TEST_F(SemanticsTest, NackWithZeroDelayIsReadyAtOnce) {
  std::string id = api_->MustEnqueue("nack0", "x");
  auto jobs = api_->LeaseJobs("nack0", 1);
  ASSERT_EQ(jobs.size(), 1u);
  v1::NackRequest req;
  req.set_job_id(id);
  req.set_lease_id(jobs[0].lease_id());
  *req.mutable_retry_delay() = ToProtoDuration(absl::ZeroDuration());
  v1::NackResponse resp;
  ASSERT_TRUE(api_->Nack(req, &resp).ok());
  EXPECT_EQ(resp.state(), v1::JOB_STATE_READY);
  EXPECT_EQ(api_->LeaseJobs("nack0", 1).size(), 1u);
}

TEST_F(SemanticsTest, NackWithoutDelayUsesQueueBackoff) {
  // Backoff from 1 s, factor 2, ±20 %: attempt 1 waits 0.8–1.2 s, attempt 2
  // waits 1.6–2.4 s.
  std::string id = api_->MustEnqueue("backoff", "x");
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto jobs = api_->LeaseJobs("backoff", 1, absl::Seconds(10));
    ASSERT_EQ(jobs.size(), 1u);
    ASSERT_EQ(jobs[0].attempt(), attempt);
    v1::NackRequest req;
    req.set_job_id(id);
    req.set_lease_id(jobs[0].lease_id());
    v1::NackResponse resp;
    absl::Time before = absl::Now();
    ASSERT_TRUE(api_->Nack(req, &resp).ok());
    EXPECT_EQ(resp.state(), v1::JOB_STATE_SCHEDULED);
    absl::Duration delay = ToTime(resp.next_run_at()) - before;
    const double base = attempt == 1 ? 1.0 : 2.0;
    EXPECT_GE(delay, absl::Seconds(base * 0.8) - absl::Milliseconds(50))
        << "attempt " << attempt;
    EXPECT_LE(delay, absl::Seconds(base * 1.2) + absl::Milliseconds(200))
        << "attempt " << attempt;
  }
}

TEST_F(SemanticsTest, MaxAttemptsExhaustedGoesDead) {
  v1::JobSpec spec;
  spec.set_queue("maxatt");
  spec.set_max_attempts(2);
  v1::EnqueueResponse er;
  ASSERT_TRUE(api_->Enqueue(spec, &er).ok());
  for (int attempt = 1; attempt <= 2; ++attempt) {
    auto jobs = api_->LeaseJobs("maxatt", 1, absl::Seconds(5));
    ASSERT_EQ(jobs.size(), 1u);
    EXPECT_EQ(jobs[0].max_attempts(), 2);
    v1::NackRequest req;
    req.set_job_id(er.job_id());
    req.set_lease_id(jobs[0].lease_id());
    *req.mutable_retry_delay() = ToProtoDuration(absl::ZeroDuration());
    req.set_error(absl::StrCat("failure ", attempt));
    v1::NackResponse resp;
    ASSERT_TRUE(api_->Nack(req, &resp).ok());
    EXPECT_EQ(resp.state(),
              attempt == 1 ? v1::JOB_STATE_READY : v1::JOB_STATE_DEAD);
  }
  v1::Job job = api_->MustGetJob(er.job_id());
  EXPECT_EQ(job.state(), v1::JOB_STATE_DEAD);
  EXPECT_EQ(job.attempt(), 2);
  EXPECT_EQ(job.last_error(), "failure 2");
  EXPECT_TRUE(job.has_finished_at());
  EXPECT_TRUE(api_->LeaseJobs("maxatt", 1).empty());
}

TEST_F(SemanticsTest, DeadLetterGoesDeadAtOnce) {
  std::string id = api_->MustEnqueue("dlq", "poison");
  auto jobs = api_->LeaseJobs("dlq", 1);
  ASSERT_EQ(jobs.size(), 1u);
  v1::NackRequest req;
  req.set_job_id(id);
  req.set_lease_id(jobs[0].lease_id());
  req.set_dead_letter(true);
  req.set_error("cannot parse payload");
  v1::NackResponse resp;
  ASSERT_TRUE(api_->Nack(req, &resp).ok());
  EXPECT_EQ(resp.state(), v1::JOB_STATE_DEAD);
  EXPECT_FALSE(resp.has_next_run_at());
  v1::Job job = api_->MustGetJob(id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_DEAD);
  EXPECT_EQ(job.attempt(), 1);
  EXPECT_EQ(job.last_error(), "cannot parse payload");
  EXPECT_EQ(job.payload(), "poison");
}

TEST_F(SemanticsTest, LeaseExpiryOnLastAttemptGoesDead) {
  v1::JobSpec spec;
  spec.set_queue("lastexp");
  spec.set_max_attempts(1);
  v1::EnqueueResponse er;
  ASSERT_TRUE(api_->Enqueue(spec, &er).ok());
  ASSERT_EQ(
      api_->LeaseJobs("lastexp", 1, absl::ZeroDuration(), absl::Seconds(1))
          .size(),
      1u);
  v1::Job job;
  EXPECT_TRUE(WaitUntil(
      [&] {
        job = api_->MustGetJob(er.job_id());
        return job.state() == v1::JOB_STATE_DEAD;
      },
      absl::Seconds(30), "the expired job to go dead"));
  EXPECT_EQ(job.state(), v1::JOB_STATE_DEAD);
  EXPECT_THAT(job.last_error(), HasSubstr("lease expired"));
  EXPECT_TRUE(api_->LeaseJobs("lastexp", 1).empty());
}

TEST_F(SemanticsTest, ConcurrentDuplicateEnqueuesCreateOneJob) {
  constexpr int kCallers = 16;
  std::vector<std::thread> threads;
  absl::Mutex mu;
  std::vector<v1::EnqueueResponse> responses;
  std::atomic<int> failures{0};
  absl::Notification go;
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&] {
      Api api(server_->NewChannel());
      v1::JobSpec spec;
      spec.set_queue("idem");
      spec.set_payload("once");
      spec.set_idempotency_key("order-42");
      go.WaitForNotification();
      v1::EnqueueResponse resp;
      grpc::Status s = api.Enqueue(spec, &resp);
      if (!s.ok()) {
        ++failures;
        return;
      }
      absl::MutexLock lock(&mu);
      responses.push_back(resp);
    });
  }
  go.Notify();
  for (auto& t : threads) t.join();
  ASSERT_EQ(failures.load(), 0);
  ASSERT_EQ(responses.size(), static_cast<size_t>(kCallers));
  int fresh = 0;
  std::set<std::string> ids;
  for (const auto& r : responses) {
    ids.insert(r.job_id());
    if (!r.duplicate()) ++fresh;
  }
  EXPECT_EQ(fresh, 1);
  EXPECT_EQ(ids.size(), 1u);
  EXPECT_EQ(
      QueryInt(url_, "SELECT count(*) FROM spool_jobs WHERE queue = 'idem'"),
      1);
}

TEST_F(SemanticsTest, IdempotencyKeyHoldsAfterJobFinishedWithinWindow) {
  v1::JobSpec spec;
  spec.set_queue("idem2");
  spec.set_idempotency_key("k");
  v1::EnqueueResponse first;
  ASSERT_TRUE(api_->Enqueue(spec, &first).ok());
  EXPECT_FALSE(first.duplicate());
  auto jobs = api_->LeaseJobs("idem2", 1);
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(api_->AckOne(first.job_id(), jobs[0].lease_id()), 0);
  v1::EnqueueResponse again;
  ASSERT_TRUE(api_->Enqueue(spec, &again).ok());
  EXPECT_TRUE(again.duplicate());
  EXPECT_EQ(again.job_id(), first.job_id());
  EXPECT_TRUE(api_->LeaseJobs("idem2", 1).empty());
  // The same key on another queue is a different job.
  spec.set_queue("idem3");
  v1::EnqueueResponse other;
  ASSERT_TRUE(api_->Enqueue(spec, &other).ok());
  EXPECT_FALSE(other.duplicate());
  EXPECT_NE(other.job_id(), first.job_id());
}

TEST_F(SemanticsTest, ExpiredIdempotencyKeyOfFinishedJobIsReused) {
  ExecSql(url_,
          "INSERT INTO spool_queues (name, idempotency_window) "
          "VALUES ('idemexp', '1 second')");
  v1::JobSpec spec;
  spec.set_queue("idemexp");
  spec.set_idempotency_key("k");
  v1::EnqueueResponse first;
  ASSERT_TRUE(api_->Enqueue(spec, &first).ok());
  ASSERT_TRUE(WaitForQueryInt(url_,
                              "SELECT count(*) FROM spool_idempotency_keys "
                              "WHERE queue = 'idemexp' AND expires_at < now()",
                              1, "the idempotency key's window to end"));
  // Window over, but the job is still waiting: still a duplicate.
  v1::EnqueueResponse second;
  ASSERT_TRUE(api_->Enqueue(spec, &second).ok());
  EXPECT_TRUE(second.duplicate());
  auto jobs = api_->LeaseJobs("idemexp", 1);
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(api_->AckOne(first.job_id(), jobs[0].lease_id()), 0);
  // Window over and the job finished: the key is free again.
  v1::EnqueueResponse third;
  ASSERT_TRUE(api_->Enqueue(spec, &third).ok());
  EXPECT_FALSE(third.duplicate());
  EXPECT_NE(third.job_id(), first.job_id());
}

TEST_F(SemanticsTest, BatchEnqueueIsOrderedDedupedAndAtomic) {
  std::vector<v1::JobSpec> jobs;
  for (int i = 0; i < 5; ++i) {
    v1::JobSpec s;
    s.set_queue("batch");
    s.set_payload(absl::StrCat("p", i));
    if (i == 1 || i == 3) s.set_idempotency_key("same");
    jobs.push_back(s);
  }
  v1::EnqueueBatchResponse resp;
  ASSERT_TRUE(api_->EnqueueBatch(jobs, &resp).ok());
  ASSERT_EQ(resp.results_size(), 5);
  EXPECT_FALSE(resp.results(1).duplicate());
  EXPECT_TRUE(resp.results(3).duplicate());
  EXPECT_EQ(resp.results(1).job_id(), resp.results(3).job_id());
  for (int i : {0, 1, 2, 4}) {
    EXPECT_EQ(api_->MustGetJob(resp.results(i).job_id()).payload(),
              absl::StrCat("p", i));
  }
  // One bad job rejects the whole batch, naming it.
  jobs[4].set_priority(1000);
  v1::EnqueueBatchResponse bad;
  grpc::Status s = api_->EnqueueBatch(jobs, &bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("jobs[4].priority"));
  EXPECT_EQ(QueryInt(url_, "SELECT count(*) FROM spool_jobs"), 4);
  // Over 1,000 jobs is refused.
  std::vector<v1::JobSpec> many(1001, jobs[0]);
  s = api_->EnqueueBatch(many, &bad);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("1000"));
  // Exactly 1,000 is fine.
  std::vector<v1::JobSpec> thousand(1000, jobs[0]);
  v1::EnqueueBatchResponse ok;
  ASSERT_TRUE(api_->EnqueueBatch(thousand, &ok).ok());
  EXPECT_EQ(ok.results_size(), 1000);
  EXPECT_EQ(QueryInt(url_, "SELECT count(*) FROM spool_jobs"), 1004);
}

// A full lease of big jobs stays under gRPC's default 4 MiB message limit
// (--max_lease_bytes, 3 MiB by default), so a client that never raised the
// limit gets every job, a few per call, instead of a failed call whose jobs
// stay leased until their visibility timeout.
TEST_F(SemanticsTest, LeaseResponsesFitTheDefaultClientMessageLimit) {
  const std::string big((1 << 20) - 1024, 'p');
  for (int i = 0; i < 5; ++i) api_->MustEnqueue("big", big);
  Api plain(grpc::CreateChannel(server_->Target(),
                                grpc::InsecureChannelCredentials()));
  std::vector<size_t> sizes;
  size_t total = 0;
  while (total < 5 && sizes.size() < 10) {
    auto jobs = plain.LeaseJobs("big", 5);
    for (const auto& j : jobs) EXPECT_EQ(j.payload().size(), big.size());
    sizes.push_back(jobs.size());
    total += jobs.size();
  }
  // 3 MiB per response: three jobs of just under 1 MiB each.
  EXPECT_EQ(sizes, (std::vector<size_t>{3, 2}));
  // Small jobs still come a full batch at a time.
  for (int i = 0; i < 300; ++i) api_->MustEnqueue("small", "x");
  EXPECT_EQ(plain.LeaseJobs("small", 256).size(), 256u);
  // The budget is the server's flag; however small, one job always comes.
  auto tight = SpooldProcess::Start(url_, {"--max_lease_bytes=1"});
  ASSERT_TRUE(tight.ok()) << tight.status();
  Api tight_api((*tight)->Channel());
  EXPECT_EQ(tight_api.LeaseJobs("small", 10).size(), 1u);
  EXPECT_EQ(tight_api.LeaseJobs("small", 10).size(), 1u);
}

// Per item: settled, invalid, unknown, repeated and foreign-lease
// completions in one request, into a queue that keeps succeeded jobs.
TEST_F(SemanticsTest, AckIsPerItemAndKeepsResultsWhenRetained) {
  ExecSql(url_,
          "INSERT INTO spool_queues (name, succeeded_retention) "
          "VALUES ('keep', '1 hour')");
  std::string a = api_->MustEnqueue("keep", "a");
  std::string b = api_->MustEnqueue("keep", "b");
  auto jobs = api_->LeaseJobs("keep", 2);
  ASSERT_EQ(jobs.size(), 2u);
  std::vector<v1::Completion> cs(4);
  cs[0].set_job_id(jobs[0].job_id());
  cs[0].set_lease_id(jobs[0].lease_id());
  cs[0].set_result("done-0");
  cs[1].set_job_id("not-a-number");
  cs[1].set_lease_id(jobs[1].lease_id());
  cs[2].set_job_id(jobs[1].job_id());
  cs[2].set_lease_id(jobs[1].lease_id());
  cs[2].set_result(std::string(64 * 1024 + 1, 'r'));  // Too large.
  cs[3].set_job_id("424242");
  cs[3].set_lease_id(jobs[1].lease_id());
  // The same completion twice in one request settles once; both succeed.
  cs.push_back(cs[0]);
  // A lease that is not the job's.
  cs.emplace_back();
  cs[5].set_job_id(jobs[1].job_id());
  cs[5].set_lease_id("00000000-0000-4000-8000-000000000000");
  v1::AckResponse resp;
  ASSERT_TRUE(api_->Ack(cs, &resp).ok());
  ASSERT_EQ(resp.results_size(), 6);
  EXPECT_EQ(resp.results(4).code(), 0) << resp.results(4).message();
  EXPECT_EQ(resp.results(5).code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(resp.results(5).message(), HasSubstr("newer attempt"));
  EXPECT_EQ(resp.results(0).code(), 0);
  EXPECT_EQ(resp.results(0).job_id(), jobs[0].job_id());
  EXPECT_EQ(resp.results(1).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(resp.results(1).message(), HasSubstr("completions[1].job_id"));
  EXPECT_EQ(resp.results(2).code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(resp.results(2).message(), HasSubstr("completions[2].result"));
  EXPECT_EQ(resp.results(3).code(), grpc::StatusCode::NOT_FOUND);
  v1::Job done = api_->MustGetJob(jobs[0].job_id());
  EXPECT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(done.result(), "done-0");
  EXPECT_TRUE(done.has_finished_at());
  // Acking again is refused: it already succeeded.
  EXPECT_EQ(api_->AckOne(jobs[0].job_id(), jobs[0].lease_id()),
            grpc::StatusCode::FAILED_PRECONDITION);
  // The job whose item failed validation is untouched.
  EXPECT_EQ(api_->MustGetJob(jobs[1].job_id()).state(), v1::JOB_STATE_LEASED);
}

// Finished jobs are kept for their queue's retention, then deleted by
// maintenance; expired idempotency keys of finished jobs go too.
class RetentionTest : public SemanticsTest {
 protected:
  std::vector<std::string> ServerFlags() override {
    auto flags = FastFlags();
    flags.push_back("--retention_interval=200ms");
    return flags;
  }
};

TEST_F(RetentionTest, FinishedJobsAndExpiredKeysAreDeletedAfterRetention) {
  ExecSql(url_,
          "INSERT INTO spool_queues (name, succeeded_retention, dead_retention,"
          " idempotency_window) VALUES ('ret', '2 seconds', '2 seconds', "
          "'1 second'), ('keep', '1 hour', '1 hour', '1 hour')");
  v1::JobSpec spec;
  spec.set_queue("ret");
  spec.set_idempotency_key("k1");
  v1::EnqueueResponse ok_job, dead_job, kept_job;
  ASSERT_TRUE(api_->Enqueue(spec, &ok_job).ok());
  spec.set_idempotency_key("k2");
  ASSERT_TRUE(api_->Enqueue(spec, &dead_job).ok());
  spec.set_queue("keep");
  ASSERT_TRUE(api_->Enqueue(spec, &kept_job).ok());
  auto jobs = api_->LeaseJobs("ret", 2);
  ASSERT_EQ(jobs.size(), 2u);
  for (const auto& j : jobs) {
    if (j.job_id() == ok_job.job_id()) {
      EXPECT_EQ(api_->AckOne(j.job_id(), j.lease_id(), "r"), 0);
    } else {
      v1::NackRequest nack;
      nack.set_job_id(j.job_id());
      nack.set_lease_id(j.lease_id());
      nack.set_dead_letter(true);
      v1::NackResponse nr;
      ASSERT_TRUE(api_->Nack(nack, &nr).ok());
    }
  }
  auto kept = api_->LeaseJobs("keep", 1);
  ASSERT_EQ(kept.size(), 1u);
  ASSERT_EQ(api_->AckOne(kept[0].job_id(), kept[0].lease_id()), 0);
  // Within retention: both still readable.
  EXPECT_EQ(api_->MustGetJob(ok_job.job_id()).state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(api_->MustGetJob(dead_job.job_id()).state(), v1::JOB_STATE_DEAD);
  EXPECT_TRUE(WaitForQueryInt(
      url_, "SELECT count(*) FROM spool_jobs WHERE queue = 'ret'", 0,
      "retention to delete the finished jobs"));
  v1::Job gone;
  EXPECT_EQ(api_->GetJob(ok_job.job_id(), &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(api_->GetJob(dead_job.job_id(), &gone).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // The keys of the finished jobs expired with their window and are gone;
  // the other queue keeps its job and key.
  EXPECT_TRUE(WaitForQueryInt(url_,
                              "SELECT count(*) FROM spool_idempotency_keys "
                              "WHERE queue = 'ret'",
                              0, "retention to delete the expired keys"));
  EXPECT_EQ(QueryInt(url_,
                     "SELECT count(*) FROM spool_idempotency_keys "
                     "WHERE queue = 'ret'"),
            0);
  EXPECT_EQ(api_->MustGetJob(kept_job.job_id()).state(),
            v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(QueryInt(url_,
                     "SELECT count(*) FROM spool_idempotency_keys "
                     "WHERE queue = 'keep'"),
            1);
}

// An enqueue statement the database aborts as a conflict (serialization
// failure or deadlock) is run once more before the caller hears of it, on
// both enqueue paths (plain, and depth-limited in a transaction). A trigger
// fails the first insert after each `ALTER SEQUENCE ... RESTART`: a sequence,
// unlike a table, keeps its count when the failing statement rolls back.
TEST_F(SemanticsTest, EnqueueAbortedByAConflictIsRetriedOnce) {
  ExecSql(url_, R"sql(
CREATE SEQUENCE test_fail_once;
CREATE FUNCTION test_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('test_fail_once') = 1 THEN
    RAISE EXCEPTION 'test conflict' USING ERRCODE = 'serialization_failure';
  END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER test_fail_once BEFORE INSERT ON spool_jobs
  FOR EACH STATEMENT EXECUTE FUNCTION test_fail_once();
INSERT INTO spool_queues (name, max_depth) VALUES ('capped', 100);
)sql");
  for (const char* queue : {"plain", "capped"}) {
    SCOPED_TRACE(queue);
    ExecSql(url_, "ALTER SEQUENCE test_fail_once RESTART");
    const std::string id = api_->MustEnqueue(queue, "once");
    EXPECT_EQ(api_->MustGetJob(id).state(), v1::JOB_STATE_READY);
    EXPECT_EQ(QueryInt(url_, absl::StrCat("SELECT count(*) FROM spool_jobs "
                                          "WHERE queue = '",
                                          queue, "'")),
              1);
    // Failed once, then inserted.
    EXPECT_EQ(QueryInt(url_, "SELECT last_value FROM test_fail_once"), 2);
  }
  // A conflict on the retry too reaches the caller as ABORTED, with nothing
  // enqueued.
  ExecSql(url_, R"sql(
CREATE OR REPLACE FUNCTION test_fail_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'test conflict' USING ERRCODE = 'serialization_failure';
END $$;
)sql");
  v1::JobSpec spec;
  spec.set_queue("plain");
  v1::EnqueueResponse resp;
  grpc::Status s = api_->Enqueue(spec, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  EXPECT_EQ(QueryInt(url_, "SELECT count(*) FROM spool_jobs"), 2);

  // "Statement completion unknown" (SQLSTATE 40003) is not a plain conflict:
  // the caller hears UNAVAILABLE, saying the outcome is unknown, and spoold
  // does not repeat the statement.
  ExecSql(url_, R"sql(
ALTER SEQUENCE test_fail_once RESTART;
CREATE OR REPLACE FUNCTION test_fail_once() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM nextval('test_fail_once');
  RAISE EXCEPTION 'test unknown' USING ERRCODE = 'statement_completion_unknown';
END $$;
)sql");
  s = api_->Enqueue(spec, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("took effect"));
  EXPECT_EQ(QueryInt(url_, "SELECT last_value FROM test_fail_once"), 1);
}

TEST_F(SemanticsTest, FullQueueRejectsEnqueue) {
  ExecSql(url_,
          "INSERT INTO spool_queues (name, max_depth) VALUES ('small', 2)");
  api_->MustEnqueue("small", "1");
  api_->MustEnqueue("small", "2");
  v1::JobSpec spec;
  spec.set_queue("small");
  v1::EnqueueResponse resp;
  grpc::Status s = api_->Enqueue(spec, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(), HasSubstr("small"));
  // Finishing one makes room.
  auto jobs = api_->LeaseJobs("small", 1);
  ASSERT_EQ(jobs.size(), 1u);
  ASSERT_EQ(api_->AckOne(jobs[0].job_id(), jobs[0].lease_id()), 0);
  EXPECT_TRUE(api_->Enqueue(spec, &resp).ok());
}

TEST_F(SemanticsTest, LongPollTimesOutEmpty) {
  absl::Time start = absl::Now();
  auto jobs = api_->LeaseJobs("idle", 5, absl::Seconds(1));
  EXPECT_TRUE(jobs.empty());
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
}

// The in-process wake-up delivers a job to a parked long-poll at once. The
// spoold here polls and runs maintenance only once a minute, so without the
// wake-up the job could not arrive within the 5 s bound.
TEST_F(SemanticsTest, LongPollWakesOnEnqueue) {
  auto spoold = SpooldProcess::Start(url_, WakeUpOnlyFlags());
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  auto metrics_port = MetricsPort(**spoold);
  ASSERT_TRUE(metrics_port.ok()) << metrics_port.status();
  Api api((*spoold)->Channel());
  WakeUp w = LeaseParkedThenEnqueue(api, *metrics_port, api, "wake");
  ASSERT_TRUE(w.parked) << (*spoold)->LogTail();
  ASSERT_EQ(w.got.size(), 1u);
  EXPECT_EQ(w.got[0].job_id(), w.enqueued_id);
  EXPECT_LT(w.latency, absl::Seconds(5))
      << "delivered by the fallback poll, not the wake-up?";
}

TEST_F(SemanticsTest, LongPollEndsAtClientDeadlineAndCancelLeasesNothing) {
  // A client deadline shorter than the wait ends the call without error
  // shortly before the deadline.
  v1::LeaseRequest req;
  req.set_queue("cancel");
  *req.mutable_wait() = ToProtoDuration(absl::Seconds(20));
  v1::LeaseResponse resp;
  absl::Time start = absl::Now();
  grpc::Status s = api_->Lease(req, &resp, absl::Seconds(1));
  EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED)
      << s.error_message();
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // A cancelled call ends at once; a job enqueued afterwards stays ready.
  grpc::ClientContext ctx;
  v1::LeaseResponse cancelled_resp;
  absl::Notification finished;
  grpc::Status cancelled_status;
  api_->stub()->async()->Lease(&ctx, &req, &cancelled_resp,
                               [&](grpc::Status st) {
                                 cancelled_status = st;
                                 finished.Notify();
                               });
  const int metrics_port = MustMetricsPort();
  // Cancelled while parked, not on its way in.
  EXPECT_TRUE(WaitForLongPollsWaiting(metrics_port, 1));
  ctx.TryCancel();
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(cancelled_status.error_code(), grpc::StatusCode::CANCELLED);
  // spoold dropped the waiter, so nothing is left to take the job.
  EXPECT_TRUE(WaitForLongPollsWaiting(metrics_port, 0));
  std::string id = api_->MustEnqueue("cancel", "x");
  EXPECT_EQ(api_->MustGetJob(id).state(), v1::JOB_STATE_READY);
  auto leased = api_->LeaseJobs("cancel", 1);
  ASSERT_EQ(leased.size(), 1u);
  EXPECT_EQ(leased[0].job_id(), id);
  EXPECT_EQ(leased[0].attempt(), 1);  // Never leased before.
}

// The call is cancelled while its lease query runs (held up here by a table
// lock): the query still leases the job, for nobody, so spoold must hand it
// straight back, without counting the attempt.
TEST_F(SemanticsTest, JobsLeasedForACallCancelledMeanwhileGoBack) {
  // A spoold of its own, with metrics.
  auto spoold = SpooldProcess::Start(url_, MetricsFlags());
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  auto metrics_port = MetricsPort(**spoold);
  ASSERT_TRUE(metrics_port.ok()) << metrics_port.status();
  Api api((*spoold)->Channel());
  const std::string id = api.MustEnqueue("gone", "x");
  // The row's version before; leasing and releasing each write a new one.
  const int64_t version = QueryInt(
      url_,
      absl::StrCat("SELECT xmin::text::int8 FROM spool_jobs WHERE id = ", id));
  pqxx::connection locker(url_);
  auto lock = std::make_unique<pqxx::work>(locker);
  lock->exec("LOCK TABLE spool_jobs IN ACCESS EXCLUSIVE MODE");

  v1::LeaseRequest req;
  req.set_queue("gone");
  req.set_max_jobs(1);
  grpc::ClientContext ctx;
  v1::LeaseResponse resp;
  absl::Notification finished;
  grpc::Status status;
  api.stub()->async()->Lease(&ctx, &req, &resp, [&](grpc::Status st) {
    status = st;
    finished.Notify();
  });
  // spoold's lease statement is waiting for the lock.
  const bool waiting = WaitUntil(
      [&] {
        return QueryInt(url_,
                        "SELECT count(*) FROM pg_stat_activity WHERE "
                        "wait_event_type = 'Lock' AND query LIKE "
                        "'%UPDATE spool_jobs j%SKIP LOCKED%'") > 0;
      },
      absl::Seconds(30), "spoold's lease statement to wait for the lock");
  if (!waiting) lock->abort();  // Lets the call end before the ASSERT.
  ASSERT_TRUE(waiting);
  ctx.TryCancel();
  ASSERT_TRUE(finished.WaitForNotificationWithTimeout(absl::Seconds(5)));
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  // spoold has seen the cancellation once it answered the call CANCELLED
  // (the RPC metric counts the status it sent).
  const Labels cancelled{{"method", "Lease"}, {"code", "CANCELLED"}};
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto n = ScrapeMetric(*metrics_port, "spool_rpc_duration_seconds_count",
                              cancelled);
        return n.ok() && *n == 1;
      },
      absl::Seconds(30), "spoold to answer the cancelled Lease call"));
  lock->abort();  // The lease query runs now and leases the job.

  // Leased (a new row version, state leased), then handed back (another
  // one, ready).
  ASSERT_TRUE(WaitForQueryInt(
      url_,
      absl::StrCat("SELECT count(*) FROM spool_jobs WHERE id = ", id,
                   " AND state = 2 AND xmin::text::int8 <> ", version),
      1, "the job leased for nobody to be handed back"));
  // Counted as leased, and as handed back.
  const Labels gone{{"queue", "gone"}};
  EXPECT_TRUE(WaitUntil(
      [&] {
        auto n =
            ScrapeMetric(*metrics_port, "spool_leases_released_total", gone);
        return n.ok() && *n > 0;
      },
      absl::Seconds(30), "spool_leases_released_total to count the job"));
  auto released =
      ScrapeMetric(*metrics_port, "spool_leases_released_total", gone);
  ASSERT_TRUE(released.ok()) << released.status();
  EXPECT_EQ(*released, 1);
  auto leased = ScrapeMetric(*metrics_port, "spool_jobs_leased_total", gone);
  ASSERT_TRUE(leased.ok()) << leased.status();
  EXPECT_EQ(*leased, 1);
  v1::Job job = api.MustGetJob(id);
  EXPECT_EQ(job.state(), v1::JOB_STATE_READY);
  EXPECT_EQ(job.attempt(), 0);
  auto again = api.LeaseJobs("gone", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].job_id(), id);
  EXPECT_EQ(again[0].attempt(), 1);
}

// A port another process listens on (even one that allows sharing it, as
// gRPC servers do by default) is refused, not shared: a second spoold there
// would silently take half of the first one's connections.
TEST_F(SemanticsTest, RefusesAPortAnotherProcessListensOn) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(listen(fd, 8), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);

  auto binary = SpooldProcess::BinaryPath();
  ASSERT_TRUE(binary.ok()) << binary.status();
  auto dir = MakeTempDir("spoold-port-");
  ASSERT_TRUE(dir.ok()) << dir.status();
  SpawnOptions options;
  options.argv = {*binary, absl::StrCat("--database_url=", url_),
                  absl::StrCat("--listen=127.0.0.1:", port),
                  "--metrics_listen="};
  options.output_path = *dir + "/spoold.log";
  auto code = RunToCompletion(options, absl::Seconds(30));
  const std::string log = ReadFileTail(options.output_path, 4096);
  close(fd);
  std::filesystem::remove_all(*dir);
  ASSERT_TRUE(code.ok()) << code.status();
  EXPECT_NE(*code, 0) << log;
  EXPECT_THAT(log,
              HasSubstr(absl::StrCat("cannot listen on 127.0.0.1:", port)));
}

TEST_F(SemanticsTest, WaitIsCappedByServerMaximum) {
  // A server with --max_wait=1s answers a one-day wait empty after ~1 s:
  // the wait is capped as documented, not refused.
  auto capped = SpooldProcess::Start(url_, {"--max_wait=1s"});
  ASSERT_TRUE(capped.ok()) << capped.status();
  Api api((*capped)->Channel());
  v1::LeaseRequest req;
  req.set_queue("cap");
  *req.mutable_wait() = ToProtoDuration(absl::Hours(24));
  v1::LeaseResponse resp;
  absl::Time start = absl::Now();
  grpc::Status s = api.Lease(req, &resp, absl::Seconds(30));
  EXPECT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp.jobs_size(), 0);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(900));
  EXPECT_LT(absl::Now() - start, absl::Seconds(15));
}

TEST_F(SemanticsTest, ThousandIdleLongPollsNeedFewThreadsAndConnections) {
  constexpr int kPolls = 1000;
  v1::LeaseRequest req;
  req.set_queue("many");
  *req.mutable_wait() = ToProtoDuration(absl::Seconds(6));
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<v1::LeaseResponse> responses(kPolls);
  std::atomic<int> done{0}, ok{0}, jobs{0};
  for (int i = 0; i < kPolls; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    api_->stub()->async()->Lease(contexts.back().get(), &req, &responses[i],
                                 [&, i](grpc::Status st) {
                                   if (st.ok()) ++ok;
                                   jobs += responses[i].jobs_size();
                                   ++done;
                                 });
  }
  // All parked (none answered yet) before threads and connections count.
  EXPECT_TRUE(WaitForLongPollsWaiting(MustMetricsPort(), kPolls));
  EXPECT_EQ(done.load(), 0);
  // Count spoold's threads and the database connections while all wait.
  int threads = 0;
  {
    std::string path = absl::StrCat("/proc/", server_->Pid(), "/status");
    FILE* f = fopen(path.c_str(), "r");
    ASSERT_NE(f, nullptr);
    char line[256];
    while (fgets(line, sizeof line, f)) {
      if (sscanf(line, "Threads: %d", &threads) == 1) break;
    }
    fclose(f);
  }
  const int64_t connections =
      QueryInt(url_,
               "SELECT count(*) FROM pg_stat_activity WHERE datname = "
               "current_database() AND pid <> pg_backend_pid()");
  EXPECT_GT(threads, 0);
  EXPECT_LT(threads, 64) << "spoold threads with 1000 waiting polls";
  EXPECT_LT(connections, 16) << "database connections with 1000 waiting polls";
  // Ten jobs go to ten of the waiters; the rest time out empty.
  for (int i = 0; i < 10; ++i) api_->MustEnqueue("many", "x");
  EXPECT_TRUE(WaitUntil([&] { return done.load() == kPolls; },
                        absl::Seconds(30), "every poll to be answered"));
  EXPECT_EQ(done.load(), kPolls);
  EXPECT_EQ(ok.load(), kPolls);
  EXPECT_EQ(jobs.load(), 10);
}

// Every invalid field gets INVALID_ARGUMENT naming it.
TEST_F(SemanticsTest, InvalidInputsAreRejectedWithTheFieldNamed) {
  struct Case {
    std::string name;
    std::function<void(v1::JobSpec&)> mutate;
    std::string expect;
  };
  std::vector<Case> cases = {
      {"empty queue", [](v1::JobSpec& s) { s.set_queue(""); }, "job.queue"},
      {"bad queue", [](v1::JobSpec& s) { s.set_queue("-x"); }, "job.queue"},
      {"long queue", [](v1::JobSpec& s) { s.set_queue(std::string(129, 'q')); },
       "job.queue"},
      {"priority high", [](v1::JobSpec& s) { s.set_priority(101); },
       "job.priority"},
      {"priority low", [](v1::JobSpec& s) { s.set_priority(-101); },
       "job.priority"},
      {"both times",
       [](v1::JobSpec& s) {
         *s.mutable_delay() = ToProtoDuration(absl::Seconds(1));
         *s.mutable_run_at() = ToProtoTimestamp(absl::Now());
       },
       "job.delay"},
      {"delay too long",
       [](v1::JobSpec& s) {
         *s.mutable_delay() = ToProtoDuration(absl::Hours(24 * 367));
       },
       "job.delay"},
      {"negative delay",
       [](v1::JobSpec& s) {
         *s.mutable_delay() = ToProtoDuration(absl::Seconds(-5));
       },
       "job.delay"},
      {"run_at far future",
       [](v1::JobSpec& s) {
         *s.mutable_run_at() =
             ToProtoTimestamp(absl::Now() + absl::Hours(24 * 367));
       },
       "job.run_at"},
      {"run_at far past",
       [](v1::JobSpec& s) {
         *s.mutable_run_at() =
             ToProtoTimestamp(absl::Now() - absl::Hours(24 * 367));
       },
       "job.run_at"},
      {"negative attempts", [](v1::JobSpec& s) { s.set_max_attempts(-1); },
       "job.max_attempts"},
      {"payload too big",
       [](v1::JobSpec& s) { s.set_payload(std::string((1 << 20) + 1, 'p')); },
       "job.payload"},
      {"too many headers",
       [](v1::JobSpec& s) {
         for (int i = 0; i < 65; ++i)
           (*s.mutable_headers())[absl::StrCat("h", i)] = "v";
       },
       "job.headers"},
      {"headers too large",
       [](v1::JobSpec& s) {
         (*s.mutable_headers())["big"] = std::string(9000, 'v');
       },
       "job.headers"},
  };
  for (const Case& c : cases) {
    v1::JobSpec spec;
    spec.set_queue("valid");
    c.mutate(spec);
    v1::EnqueueResponse resp;
    grpc::Status s = api_->Enqueue(spec, &resp);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(s.error_message(), HasSubstr(c.expect)) << c.name;
    EXPECT_THAT(s.error_message(), ::testing::Not(HasSubstr("SELECT")));
  }
  v1::EnqueueRequest empty;
  v1::EnqueueResponse resp;
  grpc::ClientContext ctx;
  EXPECT_EQ(api_->stub()->Enqueue(&ctx, empty, &resp).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);

  struct LeaseCase {
    std::string name;
    std::function<void(v1::LeaseRequest&)> mutate;
    std::string expect;
  };
  std::vector<LeaseCase> lease_cases = {
      {"no queue", [](v1::LeaseRequest& r) { r.set_queue(""); }, "queue"},
      {"max_jobs high", [](v1::LeaseRequest& r) { r.set_max_jobs(257); },
       "max_jobs"},
      {"max_jobs negative", [](v1::LeaseRequest& r) { r.set_max_jobs(-1); },
       "max_jobs"},
      {"visibility short",
       [](v1::LeaseRequest& r) {
         *r.mutable_visibility_timeout() =
             ToProtoDuration(absl::Milliseconds(500));
       },
       "visibility_timeout"},
      {"visibility long",
       [](v1::LeaseRequest& r) {
         *r.mutable_visibility_timeout() = ToProtoDuration(absl::Hours(13));
       },
       "visibility_timeout"},
      {"negative wait",
       [](v1::LeaseRequest& r) {
         *r.mutable_wait() = ToProtoDuration(absl::Seconds(-1));
       },
       "wait"},
  };
  for (const LeaseCase& c : lease_cases) {
    v1::LeaseRequest req;
    req.set_queue("valid");
    c.mutate(req);
    v1::LeaseResponse lr;
    grpc::Status s = api_->Lease(req, &lr);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << c.name;
    EXPECT_THAT(s.error_message(), HasSubstr(c.expect)) << c.name;
  }

  // Malformed ids and durations on Nack / ExtendLease / GetJob.
  v1::NackRequest nack;
  nack.set_job_id("abc");
  nack.set_lease_id("00000000-0000-4000-8000-000000000000");
  v1::NackResponse nr;
  grpc::Status s = api_->Nack(nack, &nr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("job_id"));
  nack.set_job_id("1");
  nack.set_lease_id("not-a-lease");
  s = api_->Nack(nack, &nr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("lease_id"));
  nack.set_lease_id("00000000-0000-4000-8000-000000000000");
  *nack.mutable_retry_delay() = ToProtoDuration(absl::Seconds(-1));
  s = api_->Nack(nack, &nr);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("retry_delay"));
  v1::ExtendLeaseResponse er;
  s = api_->Extend("1", "00000000-0000-4000-8000-000000000000", absl::Hours(13),
                   &er);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("visibility_timeout"));
  v1::Job job;
  s = api_->GetJob("", &job);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("job_id"));
  // Nothing was created by any of it.
  EXPECT_EQ(QueryInt(url_, "SELECT count(*) FROM spool_jobs"), 0);
}

TEST_F(SemanticsTest, HealthAndReflectionAreServed) {
  auto status = server_->HealthStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, grpc::health::v1::HealthCheckResponse::SERVING);

  namespace refl = grpc::reflection::v1alpha;
  auto stub = refl::ServerReflection::NewStub(server_->Channel());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto stream = stub->ServerReflectionInfo(&ctx);
  refl::ServerReflectionRequest req;
  req.set_list_services("");
  ASSERT_TRUE(stream->Write(req));
  stream->WritesDone();
  refl::ServerReflectionResponse resp;
  ASSERT_TRUE(stream->Read(&resp));
  std::vector<std::string> names;
  for (const auto& svc : resp.list_services_response().service()) {
    names.push_back(svc.name());
  }
  EXPECT_THAT(names, ::testing::Contains("spool.v1.JobService"));
  EXPECT_THAT(names, ::testing::Contains("grpc.health.v1.Health"));
  EXPECT_TRUE(stream->Finish().ok());
}

// Clients may ping every --min_client_ping_interval, as the SDK's keepalive
// does during a silent long-poll: spoold answers instead of closing the
// connection with GOAWAY "too_many_pings", gRPC's reply to pings more often
// than every 5 minutes (spoold also allows pings between calls, which gRPC
// would otherwise hold to one per 2 hours).
TEST(KeepaliveTest, LongPollSurvivesClientPingsAtTheAllowedInterval) {
  auto url = SharedPostgres()->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  std::vector<std::string> flags = FastFlags();
  flags.push_back("--min_client_ping_interval=300ms");
  auto spoold = SpooldProcess::Start(*url, flags);
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 700);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      (*spoold)->Target(), grpc::InsecureChannelCredentials(), args);
  // A silent long-poll. Without the allowance, spoold ends the connection
  // after a few pings and the call fails UNAVAILABLE.
  Api api(channel);
  v1::LeaseRequest req;
  req.set_queue("quiet");
  *req.mutable_wait() = ToProtoDuration(absl::Seconds(9));
  v1::LeaseResponse resp;
  grpc::Status s = api.Lease(req, &resp);
  EXPECT_TRUE(s.ok()) << s.error_code() << ": " << s.error_message();
  EXPECT_EQ(resp.jobs_size(), 0);
}

}  // namespace
}  // namespace spool::testing
