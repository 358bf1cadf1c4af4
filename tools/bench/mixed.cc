// mixed: producers (random priorities) and SDK workers at once for
// --mixed_duration at --mixed_rate; --retry_percent of first attempts ask to
// be retried; every job must succeed exactly once.
#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spool/client.h"
#include "spool/worker.h"
#include "tools/bench/flags.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace spool::bench {

void RunMixed(const ScenarioContext& ctx) {
  const std::vector<std::string>& targets = ctx.targets;
  const std::string& queue = ctx.queue;
  const absl::Duration duration = absl::GetFlag(FLAGS_quick)
                                      ? absl::Seconds(2)
                                      : absl::GetFlag(FLAGS_mixed_duration);
  const int rate = absl::GetFlag(FLAGS_mixed_rate);
  const int retry_percent = absl::GetFlag(FLAGS_retry_percent);
  Worker worker(BenchWorkerOptions(targets, "bench-mixed"));
  absl::Mutex mu;
  std::map<std::string, int> succeeded;
  std::atomic<int> retried{0};
  QueueOptions qo;
  qo.concurrency = 64;
  (void)worker.Register(
      queue,
      [&](const Job& job) {
        // Deterministic per job: the same jobs retry however often it runs.
        if (job.attempt == 1 && std::hash<std::string>()(job.id) % 100 <
                                    static_cast<size_t>(retry_percent)) {
          ++retried;
          return Outcome::Retry(absl::ZeroDuration(), "bench retry");
        }
        absl::MutexLock lock(&mu);
        ++succeeded[job.id];
        return Outcome::Success();
      },
      qo);
  if (!worker.Start().ok()) {
    Fail("mixed: worker did not start");
    return;
  }
  std::vector<std::string> ids;
  absl::Mutex ids_mu;
  std::atomic<int> failed{0};
  std::vector<std::thread> producers;
  absl::Time start = absl::Now();
  constexpr int kProducers = 4;
  constexpr int kBatch = 20;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&] {
      auto client = Client::Connect(BenchClientOptions(targets));
      if (!client.ok()) return;
      absl::BitGen gen;
      const double per_producer = static_cast<double>(rate) / kProducers;
      for (int i = 0;; ++i) {
        absl::Time due = start + absl::Seconds(i * kBatch / per_producer);
        if (due > start + duration) return;
        absl::SleepFor(due - absl::Now());
        std::vector<JobOptions> batch(kBatch);
        for (auto& j : batch) {
          j.queue = queue;
          j.priority = absl::Uniform(gen, -5, 6);
        }
        auto r = client->EnqueueBatch(batch);
        if (!r.ok()) {
          failed += kBatch;
          continue;
        }
        absl::MutexLock lock(&ids_mu);
        for (const auto& e : *r) ids.push_back(e.job_id);
      }
    });
  }
  for (auto& t : producers) t.join();
  absl::Time until = absl::Now() + absl::GetFlag(FLAGS_timeout);
  while (absl::Now() < until) {
    absl::MutexLock lock(&mu);
    if (succeeded.size() >= ids.size()) break;
    mu.Unlock();
    absl::SleepFor(absl::Milliseconds(20));
    mu.Lock();
  }
  absl::Duration took = absl::Now() - start;
  (void)worker.Stop(absl::Seconds(10));
  absl::MutexLock lock(&mu);
  const ExactOnce once = CheckExactlyOnce(ids, succeeded);
  const int lost = once.lost, doubled = once.doubled;
  Report r{"mixed"};
  r.Add("seconds", absl::ToDoubleSeconds(took));
  r.Add("enqueued", ids.size());
  r.Add("succeeded", succeeded.size());
  r.Add("retried", retried.load());
  r.Add("lost", lost);
  r.Add("doubled", doubled);
  r.Add("jobs_per_s", ids.size() / absl::ToDoubleSeconds(took));
  r.Print();
  if (failed.load() != 0 || lost != 0 || doubled != 0) {
    Fail(absl::StrCat("mixed: failed=", failed.load(), " lost=", lost,
                      " doubled=", doubled));
  }
}

}  // namespace spool::bench
