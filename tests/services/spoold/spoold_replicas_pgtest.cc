// Several stateless spoold replicas on one database: cross-replica wake-ups
// and a concurrent drain where every job is acked exactly once.
#include <atomic>
#include <iostream>
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
  // cross-replica notification can deliver the job within the bound below.
  StartReplicas(2, WakeUpOnlyFlags());
  auto b_metrics = MetricsPort(*replicas_[1]);
  ASSERT_TRUE(b_metrics.ok()) << b_metrics.status();
  Api a(replicas_[0]->Channel());
  Api b(replicas_[1]->Channel());
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE(absl::StrCat("round ", round));
    // Parked on replica b before replica a enqueues.
    WakeUp w = LeaseParkedThenEnqueue(b, *b_metrics, a, "xwake");
    ASSERT_TRUE(w.parked) << replicas_[1]->LogTail();
    ASSERT_EQ(w.got.size(), 1u);
    EXPECT_EQ(w.got[0].job_id(), w.enqueued_id);
    // Far below the 60 s fallback poll; the typical figure is milliseconds.
    EXPECT_LT(w.latency, absl::Seconds(5));
    std::cout << "cross-replica wake-up took "
              << absl::FormatDuration(w.latency) << "\n";
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

TEST_F(ReplicasTest, MaxDepthHoldsExactlyUnderConcurrentEnqueues) {
  // Two replicas, each with two group-commit statements in flight, and 48
  // callers racing to fill a queue of depth 60 with single jobs and batches
  // of 3: exactly 60 jobs are accepted, every other request is refused as a
  // whole, and nothing else fails.
  auto url = SharedPostgres()->CreateDatabase();
  ASSERT_TRUE(url.ok()) << url.status();
  url_ = *url;
  {
    auto s = SpooldProcess::Start(url_, FastFlags());
    ASSERT_TRUE(s.ok()) << s.status();
    replicas_.push_back(*std::move(s));
  }
  ExecSql(url_,
          "INSERT INTO spool_queues (name, max_depth) VALUES ('cap', 60)");
  {
    auto s = SpooldProcess::Start(url_, FastFlags());
    ASSERT_TRUE(s.ok()) << s.status();
    replicas_.push_back(*std::move(s));
  }
  constexpr int kMaxDepth = 60;
  for (int round = 0; round < 3; ++round) {
    std::atomic<int> accepted_jobs{0};
    std::atomic<int> refused{0};
    std::atomic<int> other_errors{0};
    absl::Mutex mu;
    std::set<std::string> ids;
    std::vector<std::thread> callers;
    for (int c = 0; c < 48; ++c) {
      callers.emplace_back([&, c] {
        // The replica's shared channel: the race is between RPCs, and 48
        // fresh connections at once can miss the harness channels' short
        // connect timeout on a loaded machine.
        Api api(replicas_[c % 2]->Channel());
        for (int i = 0; i < 6; ++i) {
          const int n = (c + i) % 4 == 0 ? 3 : 1;
          std::vector<v1::JobSpec> specs(n);
          for (auto& spec : specs) {
            spec.set_queue("cap");
            spec.set_payload(absl::StrCat(round, "-", c, "-", i));
          }
          grpc::Status st;
          std::vector<std::string> got;
          if (n == 1) {
            v1::EnqueueResponse resp;
            st = api.Enqueue(specs[0], &resp);
            got.push_back(resp.job_id());
          } else {
            v1::EnqueueBatchResponse resp;
            st = api.EnqueueBatch(specs, &resp);
            for (const auto& r : resp.results()) got.push_back(r.job_id());
          }
          if (st.ok()) {
            accepted_jobs += static_cast<int>(got.size());
            absl::MutexLock lock(&mu);
            ids.insert(got.begin(), got.end());
          } else if (st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
            ++refused;
          } else {
            ++other_errors;
            ADD_FAILURE() << st.error_code() << " " << st.error_message();
          }
        }
      });
    }
    for (auto& t : callers) t.join();
    SCOPED_TRACE(absl::StrCat("round ", round));
    EXPECT_EQ(other_errors.load(), 0);
    EXPECT_GT(refused.load(), 0);
    EXPECT_EQ(accepted_jobs.load(), kMaxDepth);
    EXPECT_EQ(ids.size(), static_cast<size_t>(accepted_jobs.load()));
    EXPECT_EQ(QueryInt(url_,
                       "SELECT count(*) FROM spool_jobs "
                       "WHERE queue = 'cap' AND state <= 3"),
              kMaxDepth);
    // Empty the queue for the next round.
    ExecSql(url_, "DELETE FROM spool_jobs WHERE queue = 'cap'");
  }
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
