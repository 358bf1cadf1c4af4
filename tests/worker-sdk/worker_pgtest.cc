// The worker SDK against real spoold + PostgreSQL processes (issue 3's
// Tests section): outcomes, exceptions, lease extension, concurrency,
// graceful stop, kill -9 of a worker process, spoold restarts, and
// 2 replicas x 3 worker processes x 20,000 jobs handled exactly once.
#include <algorithm>
#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spool/client.h"
#include "spool/worker.h"
#include "test_util.h"
#include "tests/support/spoold_process.h"
#include "tests/support/subprocess.h"
#include "tests/support/test_postgres.h"

namespace spool::testing {
namespace {

// ---- Helpers
// -----------------------------------------------------------------

// One line of the test worker's record file.
struct Record {
  std::string kind;  // "start" or "ok"
  std::string job_id;
  int attempt = 0;
};

std::vector<Record> ReadRecords(const std::string& path) {
  std::vector<Record> records;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> parts = absl::StrSplit(line, ' ');
    if (parts.size() != 3) continue;
    records.push_back({parts[0], parts[1], std::atoi(parts[2].c_str())});
  }
  return records;
}

int CountKind(const std::vector<Record>& records, const std::string& kind) {
  return static_cast<int>(
      std::count_if(records.begin(), records.end(),
                    [&kind](const Record& r) { return r.kind == kind; }));
}

// A spool_sdk_test_worker child process.
class WorkerProcess {
 public:
  static absl::StatusOr<std::unique_ptr<WorkerProcess>> Start(
      const std::string& dir, const std::string& name,
      std::vector<std::string> targets, const std::string& queue,
      std::vector<std::string> extra_flags) {
    auto p = std::unique_ptr<WorkerProcess>(new WorkerProcess());
    p->out_ = absl::StrCat(dir, "/", name, ".records");
    p->log_ = absl::StrCat(dir, "/", name, ".log");
    SpawnOptions spawn;
    spawn.argv = {SPOOL_SDK_TEST_WORKER,
                  absl::StrCat("--targets=", absl::StrJoin(targets, ",")),
                  absl::StrCat("--queue=", queue),
                  absl::StrCat("--out=", p->out_)};
    for (std::string& flag : extra_flags) spawn.argv.push_back(std::move(flag));
    spawn.output_path = p->log_;
    absl::StatusOr<pid_t> pid = Spawn(spawn);
    if (!pid.ok()) return pid.status();
    p->pid_ = *pid;
    return p;
  }

  ~WorkerProcess() {
    if (pid_ > 0) SignalAndReap(pid_, SIGKILL, absl::Seconds(5));
  }

  void Kill9() {
    if (pid_ > 0) SignalAndReap(pid_, SIGKILL, absl::Seconds(5));
    pid_ = -1;
  }

  // SIGTERM and wait; returns the exit code.
  int Terminate(absl::Duration timeout) {
    if (pid_ <= 0) return -1;
    const int status = SignalAndReap(pid_, SIGTERM, timeout);
    pid_ = -1;
    return ExitCode(status);
  }

  std::vector<Record> Records() const { return ReadRecords(out_); }
  std::string LogTail() const { return ReadFileTail(log_, 4096); }

 private:
  WorkerProcess() = default;
  pid_t pid_ = -1;
  std::string out_;
  std::string log_;
};

// Records what in-process handlers saw.
class Journal {
 public:
  struct Entry {
    std::string job_id;
    int attempt;
    absl::Time at;
    std::string worker;
  };
  void Add(const Job& job, const std::string& worker) {
    absl::MutexLock lock(&mu_);
    entries_.push_back({job.id, job.attempt, absl::Now(), worker});
  }
  std::vector<Entry> entries() {
    absl::MutexLock lock(&mu_);
    return entries_;
  }
  int CountFor(const std::string& job_id) {
    absl::MutexLock lock(&mu_);
    return static_cast<int>(std::count_if(
        entries_.begin(), entries_.end(),
        [&job_id](const Entry& e) { return e.job_id == job_id; }));
  }
  std::set<std::string> Ids() {
    absl::MutexLock lock(&mu_);
    std::set<std::string> ids;
    for (const Entry& e : entries_) ids.insert(e.job_id);
    return ids;
  }

 private:
  absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
};

class WorkerPgTest : public PostgresTest {
 protected:
  void SetUp() override {
    PostgresTest::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<std::unique_ptr<SpooldProcess>> spoold =
        SpooldProcess::Start(database_url_);
    ASSERT_TRUE(spoold.ok()) << spoold.status();
    spoold_ = *std::move(spoold);
    absl::StatusOr<std::string> dir = MakeTempDir("spool-sdk-test");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_ = *dir;
  }

  void TearDown() override {
    if (HasFailure()) {
      // Keep the worker records and logs for a look.
      if (spoold_ != nullptr) {
        std::fprintf(stderr, "--- spoold log tail ---\n%s\n",
                     spoold_->LogTail(8192).c_str());
      }
      std::fprintf(stderr, "worker records and logs kept in %s\n",
                   dir_.c_str());
    } else if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  ClientOptions ClientOpts(std::vector<std::string> targets = {}) {
    ClientOptions options;
    options.targets = targets.empty()
                          ? std::vector<std::string>{spoold_->Target()}
                          : std::move(targets);
    options.default_deadline = absl::Seconds(30);
    return options;
  }

  Client NewClient(std::vector<std::string> targets = {}) {
    absl::StatusOr<Client> client =
        Client::Connect(ClientOpts(std::move(targets)));
    EXPECT_TRUE(client.ok()) << client.status();
    return *std::move(client);
  }

  WorkerOptions Options(std::string id, std::vector<std::string> targets = {}) {
    WorkerOptions options;
    options.client = ClientOpts(std::move(targets));
    options.worker_id = std::move(id);
    options.reconnect_backoff = {absl::Milliseconds(50), absl::Seconds(1), 2.0,
                                 0.2};
    return options;
  }

  static QueueOptions Queue(int concurrency,
                            absl::Duration vt = absl::Seconds(30)) {
    QueueOptions q;
    q.concurrency = concurrency;
    q.visibility_timeout = vt;
    q.max_wait = absl::Seconds(5);
    return q;
  }

  // Enqueues `payloads` in batches of up to 1,000 (keyed, so retry-safe).
  std::vector<std::string> EnqueueAll(
      Client& client, const std::string& queue,
      const std::vector<std::string>& payloads) {
    std::vector<std::string> ids;
    for (size_t start = 0; start < payloads.size(); start += 1000) {
      std::vector<JobOptions> batch;
      for (size_t i = start; i < std::min(payloads.size(), start + 1000); ++i) {
        JobOptions job;
        job.queue = queue;
        job.payload = payloads[i];
        job.idempotency_key = absl::StrCat(queue, "-", i);
        batch.push_back(std::move(job));
      }
      absl::StatusOr<std::vector<EnqueueResult>> results =
          client.EnqueueBatch(batch);
      EXPECT_TRUE(results.ok()) << results.status();
      if (!results.ok()) return ids;
      for (const EnqueueResult& r : *results) ids.push_back(r.job_id);
    }
    return ids;
  }

  std::string Enqueue(Client& client, const std::string& queue,
                      const std::string& payload, int max_attempts = 0) {
    JobOptions job;
    job.queue = queue;
    job.payload = payload;
    job.max_attempts = max_attempts;
    absl::StatusOr<EnqueueResult> r = client.Enqueue(job);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->job_id : std::string();
  }

  // A succeeded job is deleted at ack (retention 0) or kept as SUCCEEDED.
  static bool IsSucceeded(Client& client, const std::string& id) {
    absl::StatusOr<JobInfo> job = client.GetJob(id);
    if (!job.ok()) return job.status().code() == absl::StatusCode::kNotFound;
    return job->state == JobState::kSucceeded;
  }

  static std::optional<JobInfo> Get(Client& client, const std::string& id) {
    absl::StatusOr<JobInfo> job = client.GetJob(id);
    if (!job.ok()) return std::nullopt;
    return *job;
  }

  std::unique_ptr<SpooldProcess> spoold_;
  std::string dir_;
};

// ---- Client
// ------------------------------------------------------------------

TEST_F(WorkerPgTest, ClientEnqueuesReadsAndDedups) {
  Client client = NewClient();
  JobOptions job;
  job.queue = "client";
  job.payload = "hello";
  job.priority = 5;
  job.max_attempts = 3;
  job.idempotency_key = "once";
  job.headers = {{"trace", "t-1"}};
  absl::StatusOr<EnqueueResult> first = client.Enqueue(job);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->duplicate);
  absl::StatusOr<EnqueueResult> second = client.Enqueue(job);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_TRUE(second->duplicate);
  EXPECT_EQ(second->job_id, first->job_id);

  absl::StatusOr<JobInfo> info = client.GetJob(first->job_id);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->queue, "client");
  EXPECT_EQ(info->state, JobState::kReady);
  EXPECT_EQ(info->payload, "hello");
  EXPECT_EQ(info->priority, 5);
  EXPECT_EQ(info->max_attempts, 3);
  EXPECT_EQ(info->headers.at("trace"), "t-1");
  EXPECT_TRUE(info->enqueued_at.has_value());

  JobOptions delayed = job;
  delayed.idempotency_key.clear();
  delayed.delay = absl::Hours(1);
  absl::StatusOr<EnqueueResult> later = client.Enqueue(delayed);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(client.GetJob(later->job_id)->state, JobState::kScheduled);

  JobOptions bad = job;
  bad.priority = 1000;
  EXPECT_EQ(client.Enqueue(bad).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client.GetJob("no-such-job").status().code() ==
                    absl::StatusCode::kNotFound ||
                client.GetJob("no-such-job").status().code() ==
                    absl::StatusCode::kInvalidArgument,
            true);
}

// ---- Outcomes
// ------------------------------------------------------------------

TEST_F(WorkerPgTest, OutcomesMapToAckNackAndDead) {
  Client client = NewClient();
  const std::string ok = Enqueue(client, "outcomes", "ok");
  const std::string later = Enqueue(client, "outcomes", "retry-later");
  const std::string now = Enqueue(client, "outcomes", "retry-now");
  const std::string fail = Enqueue(client, "outcomes", "fail");
  const std::string last = Enqueue(client, "outcomes", "last-attempt", 1);
  Journal journal;
  std::atomic<bool> last_attempt_flag{false};
  Worker worker(Options("w-outcomes"));
  ASSERT_TRUE(worker
                  .Register(
                      "outcomes",
                      [&](const Job& job) -> Outcome {
                        journal.Add(job, "w");
                        if (job.payload == "ok") return Outcome::Success("r");
                        if (job.payload == "retry-later") {
                          return Outcome::Retry(absl::Hours(1), "again later");
                        }
                        if (job.payload == "retry-now") {
                          if (job.attempt == 1) {
                            return Outcome::Retry(absl::ZeroDuration(),
                                                  "once more");
                          }
                          return Outcome::Success();
                        }
                        if (job.payload == "fail")
                          return Outcome::Fail("poisoned");
                        last_attempt_flag = job.is_last_attempt();
                        return Outcome::Retry("no luck");
                      },
                      Queue(4))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());

  EXPECT_TRUE(
      Eventually([&] { return IsSucceeded(client, ok); }, absl::Seconds(20)));
  EXPECT_TRUE(
      Eventually([&] { return IsSucceeded(client, now); }, absl::Seconds(20)));
  EXPECT_TRUE(Eventually(
      [&] {
        auto j = Get(client, later);
        return j && j->state == JobState::kScheduled &&
               j->last_error == "again later";
      },
      absl::Seconds(20)));
  EXPECT_TRUE(Eventually(
      [&] {
        auto j = Get(client, fail);
        return j && j->state == JobState::kDead && j->last_error == "poisoned";
      },
      absl::Seconds(20)));
  EXPECT_TRUE(Eventually(
      [&] {
        auto j = Get(client, last);
        return j && j->state == JobState::kDead;
      },
      absl::Seconds(20)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());

  EXPECT_EQ(journal.CountFor(ok), 1);
  EXPECT_EQ(journal.CountFor(now), 2);  // retried at once, then succeeded
  EXPECT_EQ(journal.CountFor(later), 1);
  EXPECT_EQ(journal.CountFor(fail), 1);  // dead letter: never retried
  EXPECT_EQ(journal.CountFor(last), 1);  // out of attempts: dead
  EXPECT_TRUE(last_attempt_flag.load());
}

TEST_F(WorkerPgTest, ExceptionsRetryWithTheirMessage) {
  Client client = NewClient();
  const std::string id = Enqueue(client, "throws", "x");
  Journal journal;
  Worker worker(Options("w-throws"));
  ASSERT_TRUE(worker
                  .Register(
                      "throws",
                      [&](const Job& job) {
                        journal.Add(job, "w");
                        if (job.attempt == 1) {
                          throw std::runtime_error("disk on fire");
                        }
                        return Outcome::Success();
                      },
                      Queue(1))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  // First attempt: nacked with the exception's message, queue backoff (~1 s).
  EXPECT_TRUE(Eventually(
      [&] {
        auto j = Get(client, id);
        return (j && j->last_error == "disk on fire") ||
               journal.CountFor(id) >= 2;
      },
      absl::Seconds(20)));
  // Second attempt succeeds.
  EXPECT_TRUE(
      Eventually([&] { return IsSucceeded(client, id); }, absl::Seconds(30)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());
  const auto entries = journal.entries();
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].attempt, 1);
  EXPECT_EQ(entries[1].attempt, 2);
}

// ---- Lease extension
// ---------------------------------------------------------

TEST_F(WorkerPgTest,
       HandlerRunningThreeTimesTheVisibilityTimeoutIsNotRedelivered) {
  Client client = NewClient();
  const std::string id = Enqueue(client, "slow", "x");
  Journal journal;
  // The handler returns once spoold shows the lease extended to more than
  // 3.25 x the 2 s visibility timeout past its first expiry: it ran that
  // long on the server's clock and was never let lapse.
  auto slow = [&journal, &client](const std::string& name) {
    return [&journal, &client, name](const Job& job) {
      journal.Add(job, name);
      Eventually(
          [&] {
            std::optional<JobInfo> info = Get(client, job.id);
            return info.has_value() && info->lease_expires_at.has_value() &&
                   *info->lease_expires_at - job.lease_expires_at >=
                       absl::Seconds(6.5);
          },
          absl::Seconds(30));
      return Outcome::Success();
    };
  };
  // Two workers poll the queue: a lapsed lease would reach the other one.
  Worker a(Options("w-slow-a"));
  Worker b(Options("w-slow-b"));
  ASSERT_TRUE(a.Register("slow", slow("a"), Queue(1, absl::Seconds(2))).ok());
  ASSERT_TRUE(b.Register("slow", slow("b"), Queue(1, absl::Seconds(2))).ok());
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(b.Start().ok());
  // A (wrong) redelivery would start before the job succeeds: a lapsed
  // lease makes the first handler's ack stale, so only the second can
  // succeed it, after its journal entry.
  EXPECT_TRUE(
      Eventually([&] { return IsSucceeded(client, id); }, absl::Seconds(30)));
  EXPECT_TRUE(a.Stop(absl::Seconds(10)).ok());
  EXPECT_TRUE(b.Stop(absl::Seconds(10)).ok());
  const auto entries = journal.entries();
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0].attempt, 1);
}

// ---- Concurrency
// -------------------------------------------------------------

TEST_F(WorkerPgTest, ConcurrencyLimitIsHonoured) {
  constexpr int kConcurrency = 4;
  Client client = NewClient();
  std::vector<std::string> payloads(40, "x");
  const std::vector<std::string> ids = EnqueueAll(client, "conc", payloads);
  ASSERT_EQ(ids.size(), 40u);
  ConcurrencyGauge gauge;
  Journal journal;
  Worker worker(Options("w-conc"));
  ASSERT_TRUE(worker
                  .Register(
                      "conc",
                      [&](const Job& job) {
                        gauge.Enter();
                        journal.Add(job, "w");
                        // Hold the slot until all are busy (or the last
                        // jobs are running), so the worker is at its limit.
                        Eventually(
                            [&] {
                              return gauge.now() == kConcurrency ||
                                     journal.Ids().size() > 40 - kConcurrency;
                            },
                            absl::Seconds(10));
                        gauge.Exit();
                        return Outcome::Success();
                      },
                      Queue(kConcurrency))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  EXPECT_TRUE(Eventually([&] { return journal.Ids().size() == 40; },
                         absl::Seconds(60)));
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());
  EXPECT_EQ(gauge.max(), kConcurrency);
  EXPECT_EQ(journal.entries().size(), 40u);
}

// ---- Graceful stop ----------------------------------------------------------

TEST_F(WorkerPgTest, StopHandsLeftoversToAnotherWorkerWithinASecond) {
  Client client = NewClient();
  const std::vector<std::string> ids =
      EnqueueAll(client, "handoff", {"a", "b", "c"});
  ASSERT_EQ(ids.size(), 3u);
  std::atomic<int> started{0};
  std::atomic<int> cancelled{0};
  Worker a(Options("w-handoff-a"));
  ASSERT_TRUE(
      a.Register(
           "handoff",
           [&](const Job& job) {
             ++started;
             if (job.cancellation.WaitForCancellation(absl::Seconds(60))) {
               ++cancelled;
             }
             return Outcome::Success();
           },
           Queue(3))
          .ok());
  ASSERT_TRUE(a.Start().ok());
  ASSERT_TRUE(
      Eventually([&] { return started.load() == 3; }, absl::Seconds(20)));

  Journal journal;
  Worker b(Options("w-handoff-b"));
  ASSERT_TRUE(b.Register(
                   "handoff",
                   [&](const Job& job) {
                     journal.Add(job, "b");
                     return Outcome::Success();
                   },
                   Queue(3))
                  .ok());
  ASSERT_TRUE(b.Start().ok());
  // b is long-polling an empty queue now.
  absl::SleepFor(absl::Milliseconds(300));
  EXPECT_TRUE(journal.entries().empty());

  const absl::Status stopped = a.Stop(absl::Milliseconds(300));
  const absl::Time stop_returned = absl::Now();
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDeadlineExceeded) << stopped;
  EXPECT_EQ(cancelled.load(), 3);
  EXPECT_TRUE(
      Eventually([&] { return journal.Ids().size() == 3; }, absl::Seconds(10)));
  for (const Journal::Entry& e : journal.entries()) {
    EXPECT_EQ(e.attempt, 2) << e.job_id;
    EXPECT_LT(e.at - stop_returned, absl::Seconds(1)) << e.job_id;
  }
  for (const std::string& id : ids) {
    EXPECT_TRUE(
        Eventually([&] { return IsSucceeded(client, id); }, absl::Seconds(10)));
  }
  EXPECT_TRUE(b.Stop(absl::Seconds(10)).ok());
}

// ---- Crashes and restarts
// ----------------------------------------------------

TEST_F(WorkerPgTest,
       KilledWorkerProcessJobsAreRedeliveredAfterVisibilityTimeout) {
  Client client = NewClient();
  const std::vector<std::string> ids =
      EnqueueAll(client, "crash", {"a", "b", "c"});
  ASSERT_EQ(ids.size(), 3u);
  absl::StatusOr<std::unique_ptr<WorkerProcess>> p1 = WorkerProcess::Start(
      dir_, "p1", {spoold_->Target()}, "crash",
      {"--concurrency=3", "--sleep_ms=120000", "--visibility_timeout_ms=2000"});
  ASSERT_TRUE(p1.ok()) << p1.status();
  ASSERT_TRUE(
      Eventually([&] { return CountKind((*p1)->Records(), "start") == 3; },
                 absl::Seconds(30)))
      << (*p1)->LogTail();
  // Let an extension happen first: the jobs are alive and well.
  const std::optional<JobInfo> leased = Get(client, ids[0]);
  ASSERT_TRUE(leased.has_value() && leased->lease_expires_at.has_value());
  ASSERT_TRUE(Eventually(
      [&] {
        std::optional<JobInfo> now = Get(client, ids[0]);
        return now.has_value() && now->lease_expires_at.has_value() &&
               *now->lease_expires_at > *leased->lease_expires_at;
      },
      absl::Seconds(10)));
  (*p1)->Kill9();
  const absl::Time killed = absl::Now();

  Journal journal;
  Worker b(Options("w-crash-b"));
  ASSERT_TRUE(b.Register(
                   "crash",
                   [&](const Job& job) {
                     journal.Add(job, "b");
                     return Outcome::Success();
                   },
                   Queue(3))
                  .ok());
  ASSERT_TRUE(b.Start().ok());
  EXPECT_TRUE(
      Eventually([&] { return journal.Ids().size() == 3; }, absl::Seconds(30)));
  EXPECT_TRUE(b.Stop(absl::Seconds(10)).ok());
  for (const Journal::Entry& e : journal.entries()) {
    EXPECT_EQ(e.attempt, 2) << e.job_id;
    // Back once the 2 s lease ran out (generous upper bound).
    EXPECT_LT(e.at - killed, absl::Seconds(15)) << e.job_id;
  }
  EXPECT_EQ(journal.Ids(), std::set<std::string>(ids.begin(), ids.end()));
  EXPECT_EQ(CountKind((*p1)->Records(), "ok"), 0);
}

TEST_F(WorkerPgTest, WorkerSurvivesSpooldRestartWithoutLosingJobs) {
  constexpr int kJobs = 600;
  Journal journal;
  auto observer = std::make_shared<RecordingObserver>();
  WorkerOptions options = Options("w-restart");
  options.observer = observer;
  Worker worker(std::move(options));
  ASSERT_TRUE(worker
                  .Register(
                      "restart",
                      [&](const Job& job) {
                        journal.Add(job, "w");
                        absl::SleepFor(absl::Milliseconds(5));
                        return Outcome::Success();
                      },
                      Queue(8, absl::Seconds(10)))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());

  // A producer enqueues throughout; keyed jobs make its retries safe.
  std::vector<std::string> ids(kJobs);
  std::atomic<int> enqueued{0};
  std::atomic<int> enqueue_errors{0};
  std::thread producer([&] {
    Client client = NewClient();
    for (int i = 0; i < kJobs; ++i) {
      JobOptions job;
      job.queue = "restart";
      job.payload = absl::StrCat(i);
      job.idempotency_key = absl::StrCat("restart-", i);
      absl::StatusOr<EnqueueResult> r = client.Enqueue(job);
      if (r.ok()) {
        ids[i] = r->job_id;
      } else {
        ++enqueue_errors;
      }
      ++enqueued;
      absl::SleepFor(absl::Milliseconds(5));
    }
  });
  ASSERT_TRUE(Eventually([&] { return enqueued.load() >= kJobs / 3; },
                         absl::Seconds(60)));
  ASSERT_TRUE(spoold_->Kill9().ok());
  // Down until the worker has noticed.
  const int lease_errors = observer->lease_errors();
  ASSERT_TRUE(
      Eventually([&] { return observer->lease_errors() > lease_errors; },
                 absl::Seconds(30)));
  ASSERT_TRUE(spoold_->Restart().ok()) << spoold_->LogTail();
  producer.join();
  ASSERT_EQ(enqueue_errors.load(), 0);

  // Every job is handled (at least once) and finished on the server.
  EXPECT_TRUE(Eventually([&] { return journal.Ids().size() == kJobs; },
                         absl::Seconds(120)))
      << journal.Ids().size() << " of " << kJobs << " handled";
  Client client = NewClient();
  for (const std::string& id : ids) {
    EXPECT_TRUE(
        Eventually([&] { return IsSucceeded(client, id); }, absl::Seconds(30)))
        << id;
  }
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());
  EXPECT_GT(observer->lease_errors(), 0);  // it did notice the outage
}

TEST_F(WorkerPgTest, KeepsLeasingFromTheReplicaThatAnswers) {
  absl::StatusOr<std::unique_ptr<SpooldProcess>> second =
      SpooldProcess::Start(database_url_);
  ASSERT_TRUE(second.ok()) << second.status();
  const std::vector<std::string> targets = {spoold_->Target(),
                                            (*second)->Target()};
  Journal journal;
  Worker worker(Options("w-replicas", targets));
  ASSERT_TRUE(worker
                  .Register(
                      "replicas",
                      [&](const Job& job) {
                        journal.Add(job, "w");
                        return Outcome::Success();
                      },
                      Queue(4))
                  .ok());
  ASSERT_TRUE(worker.Start().ok());
  Client both = NewClient(targets);
  std::vector<std::string> ids = EnqueueAll(both, "replicas", {"a", "b", "c"});
  ASSERT_TRUE(
      Eventually([&] { return journal.Ids().size() == 3; }, absl::Seconds(20)));

  // One replica dies; the worker carries on with the other.
  ASSERT_TRUE(spoold_->Kill9().ok());
  Client survivor = NewClient({(*second)->Target()});
  for (int i = 0; i < 20; ++i) {
    JobOptions job;
    job.queue = "replicas";
    job.payload = absl::StrCat("after-", i);
    job.idempotency_key = job.payload;
    absl::StatusOr<EnqueueResult> r = survivor.Enqueue(job);
    ASSERT_TRUE(r.ok()) << r.status();
    ids.push_back(r->job_id);
  }
  EXPECT_TRUE(Eventually([&] { return journal.Ids().size() == ids.size(); },
                         absl::Seconds(30)))
      << journal.Ids().size() << " of " << ids.size();
  for (const std::string& id : ids) {
    EXPECT_TRUE(Eventually([&] { return IsSucceeded(survivor, id); },
                           absl::Seconds(20)))
        << id;
  }
  EXPECT_TRUE(worker.Stop(absl::Seconds(10)).ok());
}

// ---- Examples
// ------------------------------------------------------------------

TEST_F(WorkerPgTest, ExamplesRunEndToEnd) {
#if !defined(SPOOL_EXAMPLE_WORKER) || !defined(SPOOL_EXAMPLE_PRODUCER)
  GTEST_SKIP() << "examples not built (SPOOL_BUILD_EXAMPLES=OFF)";
#else
  const std::string worker_log = dir_ + "/example-worker.log";
  SpawnOptions worker;
  worker.argv = {SPOOL_EXAMPLE_WORKER,
                 absl::StrCat("--target=", spoold_->Target()),
                 "--concurrency=4"};
  worker.output_path = worker_log;
  absl::StatusOr<pid_t> pid = Spawn(worker);
  ASSERT_TRUE(pid.ok()) << pid.status();

  const std::string producer_log = dir_ + "/example-producer.log";
  SpawnOptions producer;
  producer.argv = {SPOOL_EXAMPLE_PRODUCER,
                   absl::StrCat("--target=", spoold_->Target()), "--count=10",
                   "--poison_every=5"};
  producer.output_path = producer_log;
  absl::StatusOr<int> produced = RunToCompletion(producer, absl::Seconds(60));
  ASSERT_TRUE(produced.ok()) << produced.status();
  ASSERT_EQ(*produced, 0) << ReadFileTail(producer_log, 4096);

  // "enqueued <id> <payload>" per job.
  std::vector<std::string> poisoned;
  int enqueued = 0;
  {
    std::ifstream in(producer_log);
    std::string line;
    while (std::getline(in, line)) {
      std::vector<std::string> parts = absl::StrSplit(line, ' ');
      if (parts.size() < 3 || parts[0] != "enqueued") continue;
      ++enqueued;
      if (parts[2] == "poison") poisoned.push_back(parts[1]);
    }
  }
  EXPECT_EQ(enqueued, 10);
  ASSERT_EQ(poisoned.size(), 2u);

  auto done_lines = [&worker_log] {
    std::ifstream in(worker_log);
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
      n += line.rfind("thumbnail done:", 0) == 0 ? 1 : 0;
    }
    return n;
  };
  // Some first attempts fail on purpose and come back after the queue's
  // backoff (about a second).
  EXPECT_TRUE(Eventually([&] { return done_lines() == 8; }, absl::Seconds(60)))
      << ReadFileTail(worker_log, 4096);
  Client client = NewClient();
  for (const std::string& id : poisoned) {
    EXPECT_TRUE(Eventually(
        [&] {
          auto j = Get(client, id);
          return j && j->state == JobState::kDead;
        },
        absl::Seconds(30)))
        << id;
  }
  const int status = SignalAndReap(*pid, SIGTERM, absl::Seconds(30));
  EXPECT_EQ(ExitCode(status), 0) << ReadFileTail(worker_log, 4096);
#endif
}

// ---- Scale: 2 replicas x 3 worker processes x 20,000 jobs
// ---------------------

TEST_F(WorkerPgTest,
       TwoReplicasThreeWorkerProcessesEachJobSucceedsExactlyOnce) {
  constexpr int kJobs = 20000;
  absl::StatusOr<std::unique_ptr<SpooldProcess>> second =
      SpooldProcess::Start(database_url_);
  ASSERT_TRUE(second.ok()) << second.status();
  const std::vector<std::string> targets = {spoold_->Target(),
                                            (*second)->Target()};

  std::vector<std::unique_ptr<WorkerProcess>> workers;
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<std::unique_ptr<WorkerProcess>> p =
        WorkerProcess::Start(dir_, absl::StrCat("scale-", i), targets, "scale",
                             {"--concurrency=16", "--sleep_ms=0"});
    ASSERT_TRUE(p.ok()) << p.status();
    workers.push_back(*std::move(p));
  }

  Client client = NewClient(targets);
  std::vector<std::string> payloads(kJobs);
  for (int i = 0; i < kJobs; ++i) payloads[i] = absl::StrCat("job-", i);
  const absl::Time start = absl::Now();
  const std::vector<std::string> ids = EnqueueAll(client, "scale", payloads);
  ASSERT_EQ(ids.size(), static_cast<size_t>(kJobs));
  ASSERT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(),
            static_cast<size_t>(kJobs));

  auto handled = [&workers]() {
    std::set<std::string> ok;
    for (const auto& w : workers) {
      for (const Record& r : w->Records()) {
        if (r.kind == "ok") ok.insert(r.job_id);
      }
    }
    return ok.size();
  };
  EXPECT_TRUE(
      Eventually([&] { return handled() == kJobs; }, absl::Seconds(400)))
      << handled() << " of " << kJobs << " handled";
  const absl::Duration took = absl::Now() - start;
  // Stop the workers gracefully: their Stop() flushes in-flight acks.
  for (const auto& w : workers) {
    EXPECT_EQ(w->Terminate(absl::Seconds(30)), 0) << w->LogTail();
  }

  std::map<std::string, int> successes;
  std::vector<int> per_worker;
  for (const auto& w : workers) {
    int n = 0;
    for (const Record& r : w->Records()) {
      if (r.kind != "ok") continue;
      ++successes[r.job_id];
      ++n;
    }
    per_worker.push_back(n);
  }
  int duplicates = 0;
  for (const auto& [id, count] : successes) duplicates += count > 1 ? 1 : 0;
  EXPECT_EQ(duplicates, 0);
  EXPECT_EQ(successes.size(), static_cast<size_t>(kJobs));
  for (const std::string& id : ids) {
    ASSERT_EQ(successes.count(id), 1u) << "job " << id << " never succeeded";
  }
  std::fprintf(stderr, "20,000 jobs in %s; per worker: %s\n",
               absl::FormatDuration(took).c_str(),
               absl::StrJoin(per_worker, ", ").c_str());
  // Nothing is left on the server: every job was acked.
  int left = 0;
  for (size_t i = 0; i < ids.size(); i += 97) {
    left += IsSucceeded(client, ids[i]) ? 0 : 1;
  }
  EXPECT_EQ(left, 0);
}

}  // namespace
}  // namespace spool::testing
