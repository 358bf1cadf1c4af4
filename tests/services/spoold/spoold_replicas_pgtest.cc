// Several stateless spoold replicas on one database: cross-replica wake-ups
// and a concurrent drain where every job is acked exactly once.
#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "tests/services/spoold/api_helpers.h"

namespace spool::testing {
namespace {

class ReplicasTest : public ::testing::Test {
 protected:
  void StartReplicas(int n, std::vector<std::string> flags) {
    auto url = SharedPostgres()->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    for (int i = 0; i < n; ++i) {
      auto s = SpooldProcess::Start(url_, flags);
      ASSERT_TRUE(s.ok()) << s.status();
      replicas_.push_back(*std::move(s));
    }
  }
  std::string url_;
  std::vector<std::unique_ptr<SpooldProcess>> replicas_;
};

TEST_F(ReplicasTest, LongPollWakesOnEnqueueThroughAnotherReplica) {
  // Fallback polling and maintenance are slowed to a minute, so only the
  // cross-replica notification can deliver the job within the wait below.
  StartReplicas(2, {"--fallback_poll=60s", "--maintenance_interval=60s",
                    "--log_level=warning"});
  Api a(replicas_[0]->Channel());
  Api b(replicas_[1]->Channel());
  for (int round = 0; round < 3; ++round) {
    std::vector<v1::LeasedJob> got;
    absl::Time returned;
    std::thread waiter([&] {
      got = b.LeaseJobs("xwake", 1, absl::Seconds(25));
      returned = absl::Now();
    });
    absl::SleepFor(absl::Milliseconds(500));
    absl::Time sent = absl::Now();
    std::string id = a.MustEnqueue("xwake", absl::StrCat("r", round));
    waiter.join();
    ASSERT_EQ(got.size(), 1u) << "round " << round;
    EXPECT_EQ(got[0].job_id(), id);
    // Far below the 60 s fallback; the typical figure is milliseconds.
    EXPECT_LT(returned - sent, absl::Seconds(10));
    std::cout << "cross-replica wake-up took "
              << absl::FormatDuration(returned - sent) << "\n";
  }
}

TEST_F(ReplicasTest, TwoReplicasEightConsumersDrainEveryJobExactlyOnce) {
  StartReplicas(2, FastFlags());
  constexpr int kJobs = 5000;
  std::set<std::string> enqueued;
  {
    Api producer(replicas_[0]->Channel());
    for (int batch = 0; batch < kJobs / 500; ++batch) {
      std::vector<v1::JobSpec> specs(500);
      for (int i = 0; i < 500; ++i) {
        specs[i].set_queue("drain");
        specs[i].set_payload(absl::StrCat(batch * 500 + i));
        specs[i].set_priority(i % 3);
      }
      v1::EnqueueBatchResponse resp;
      grpc::Status s = producer.EnqueueBatch(specs, &resp);
      ASSERT_TRUE(s.ok()) << s.error_message();
      for (const auto& r : resp.results()) enqueued.insert(r.job_id());
    }
  }
  ASSERT_EQ(enqueued.size(), static_cast<size_t>(kJobs));

  absl::Mutex mu;
  std::map<std::string, int> acked;  // job id -> OK acks
  std::atomic<int> total_acked{0};
  std::atomic<int> errors{0};
  std::vector<std::thread> consumers;
  for (int c = 0; c < 8; ++c) {
    consumers.emplace_back([&, c] {
      Api api(replicas_[c % 2]->NewChannel());
      absl::Time until = absl::Now() + absl::Seconds(120);
      while (total_acked.load() < kJobs && absl::Now() < until) {
        auto jobs = api.LeaseJobs("drain", 16, absl::Milliseconds(500));
        if (jobs.empty()) continue;
        std::vector<v1::Completion> cs;
        for (const auto& j : jobs) {
          v1::Completion comp;
          comp.set_job_id(j.job_id());
          comp.set_lease_id(j.lease_id());
          cs.push_back(comp);
        }
        v1::AckResponse resp;
        grpc::Status s = api.Ack(cs, &resp);
        if (!s.ok()) {
          ++errors;
          continue;
        }
        absl::MutexLock lock(&mu);
        for (const auto& r : resp.results()) {
          if (r.code() == 0) {
            ++acked[r.job_id()];
            ++total_acked;
          } else {
            ++errors;
          }
        }
      }
    });
  }
  for (auto& t : consumers) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(total_acked.load(), kJobs);
  ASSERT_EQ(acked.size(), static_cast<size_t>(kJobs));
  for (const auto& [id, n] : acked) {
    EXPECT_EQ(n, 1) << "job " << id;
    EXPECT_TRUE(enqueued.count(id)) << "job " << id;
  }
  EXPECT_EQ(QueryInt(url_, "SELECT count(*) FROM spool_jobs"), 0);
}

TEST_F(ReplicasTest, ConcurrentMigrationsApplyOnce) {
  // Four replicas started at once on an empty database, all with --migrate.
  auto url = SharedPostgres()->CreateDatabase();
  ASSERT_TRUE(url.ok());
  std::vector<std::thread> starters;
  std::vector<absl::StatusOr<std::unique_ptr<SpooldProcess>>> started(4);
  for (int i = 0; i < 4; ++i) {
    starters.emplace_back(
        [&, i] { started[i] = SpooldProcess::Start(*url, FastFlags()); });
  }
  for (auto& t : starters) t.join();
  for (auto& s : started) ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(QueryInt(*url, "SELECT count(*) FROM spool_schema_migrations"),
            QueryInt(*url, "SELECT max(version) FROM spool_schema_migrations"));
  Api api((*started[3])->Channel());
  EXPECT_FALSE(api.MustEnqueue("m", "x").empty());
}

}  // namespace
}  // namespace spool::testing
