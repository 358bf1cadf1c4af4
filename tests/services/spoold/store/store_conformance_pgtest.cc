// The store conformance suite: the contract of every store operation, in the
// spirit of River's riverdrivertest. One value-parameterised suite that any
// store implementation must pass; each parameter is a harness that yields
// stores on a fresh, migrated database and can move that database's clock-
// dependent facts (expire a lease, make a job due, age a finished job). It
// runs against PostgreSQL here.
//
// The suite is written against the operations of StoreUnderTest only; the
// harness hooks are the one place that knows the schema.
#include <atomic>
#include <memory>
#include <ostream>
#include <pqxx/pqxx>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "core/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "store/migrator.h"
#include "store/pg_codec.h"
#include "store/session.h"
#include "tests/support/test_postgres.h"

namespace spool::store {
namespace {

using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

// The store the suite checks: the interface the queue core owns
// (core/store.h), which store::Session implements for PostgreSQL.
using StoreUnderTest = core::StoreSession;
using StorePtr = std::unique_ptr<StoreUnderTest>;

// What the suite needs from one implementation, on one fresh database.
class StoreHarness {
 public:
  virtual ~StoreHarness() = default;
  // A new store (its own connection) on this harness's database.
  virtual StorePtr NewStore() = 0;
  // Time travel: the job's lease expired a second ago.
  virtual void ExpireLease(int64_t job_id) = 0;
  // Time travel: the scheduled job's run time passed a second ago.
  virtual void MakeDue(int64_t job_id) = 0;
  // Time travel: the finished job finished `age` ago.
  virtual void AgeFinished(int64_t job_id, absl::Duration age) = 0;
  // Creates or changes a queue's settings ("succeeded_retention", "1 hour").
  virtual void SetQueue(const std::string& queue, const std::string& setting,
                        const std::string& value) = 0;
  // Rows of jobs / idempotency keys of a queue, read directly.
  virtual int64_t CountJobs(const std::string& queue) = 0;
  virtual int64_t CountKeys(const std::string& queue) = 0;
  // The depth bound stored for a depth-limited queue.
  virtual int64_t DepthBound(const std::string& queue) = 0;
  // Jobs written behind the depth bound's back (a replica that has not seen
  // the limit yet), and finished or removed the same way.
  virtual void InsertReadyJobsBypassingDepth(const std::string& queue,
                                             int n) = 0;
  virtual void FinishOldestJob(const std::string& queue) = 0;
  virtual void DeleteJobs(const std::string& queue) = 0;
  // Blocks until some session of this database waits on a lock.
  virtual void AwaitLockWaiter() = 0;
};

class PostgresHarness : public StoreHarness {
 public:
  explicit PostgresHarness(std::string url)
      : url_(std::move(url)), admin_(url_) {}

  StorePtr NewStore() override {
    auto s = Session::Connect(url_);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  void ExpireLease(int64_t job_id) override {
    Exec(
        absl::StrCat("UPDATE spool_jobs SET lease_expires_at = now() - "
                     "interval '1 second' WHERE id = ",
                     job_id));
  }
  void MakeDue(int64_t job_id) override {
    Exec(absl::StrCat(
        "UPDATE spool_jobs SET run_at = now() - interval '1 second' "
        "WHERE id = ",
        job_id));
  }
  void AgeFinished(int64_t job_id, absl::Duration age) override {
    Exec(absl::StrCat("UPDATE spool_jobs SET finished_at = now() - ",
                      absl::ToInt64Microseconds(age),
                      " * interval '1 microsecond' WHERE id = ", job_id));
  }
  void SetQueue(const std::string& queue, const std::string& setting,
                const std::string& value) override {
    pqxx::nontransaction tx(admin_);
    const std::string q = tx.quote(queue);
    tx.exec(absl::StrCat("INSERT INTO spool_queues (name) VALUES (", q,
                         ") ON CONFLICT DO NOTHING"));
    tx.exec(absl::StrCat("UPDATE spool_queues SET ", setting, " = ",
                         tx.quote(value), " WHERE name = ", q));
  }
  int64_t CountJobs(const std::string& queue) override {
    return Count("SELECT count(*) FROM spool_jobs WHERE queue = ", queue);
  }
  int64_t CountKeys(const std::string& queue) override {
    return Count("SELECT count(*) FROM spool_idempotency_keys WHERE queue = ",
                 queue);
  }
  int64_t DepthBound(const std::string& queue) override {
    return Count("SELECT depth_bound FROM spool_queues WHERE name = ", queue);
  }
  void InsertReadyJobsBypassingDepth(const std::string& queue, int n) override {
    pqxx::nontransaction tx(admin_);
    tx.exec(absl::StrCat(
        "INSERT INTO spool_jobs (queue, state, run_at, max_attempts, payload) "
        "SELECT ",
        tx.quote(queue), ", 2, now(), 1, '' FROM generate_series(1, ", n, ")"));
  }
  void FinishOldestJob(const std::string& queue) override {
    pqxx::nontransaction tx(admin_);
    tx.exec(absl::StrCat(
        "UPDATE spool_jobs SET state = 4, finished_at = now() WHERE id = "
        "(SELECT min(id) FROM spool_jobs WHERE queue = ",
        tx.quote(queue), ")"));
  }
  void DeleteJobs(const std::string& queue) override {
    pqxx::nontransaction tx(admin_);
    tx.exec(
        absl::StrCat("DELETE FROM spool_jobs WHERE queue = ", tx.quote(queue)));
  }
  void AwaitLockWaiter() override {
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (absl::Now() < deadline) {
      pqxx::nontransaction tx(admin_);
      if (tx.exec1("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                   "current_database() AND wait_event_type = 'Lock'")[0]
              .as<int64_t>() > 0) {
        return;
      }
      absl::SleepFor(absl::Milliseconds(5));  // Polling observable state.
    }
    ADD_FAILURE() << "no session waited on a lock within 60 s";
  }

 private:
  void Exec(const std::string& sql) {
    pqxx::nontransaction tx(admin_);
    tx.exec(sql);
  }
  int64_t Count(const std::string& sql, const std::string& queue) {
    pqxx::nontransaction tx(admin_);
    pqxx::row r = tx.exec1(absl::StrCat(sql, tx.quote(queue)));
    return r[0].is_null() ? -1 : r[0].as<int64_t>();
  }

  std::string url_;
  pqxx::connection admin_;
};

std::unique_ptr<StoreHarness> NewPostgresHarness() {
  auto url = testing::SharedPostgres()->CreateDatabase();
  if (!url.ok()) {
    ADD_FAILURE() << url.status();
    return nullptr;
  }
  auto applied = ApplyMigrations(*url);
  if (!applied.ok()) {
    ADD_FAILURE() << applied.status();
    return nullptr;
  }
  return std::make_unique<PostgresHarness>(*url);
}

// One suite parameter: an implementation's name and its harness factory.
struct StoreFactory {
  std::string name;
  std::unique_ptr<StoreHarness> (*make)();
};

void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    harness_ = GetParam().make();
    ASSERT_NE(harness_, nullptr);
    store_ = harness_->NewStore();
    ASSERT_NE(store_, nullptr);
  }

  NewJob Job(const std::string& queue, const std::string& payload = "p") {
    NewJob j;
    j.queue = queue;
    j.payload = payload;
    j.max_attempts = 3;
    return j;
  }
  int64_t Add(const NewJob& job) {
    auto r = store_->Enqueue({job});
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() && r->size() == 1 ? (*r)[0].job_id : 0;
  }
  std::vector<LeasedJob> LeaseN(const std::string& queue, int n) {
    LeaseParams p;
    p.queue = queue;
    p.max_jobs = n;
    auto r = store_->Lease(p);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : std::vector<LeasedJob>{};
  }
  LeasedJob LeaseOne(const std::string& queue) {
    std::vector<LeasedJob> jobs = LeaseN(queue, 1);
    EXPECT_EQ(jobs.size(), 1u);
    return jobs.empty() ? LeasedJob{} : jobs[0];
  }
  JobState StateOf(int64_t job_id) {
    auto j = store_->GetJob(job_id);
    EXPECT_TRUE(j.ok()) << j.status();
    return j.ok() ? j->state : JobState::kCancelled;
  }
  absl::Status AckStatus(int64_t job_id, const std::string& lease_id,
                         const std::string& result = "") {
    auto r = store_->Ack({{job_id, lease_id, result}});
    if (!r.ok()) return r.status();
    EXPECT_EQ(r->size(), 1u);
    return r->empty() ? absl::InternalError("no ack item") : (*r)[0].status;
  }

  static constexpr char kNoSuchLease[] = "00000000-0000-4000-8000-000000000000";
  std::unique_ptr<StoreHarness> harness_;
  StorePtr store_;
};

// ---------------------------------------------------------------------------
// Enqueue
// ---------------------------------------------------------------------------

// Enqueue has two statements: one for groups without idempotency keys and
// one that claims keys. Through either, every caller must get the id of the
// row holding its own job, in input order: payloads cut at the right offsets
// (empty, binary, multi-byte), and each job's queue, priority, run time,
// attempts and headers where they belong.
TEST_P(StoreConformanceTest, EnqueueGivesEachJobItsOwnRowInInputOrder) {
  const absl::Time past = absl::Now() - absl::Minutes(5);
  const absl::Time future = absl::Now() + absl::Hours(2);
  std::vector<NewJob> jobs(40);
  for (int i = 0; i < 40; ++i) {
    NewJob& j = jobs[i];
    j.queue = absl::StrCat("q", i % 3);
    j.priority = static_cast<int16_t>(i % 7 - 3);
    j.max_attempts = 1 + i;
    switch (i % 5) {
      case 0:
        j.payload = "";
        break;
      case 1:
        j.payload = std::string("\0\x01\xff", 3) + absl::StrCat(i);
        break;
      case 2:
        j.payload = std::string(100 + i, static_cast<char>('a' + i % 26));
        break;
      default:
        j.payload = absl::StrCat("job-", i, "-\xc3\xa9");
    }
    if (i % 4 == 1) j.delay = absl::Hours(1);
    if (i % 6 == 2) j.run_at = past;
    if (i % 6 == 3) j.run_at = future;
    if (i % 3 == 0) j.headers = {{"n", absl::StrCat(i)}};
  }
  auto check = [&](const std::vector<NewJob>& in,
                   const std::vector<EnqueueResult>& out) {
    ASSERT_EQ(out.size(), in.size());
    std::set<int64_t> ids;
    for (size_t i = 0; i < in.size(); ++i) {
      SCOPED_TRACE(absl::StrCat("job ", i));
      ids.insert(out[i].job_id);
      auto got = store_->GetJob(out[i].job_id);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->queue, in[i].queue);
      EXPECT_EQ(got->priority, in[i].priority);
      EXPECT_EQ(got->max_attempts, in[i].max_attempts);
      EXPECT_EQ(got->payload, in[i].payload);
      EXPECT_EQ(got->headers, in[i].headers);
      EXPECT_EQ(got->attempt, 0);
      const bool scheduled = in[i].run_at.has_value()
                                 ? *in[i].run_at > absl::Now()
                                 : in[i].delay > absl::ZeroDuration();
      EXPECT_EQ(got->state,
                scheduled ? JobState::kScheduled : JobState::kReady);
      EXPECT_EQ(out[i].scheduled_for.has_value(), scheduled);
      if (scheduled) {
        EXPECT_EQ(*out[i].scheduled_for, got->run_at);
      }
      if (in[i].run_at.has_value()) {
        EXPECT_EQ(ToMicros(got->run_at), ToMicros(*in[i].run_at));
      }
      EXPECT_FALSE(out[i].duplicate);
    }
    EXPECT_EQ(ids.size(), in.size());
  };
  auto plain = store_->Enqueue(jobs);
  ASSERT_TRUE(plain.ok()) << plain.status();
  check(jobs, *plain);
  // One key sends the whole group through the claiming statement.
  jobs[17].idempotency_key = "k";
  auto keyed = store_->Enqueue(jobs);
  ASSERT_TRUE(keyed.ok()) << keyed.status();
  check(jobs, *keyed);
  EXPECT_EQ(harness_->CountJobs("q0") + harness_->CountJobs("q1") +
                harness_->CountJobs("q2"),
            80);
}

TEST_P(StoreConformanceTest, KeyInsideItsWindowMapsToTheExistingJob) {
  NewJob job = Job("idem", "first");
  job.idempotency_key = "order-7";
  auto first = store_->Enqueue({job});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_FALSE((*first)[0].duplicate);
  NewJob again = job;
  again.payload = "second";
  NewJob other_queue = job;
  other_queue.queue = "idem2";
  auto second = store_->Enqueue({Job("idem", "plain"), again, other_queue});
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->size(), 3u);
  EXPECT_FALSE((*second)[0].duplicate);
  EXPECT_TRUE((*second)[1].duplicate);
  EXPECT_EQ((*second)[1].job_id, (*first)[0].job_id);
  // Keys are per queue.
  EXPECT_FALSE((*second)[2].duplicate);
  EXPECT_NE((*second)[2].job_id, (*first)[0].job_id);
  // The duplicate wrote nothing: the first job keeps its payload.
  EXPECT_EQ(harness_->CountJobs("idem"), 2);
  auto kept = store_->GetJob((*first)[0].job_id);
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(kept->payload, "first");
  EXPECT_EQ(kept->idempotency_key, "order-7");
}

// A key whose window passed is held while its job is still active, and
// taken over by a new job once that one finished.
TEST_P(StoreConformanceTest, KeyAfterItsWindowMakesANewJob) {
  NewJob job = Job("win");
  job.idempotency_key = "k";
  job.idempotency_window = absl::ZeroDuration();
  const int64_t id = Add(job);
  auto active = store_->Enqueue({job});
  ASSERT_TRUE(active.ok()) << active.status();
  EXPECT_TRUE((*active)[0].duplicate);
  EXPECT_EQ((*active)[0].job_id, id);

  LeasedJob l = LeaseOne("win");
  ASSERT_EQ(l.job_id, id);
  ASSERT_TRUE(AckStatus(id, l.lease_id).ok());
  auto fresh = store_->Enqueue({job});
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_FALSE((*fresh)[0].duplicate);
  EXPECT_NE((*fresh)[0].job_id, id);
  EXPECT_EQ(StateOf((*fresh)[0].job_id), JobState::kReady);
  EXPECT_EQ(harness_->CountJobs("win"), 1);
}

TEST_P(StoreConformanceTest, DelayedJobIsScheduledWithItsRunTime) {
  NewJob job = Job("later");
  job.delay = absl::Hours(1);
  const absl::Time before = absl::Now();
  auto r = store_->Enqueue({job});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE((*r)[0].scheduled_for.has_value());
  EXPECT_GT(*(*r)[0].scheduled_for, before + absl::Minutes(59));
  EXPECT_LT(*(*r)[0].scheduled_for, absl::Now() + absl::Minutes(61));
  auto got = store_->GetJob((*r)[0].job_id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kScheduled);
  EXPECT_EQ(got->run_at, *(*r)[0].scheduled_for);
  EXPECT_TRUE(LeaseN("later", 10).empty());
}

// ---------------------------------------------------------------------------
// EnqueueWithinDepth
// ---------------------------------------------------------------------------

// Depth-limited enqueues take the queues' locks in turn: a second writer
// waits for the first to commit, then builds on the bound it left.
TEST_P(StoreConformanceTest,
       EnqueueWithinDepthSerializesWritersOfALimitedQueue) {
  harness_->SetQueue("lim", "max_depth", "10");
  harness_->SetQueue("open", "max_depth", "0");
  StorePtr& a = store_;
  StorePtr b = harness_->NewStore();
  ASSERT_NE(b, nullptr);
  const absl::Duration kLong = absl::Hours(1);
  auto make = [](const std::string& queue, int n) {
    std::vector<NewJob> jobs(n);
    for (int i = 0; i < n; ++i) {
      jobs[i].queue = queue;
      jobs[i].payload = absl::StrCat(queue, i);
      jobs[i].max_attempts = 3;
    }
    return jobs;
  };
  std::vector<NewJob> first = make("lim", 4);
  first.push_back(make("open", 1)[0]);
  const std::vector<NewJob> second = make("lim", 3);
  std::atomic<bool> b_chose{false};
  QueueDepths seen_by_a, seen_by_b;
  std::thread other;
  auto in_a = a->EnqueueWithinDepth(
      {{"lim", 4}, {"open", 1}}, kLong,
      [&](const QueueDepths& d) -> const std::vector<NewJob>& {
        seen_by_a = d;
        // While this transaction holds the lock, another writer must wait.
        other = std::thread([&] {
          auto in_b = b->EnqueueWithinDepth(
              {{"lim", 3}}, kLong,
              [&](const QueueDepths& d2) -> const std::vector<NewJob>& {
                b_chose = true;
                seen_by_b = d2;
                return second;
              });
          EXPECT_TRUE(in_b.ok()) << in_b.status();
          if (in_b.ok()) {
            EXPECT_EQ(in_b->size(), second.size());
          }
        });
        harness_->AwaitLockWaiter();
        EXPECT_FALSE(b_chose.load());
        return first;
      });
  other.join();
  ASSERT_TRUE(in_a.ok()) << in_a.status();
  ASSERT_EQ(in_a->size(), first.size());
  // Only the limited queue is reported. The first writer counted (no bound
  // yet); the second used the bound the first left, which covers its jobs.
  EXPECT_FALSE(seen_by_a.contains("open"));
  ASSERT_TRUE(seen_by_a.contains("lim"));
  EXPECT_EQ(seen_by_a["lim"].depth, 0);
  EXPECT_EQ(seen_by_a["lim"].max_depth, 10);
  EXPECT_TRUE(seen_by_a["lim"].counted);
  ASSERT_TRUE(seen_by_b.contains("lim"));
  EXPECT_EQ(seen_by_b["lim"].depth, 4);
  EXPECT_FALSE(seen_by_b["lim"].counted);

  EXPECT_EQ(harness_->CountJobs("lim"), 7);
  EXPECT_EQ(harness_->DepthBound("lim"), 7);
  // Finishing a job lowers the depth but not the bound: wanting 8 more does
  // not fit the bound, so the jobs are counted (finished ones do not count).
  harness_->FinishOldestJob("lim");
  const std::vector<NewJob> many = make("lim", 8);
  const std::vector<NewJob> none;
  QueueDepths seen;
  auto with = [&](const std::vector<NewJob>& jobs) {
    return [&](const QueueDepths& d) -> const std::vector<NewJob>& {
      seen = d;
      return jobs;
    };
  };
  auto more = a->EnqueueWithinDepth({{"lim", 8}}, kLong, with(many));
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(seen["lim"].depth, 6);
  EXPECT_TRUE(seen["lim"].counted);
  // Counting stops at the limit.
  auto capped = b->EnqueueWithinDepth({{"lim", 1}}, kLong, with(none));
  ASSERT_TRUE(capped.ok()) << capped.status();
  EXPECT_TRUE(capped->empty());
  EXPECT_EQ(seen["lim"].depth, 10);
  EXPECT_TRUE(seen["lim"].counted);
  // Jobs that arrived without the lock (a replica that has not yet seen the
  // limit) are found once the bound is older than `recount_after`.
  harness_->DeleteJobs("lim");
  auto empty = a->EnqueueWithinDepth({{"lim", 1}}, kLong, with(none));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(seen["lim"].depth, 0);
  harness_->InsertReadyJobsBypassingDepth("lim", 3);
  auto fresh = a->EnqueueWithinDepth({{"lim", 1}}, kLong, with(none));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(seen["lim"].depth, 0);
  EXPECT_FALSE(seen["lim"].counted);
  auto stale =
      a->EnqueueWithinDepth({{"lim", 1}}, absl::ZeroDuration(), with(none));
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(seen["lim"].depth, 3);
  EXPECT_TRUE(seen["lim"].counted);
}

// The depth seen is exact at the bound, and a refused or failed call
// leaves neither jobs nor a new bound behind.
TEST_P(StoreConformanceTest, EnqueueWithinDepthIsExactAndRefusalWritesNothing) {
  harness_->SetQueue("cap", "max_depth", "3");
  std::vector<NewJob> three = {Job("cap"), Job("cap"), Job("cap")};
  QueueDepths seen;
  auto with = [&](const std::vector<NewJob>& jobs) {
    return [&](const QueueDepths& d) -> const std::vector<NewJob>& {
      seen = d;
      return jobs;
    };
  };
  auto filled = store_->EnqueueWithinDepth({{"cap", 3}}, absl::ZeroDuration(),
                                           with(three));
  ASSERT_TRUE(filled.ok()) << filled.status();
  EXPECT_EQ(filled->size(), 3u);
  EXPECT_EQ(seen["cap"].depth, 0);
  const std::vector<NewJob> none;
  auto full = store_->EnqueueWithinDepth({{"cap", 1}}, absl::ZeroDuration(),
                                         with(none));
  ASSERT_TRUE(full.ok()) << full.status();
  EXPECT_TRUE(full->empty());
  EXPECT_EQ(seen["cap"].depth, 3);
  EXPECT_EQ(seen["cap"].max_depth, 3);
  EXPECT_TRUE(seen["cap"].counted);
  EXPECT_EQ(harness_->CountJobs("cap"), 3);
  EXPECT_EQ(harness_->DepthBound("cap"), 3);

  // One free slot, but the chosen job is invalid: the whole call fails and
  // rolls back, bound included.
  harness_->FinishOldestJob("cap");
  NewJob bad = Job("cap");
  bad.priority = 1000;  // Outside the stored range.
  const std::vector<NewJob> invalid = {bad};
  auto failed = store_->EnqueueWithinDepth({{"cap", 1}}, absl::ZeroDuration(),
                                           with(invalid));
  EXPECT_FALSE(failed.ok());
  EXPECT_EQ(seen["cap"].depth, 2);
  EXPECT_EQ(harness_->CountJobs("cap"), 3);  // Two live, one finished.
  EXPECT_EQ(harness_->DepthBound("cap"), 3);
}

// ---------------------------------------------------------------------------
// Lease and ReleaseLeases
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, LeaseTakesPriorityThenRunAtThenId) {
  const absl::Time t0 = absl::Now() - absl::Hours(1);
  std::vector<NewJob> jobs;
  // (priority, minutes after t0)
  const std::pair<int, int> spec[] = {{0, 5},  {5, 9}, {0, 1}, {5, 2},
                                      {-3, 0}, {0, 1}, {5, 2}};
  for (const auto& [prio, minutes] : spec) {
    NewJob j = Job("order");
    j.priority = static_cast<int16_t>(prio);
    j.run_at = t0 + absl::Minutes(minutes);
    jobs.push_back(j);
  }
  auto r = store_->Enqueue(jobs);
  ASSERT_TRUE(r.ok()) << r.status();
  auto id = [&](int i) { return (*r)[i].job_id; };
  // 5@2 (3, then 6 by id), 5@9, 0@1 (2, then 5), 0@5, -3@0.
  const std::vector<int64_t> want = {id(3), id(6), id(1), id(2),
                                     id(5), id(0), id(4)};
  std::vector<LeasedJob> first = LeaseN("order", 3);
  std::vector<LeasedJob> rest = LeaseN("order", 10);
  std::vector<int64_t> got;
  for (const auto& j : first) got.push_back(j.job_id);
  EXPECT_EQ(first.size(), 3u);  // max_jobs bounds one lease.
  for (const auto& j : rest) got.push_back(j.job_id);
  EXPECT_EQ(got, want);
  EXPECT_TRUE(LeaseN("order", 10).empty());
}

TEST_P(StoreConformanceTest, LeaseKeepsToTheByteBudgetButTakesTheFirstJob) {
  for (int i = 0; i < 4; ++i) Add(Job("bytes", std::string(1000, 'x')));
  LeaseParams p;
  p.queue = "bytes";
  p.max_jobs = 10;
  p.max_bytes = 1;  // Smaller than any job: the first is taken anyway.
  auto one = store_->Lease(p);
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->size(), 1u);
  p.max_bytes = 2 * 1200;  // Two jobs of 1000 bytes + 200 each, exactly.
  auto two = store_->Lease(p);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->size(), 2u);
  p.max_bytes = 2 * 1200 - 1;
  auto last = store_->Lease(p);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->size(), 1u);
  // Jobs locked but left out of a lease stay ready for the next one.
  EXPECT_EQ(harness_->CountJobs("bytes"), 4);
}

TEST_P(StoreConformanceTest, LeaseCountsTheAttemptWithAFreshLease) {
  NewJob job = Job("att");
  job.headers = {{"a", "1"}};
  const int64_t id = Add(job);
  LeaseParams p;
  p.queue = "att";
  p.visibility_timeout = absl::Minutes(10);
  p.worker_id = "w-1";
  const absl::Time before = absl::Now();
  auto first = store_->Lease(p);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->size(), 1u);
  const LeasedJob& l1 = (*first)[0];
  EXPECT_EQ(l1.job_id, id);
  EXPECT_EQ(l1.attempt, 1);
  EXPECT_EQ(l1.max_attempts, 3);
  EXPECT_EQ(l1.queue, "att");
  EXPECT_EQ(l1.payload, "p");
  EXPECT_EQ(l1.headers, job.headers);
  EXPECT_FALSE(l1.lease_id.empty());
  EXPECT_GT(l1.lease_expires_at, before + absl::Minutes(9));
  auto got = store_->GetJob(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kLeased);
  EXPECT_EQ(got->worker_id, "w-1");
  EXPECT_TRUE(LeaseN("att", 1).empty());  // Leased jobs are not handed out.

  NackParams n;
  n.job_id = id;
  n.lease_id = l1.lease_id;
  n.retry_delay = absl::ZeroDuration();
  ASSERT_TRUE(store_->Nack(n).ok());
  LeasedJob l2 = LeaseOne("att");
  EXPECT_EQ(l2.job_id, id);
  EXPECT_EQ(l2.attempt, 2);
  EXPECT_NE(l2.lease_id, l1.lease_id);
}

TEST_P(StoreConformanceTest, ConcurrentStoresNeverLeaseTheSameJob) {
  constexpr int kJobs = 3000;
  {
    std::vector<NewJob> jobs(kJobs);
    for (int i = 0; i < kJobs; ++i) {
      jobs[i].queue = "race";
      jobs[i].payload = absl::StrCat(i);
    }
    ASSERT_TRUE(store_->Enqueue(jobs).ok());
  }
  std::vector<StorePtr> stores;
  for (int t = 0; t < 6; ++t) {
    stores.push_back(harness_->NewStore());
    ASSERT_NE(stores.back(), nullptr);
  }
  absl::Mutex mu;
  std::multiset<int64_t> seen;
  std::vector<std::thread> threads;
  for (StorePtr& s : stores) {
    threads.emplace_back([&] {
      LeaseParams p;
      p.queue = "race";
      p.max_jobs = 7;
      while (true) {
        auto jobs = s->Lease(p);
        ASSERT_TRUE(jobs.ok()) << jobs.status();
        if (jobs->empty()) return;
        absl::MutexLock lock(&mu);
        for (const auto& j : *jobs) seen.insert(j.job_id);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(),
            static_cast<size_t>(kJobs));
}

TEST_P(StoreConformanceTest, ReleasedLeasesDoNotCountAnAttempt) {
  Add(Job("rel"));
  std::vector<LeasedJob> leased = LeaseN("rel", 1);
  ASSERT_EQ(leased.size(), 1u);
  ASSERT_TRUE(store_->ReleaseLeases(leased).ok());
  EXPECT_EQ(StateOf(leased[0].job_id), JobState::kReady);
  std::vector<LeasedJob> again = LeaseN("rel", 1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].attempt, 1);
  // The released lease id is dead: releasing it again changes nothing.
  ASSERT_TRUE(store_->ReleaseLeases(leased).ok());
  auto lease = store_->GetJobLease(again[0].job_id);
  ASSERT_TRUE(lease.ok());
  EXPECT_EQ(lease->state, JobState::kLeased);
  EXPECT_EQ(lease->lease_id, again[0].lease_id);
  EXPECT_EQ(lease->attempt, 1);
}

// ---------------------------------------------------------------------------
// Ack, Nack, ExtendLease, GetJob
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, AckIsFencedByTheLease) {
  const int64_t id = Add(Job("ack"));
  LeasedJob l = LeaseOne("ack");
  absl::Status wrong = AckStatus(id, kNoSuchLease);
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong)) << wrong;
  EXPECT_EQ(StateOf(id), JobState::kLeased);
  absl::Status unknown = AckStatus(id + 1000, l.lease_id);
  EXPECT_TRUE(absl::IsNotFound(unknown)) << unknown;

  auto ok = store_->Ack({{id, l.lease_id, "r"}});
  ASSERT_TRUE(ok.ok()) << ok.status();
  ASSERT_EQ(ok->size(), 1u);
  EXPECT_TRUE((*ok)[0].status.ok()) << (*ok)[0].status;
  EXPECT_EQ((*ok)[0].queue, "ack");
  EXPECT_TRUE((*ok)[0].processing.has_value());
  // Queues that keep no succeeded jobs delete them.
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob(id).status()));
  EXPECT_EQ(harness_->CountJobs("ack"), 0);
  EXPECT_TRUE(absl::IsNotFound(AckStatus(id, l.lease_id)));
}

TEST_P(StoreConformanceTest, RetainedSucceededJobsKeepTheirResult) {
  harness_->SetQueue("keep", "succeeded_retention", "1 hour");
  const int64_t id = Add(Job("keep"));
  LeasedJob l = LeaseOne("keep");
  ASSERT_TRUE(AckStatus(id, l.lease_id, std::string("ok\0!", 4)).ok());
  auto got = store_->GetJob(id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->state, JobState::kSucceeded);
  EXPECT_EQ(got->result, std::string("ok\0!", 4));
  EXPECT_TRUE(got->finished_at.has_value());
  absl::Status twice = AckStatus(id, l.lease_id);
  EXPECT_TRUE(absl::IsFailedPrecondition(twice)) << twice;
  EXPECT_THAT(std::string(twice.message()), HasSubstr("already succeeded"));
}

TEST_P(StoreConformanceTest, NackRetriesScheduledOrReady) {
  // Backoff comes from the queue's settings row.
  harness_->SetQueue("retry", "backoff_initial", "1 minute");
  const int64_t id = Add(Job("retry"));
  LeasedJob l = LeaseOne("retry");
  NackParams n;
  n.job_id = id;
  n.lease_id = l.lease_id;
  n.retry_delay = absl::Hours(1);
  n.error = "boom";
  const absl::Time before = absl::Now();
  auto later = store_->Nack(n);
  ASSERT_TRUE(later.ok()) << later.status();
  EXPECT_EQ(later->state, JobState::kScheduled);
  EXPECT_EQ(later->queue, "retry");
  ASSERT_TRUE(later->next_run_at.has_value());
  EXPECT_GT(*later->next_run_at, before + absl::Minutes(59));
  auto got = store_->GetJob(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kScheduled);
  EXPECT_EQ(got->last_error, "boom");
  EXPECT_EQ(got->run_at, *later->next_run_at);
  EXPECT_TRUE(LeaseN("retry", 1).empty());

  // The queue's backoff when no delay is given (1 minute, jittered).
  harness_->MakeDue(id);
  ASSERT_TRUE(store_->PromoteScheduled(10).ok());
  LeasedJob l2 = LeaseOne("retry");
  n.lease_id = l2.lease_id;
  n.retry_delay.reset();
  auto backoff = store_->Nack(n);
  ASSERT_TRUE(backoff.ok()) << backoff.status();
  EXPECT_EQ(backoff->state, JobState::kScheduled);
  ASSERT_TRUE(backoff->next_run_at.has_value());
  EXPECT_GT(*backoff->next_run_at, absl::Now() + absl::Seconds(30));

  harness_->MakeDue(id);
  ASSERT_TRUE(store_->PromoteScheduled(10).ok());
  LeasedJob l3 = LeaseOne("retry");
  ASSERT_EQ(l3.attempt, 3);
  // No delay: ready at once, unless the attempts are used up (max 3).
  n.lease_id = l3.lease_id;
  n.retry_delay = absl::ZeroDuration();
  auto last = store_->Nack(n);
  ASSERT_TRUE(last.ok()) << last.status();
  EXPECT_EQ(last->state, JobState::kDead);
  EXPECT_FALSE(last->next_run_at.has_value());
  EXPECT_EQ(StateOf(id), JobState::kDead);

  const int64_t now_id = Add(Job("retry"));
  LeasedJob l4 = LeaseOne("retry");
  n.job_id = now_id;
  n.lease_id = l4.lease_id;
  auto ready = store_->Nack(n);
  ASSERT_TRUE(ready.ok()) << ready.status();
  EXPECT_EQ(ready->state, JobState::kReady);
  EXPECT_EQ(StateOf(now_id), JobState::kReady);
}

TEST_P(StoreConformanceTest, NackDeadLettersAndRefusesAStaleLease) {
  const int64_t id = Add(Job("dl"));
  LeasedJob l = LeaseOne("dl");
  NackParams n;
  n.job_id = id;
  n.lease_id = kNoSuchLease;
  n.dead_letter = true;
  auto stale = store_->Nack(n);
  EXPECT_TRUE(absl::IsFailedPrecondition(stale.status())) << stale.status();
  EXPECT_EQ(StateOf(id), JobState::kLeased);
  n.lease_id = l.lease_id;
  n.error = "poison";
  auto dead = store_->Nack(n);
  ASSERT_TRUE(dead.ok()) << dead.status();
  EXPECT_EQ(dead->state, JobState::kDead);
  auto got = store_->GetJob(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->state, JobState::kDead);
  EXPECT_EQ(got->attempt, 1);  // Not all of its 3 attempts were used.
  EXPECT_EQ(got->last_error, "poison");
  EXPECT_TRUE(got->finished_at.has_value());
  // The lease ended with the nack.
  EXPECT_TRUE(absl::IsFailedPrecondition(store_->Nack(n).status()));
  EXPECT_TRUE(absl::IsFailedPrecondition(AckStatus(id, l.lease_id)));
}

TEST_P(StoreConformanceTest, ExtendLeaseIsFenced) {
  const int64_t id = Add(Job("ext"));
  LeasedJob l = LeaseOne("ext");
  auto extended = store_->ExtendLease(id, l.lease_id, absl::Hours(2));
  ASSERT_TRUE(extended.ok()) << extended.status();
  EXPECT_GT(*extended, l.lease_expires_at + absl::Minutes(90));
  auto got = store_->GetJob(id);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->lease_expires_at, *extended);
  auto wrong = store_->ExtendLease(id, kNoSuchLease, absl::Hours(2));
  EXPECT_TRUE(absl::IsFailedPrecondition(wrong.status())) << wrong.status();
  ASSERT_TRUE(AckStatus(id, l.lease_id).ok());
  auto after = store_->ExtendLease(id, l.lease_id, absl::Hours(2));
  EXPECT_TRUE(absl::IsFailedPrecondition(after.status())) << after.status();
}

TEST_P(StoreConformanceTest, GetJobReadsEveryFieldAndNotFoundOtherwise) {
  NewJob job = Job("get", std::string("\0bin", 4));
  job.priority = 7;
  job.max_attempts = 5;
  job.idempotency_key = "key-1";
  job.headers = {{"a", "1"}, {"b", "2"}};
  const absl::Time before = absl::Now();
  const int64_t id = Add(job);
  auto got = store_->GetJob(id);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->job_id, id);
  EXPECT_EQ(got->queue, "get");
  EXPECT_EQ(got->state, JobState::kReady);
  EXPECT_EQ(got->priority, 7);
  EXPECT_EQ(got->attempt, 0);
  EXPECT_EQ(got->max_attempts, 5);
  EXPECT_EQ(got->payload, job.payload);
  EXPECT_EQ(got->headers, job.headers);
  EXPECT_EQ(got->idempotency_key, "key-1");
  EXPECT_GE(got->enqueued_at, before - absl::Seconds(5));
  EXPECT_FALSE(got->lease_expires_at.has_value());
  EXPECT_FALSE(got->finished_at.has_value());
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob(id + 1000).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetJobLease(id + 1000).status()));
}

// ---------------------------------------------------------------------------
// Maintenance
// ---------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ReaperReturnsExpiredLeasesOrKillsTheLastAttempt) {
  NewJob once = Job("reap");
  once.max_attempts = 1;
  const int64_t again_id = Add(Job("reap"));
  const int64_t last_id = Add(once);
  const int64_t held_id = Add(Job("reap"));
  std::vector<LeasedJob> leased = LeaseN("reap", 3);
  ASSERT_EQ(leased.size(), 3u);
  harness_->ExpireLease(again_id);
  harness_->ExpireLease(last_id);
  auto none = store_->ReapExpiredLeases(0);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->total, 0);
  auto reaped = store_->ReapExpiredLeases(10);
  ASSERT_TRUE(reaped.ok()) << reaped.status();
  EXPECT_EQ(reaped->total, 2);
  EXPECT_THAT(reaped->made_ready, UnorderedElementsAre(Pair("reap", 1)));
  EXPECT_THAT(reaped->dead, UnorderedElementsAre(Pair("reap", 1)));
  auto back = store_->GetJob(again_id);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->state, JobState::kReady);
  EXPECT_THAT(back->last_error, HasSubstr("lease expired"));
  EXPECT_EQ(StateOf(last_id), JobState::kDead);
  EXPECT_EQ(StateOf(held_id), JobState::kLeased);  // Not expired.
  // The expired lease is no longer good for anything.
  for (const LeasedJob& l : leased) {
    if (l.job_id == held_id) continue;
    EXPECT_TRUE(absl::IsFailedPrecondition(AckStatus(l.job_id, l.lease_id)));
  }
  auto idle = store_->ReapExpiredLeases(10);
  ASSERT_TRUE(idle.ok());
  EXPECT_EQ(idle->total, 0);
}

TEST_P(StoreConformanceTest, PromoteScheduledMovesDueJobsWithinTheLimit) {
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) {
    NewJob j = Job(i < 3 ? "prom" : "prom2");
    j.delay = absl::Hours(1);
    ids.push_back(Add(j));
  }
  auto nothing = store_->PromoteScheduled(10);
  ASSERT_TRUE(nothing.ok()) << nothing.status();
  EXPECT_TRUE(nothing->empty());
  harness_->MakeDue(ids[0]);
  harness_->MakeDue(ids[1]);
  harness_->MakeDue(ids[3]);
  auto one = store_->PromoteScheduled(1);
  ASSERT_TRUE(one.ok()) << one.status();
  int64_t promoted = 0;
  for (const auto& [queue, n] : *one) promoted += n;
  EXPECT_EQ(promoted, 1);
  auto rest = store_->PromoteScheduled(10);
  ASSERT_TRUE(rest.ok()) << rest.status();
  for (const auto& [queue, n] : *rest) promoted += n;
  EXPECT_EQ(promoted, 3);
  EXPECT_EQ(StateOf(ids[0]), JobState::kReady);
  EXPECT_EQ(StateOf(ids[1]), JobState::kReady);
  EXPECT_EQ(StateOf(ids[2]), JobState::kScheduled);
  EXPECT_EQ(StateOf(ids[3]), JobState::kReady);
  EXPECT_EQ(LeaseN("prom", 10).size(), 2u);
}

TEST_P(StoreConformanceTest, NextScheduledRunAtIsTheEarliest) {
  auto empty = store_->NextScheduledRunAt();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_FALSE(empty->has_value());
  NewJob late = Job("next");
  late.delay = absl::Hours(3);
  NewJob soon = Job("next2");
  soon.delay = absl::Hours(1);
  auto r = store_->Enqueue({late, soon, Job("next")});
  ASSERT_TRUE(r.ok()) << r.status();
  auto next = store_->NextScheduledRunAt();
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ(**next, *(*r)[1].scheduled_for);
}

TEST_P(StoreConformanceTest, PurgeFinishedDeletesOnlyPastRetention) {
  harness_->SetQueue("old", "dead_retention", "1 day");
  std::vector<int64_t> ids;
  for (int i = 0; i < 4; ++i) {
    NewJob j = Job("old");
    ids.push_back(Add(j));
    LeasedJob l = LeaseOne("old");
    NackParams n;
    n.job_id = l.job_id;
    n.lease_id = l.lease_id;
    n.dead_letter = true;
    ASSERT_TRUE(store_->Nack(n).ok());
  }
  const int64_t live = Add(Job("old"));
  harness_->AgeFinished(ids[0], absl::Hours(25));
  harness_->AgeFinished(ids[1], absl::Hours(26));
  harness_->AgeFinished(ids[2], absl::Hours(27));
  harness_->AgeFinished(ids[3], absl::Hours(23));  // Inside retention.
  auto two = store_->PurgeFinished(2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(*two, 2);
  // Oldest first.
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob(ids[2]).status()));
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob(ids[1]).status()));
  auto rest = store_->PurgeFinished(10);
  ASSERT_TRUE(rest.ok()) << rest.status();
  EXPECT_EQ(*rest, 1);
  EXPECT_TRUE(absl::IsNotFound(store_->GetJob(ids[0]).status()));
  EXPECT_EQ(StateOf(ids[3]), JobState::kDead);
  EXPECT_EQ(StateOf(live), JobState::kReady);
  EXPECT_EQ(harness_->CountJobs("old"), 2);
}

TEST_P(StoreConformanceTest, PurgeIdempotencyKeysKeepsKeysOfActiveJobs) {
  NewJob done = Job("keys");
  done.idempotency_key = "done";
  done.idempotency_window = absl::ZeroDuration();
  NewJob active = done;
  active.idempotency_key = "active";
  NewJob held = done;
  held.idempotency_key = "held";
  held.idempotency_window = absl::Hours(1);
  auto r = store_->Enqueue({done, active, held});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(harness_->CountKeys("keys"), 3);
  // Finish "done" (lease all three, ack only that one).
  std::vector<LeasedJob> leased = LeaseN("keys", 3);
  ASSERT_EQ(leased.size(), 3u);
  for (const LeasedJob& l : leased) {
    if (l.job_id == (*r)[0].job_id) {
      ASSERT_TRUE(AckStatus(l.job_id, l.lease_id).ok());
    }
  }
  auto purged = store_->PurgeIdempotencyKeys(10);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(harness_->CountKeys("keys"), 2);
  // The remaining keys still deduplicate.
  auto dup = store_->Enqueue({active, held});
  ASSERT_TRUE(dup.ok()) << dup.status();
  EXPECT_TRUE((*dup)[0].duplicate);
  EXPECT_TRUE((*dup)[1].duplicate);
  auto zero = store_->PurgeIdempotencyKeys(0);
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(*zero, 0);
}

INSTANTIATE_TEST_SUITE_P(
    Stores, StoreConformanceTest,
    ::testing::Values(StoreFactory{"PostgreSQL", &NewPostgresHarness}),
    [](const ::testing::TestParamInfo<StoreFactory>& info) {
      return info.param.name;
    });

}  // namespace
}  // namespace spool::store
