// latency: enqueue at a fixed trickle rate (--latency_rate for
// --latency_duration) to idle long-polling SDK workers; each handler records
// Enqueue call start -> handler start; reports p50/p90/p99/max.
#include <algorithm>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
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
namespace {

double Percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i =
      std::min(v.size() - 1, static_cast<size_t>(p * (v.size() - 1) + 0.5));
  return v[i];
}

}  // namespace

void RunLatency(const ScenarioContext& ctx) {
  const std::vector<std::string>& targets = ctx.targets;
  const std::string& queue = ctx.queue;
  const int rate = absl::GetFlag(FLAGS_latency_rate);
  const absl::Duration duration = absl::GetFlag(FLAGS_quick)
                                      ? absl::Seconds(1)
                                      : absl::GetFlag(FLAGS_latency_duration);
  const int total = static_cast<int>(rate * absl::ToDoubleSeconds(duration));
  Worker worker(BenchWorkerOptions(targets, "bench-latency"));
  absl::Mutex mu;
  std::vector<double> ms;
  std::set<std::string> seen;
  int doubled = 0;
  QueueOptions qo;
  qo.concurrency = absl::GetFlag(FLAGS_latency_workers);
  (void)worker.Register(
      queue,
      [&](const Job& job) {
        absl::Time now = absl::Now();
        int64_t sent_us = 0;
        (void)absl::SimpleAtoi(job.payload, &sent_us);
        absl::MutexLock lock(&mu);
        if (!seen.insert(job.id).second) ++doubled;
        ms.push_back(
            absl::ToDoubleMilliseconds(now - absl::FromUnixMicros(sent_us)));
        return Outcome::Success();
      },
      qo);
  if (!worker.Start().ok()) {
    Fail("latency: worker did not start");
    return;
  }
  absl::SleepFor(absl::Milliseconds(500));  // Let the long-polls park.
  auto client = Client::Connect(BenchClientOptions(targets));
  if (!client.ok()) {
    Fail("latency: no client");
    return;
  }
  int failed = 0;
  absl::Time start = absl::Now();
  for (int i = 0; i < total; ++i) {
    absl::Time due = start + i * absl::Seconds(1) / rate;
    absl::SleepFor(due - absl::Now());
    JobOptions j;
    j.queue = queue;
    j.payload = absl::StrCat(absl::ToUnixMicros(absl::Now()));
    if (!client->Enqueue(j).ok()) ++failed;
  }
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (absl::Now() < until) {
    absl::MutexLock lock(&mu);
    if (static_cast<int>(ms.size()) >= total - failed) break;
    mu.Unlock();
    absl::SleepFor(absl::Milliseconds(10));
    mu.Lock();
  }
  (void)worker.Stop(absl::Seconds(10));
  absl::MutexLock lock(&mu);
  Report r{"latency"};
  r.Add("rate", rate);
  r.Add("jobs", total);
  r.Add("handled", ms.size());
  r.Add("p50_ms", Percentile(ms, 0.5));
  r.Add("p90_ms", Percentile(ms, 0.9));
  r.Add("p99_ms", Percentile(ms, 0.99));
  r.Add("max_ms", ms.empty() ? 0.0 : ms.back());
  r.Print();
  if (failed != 0 || static_cast<int>(seen.size()) != total || doubled != 0) {
    Fail(absl::StrCat("latency: handled ", seen.size(), " of ", total,
                      ", failed ", failed, ", doubled ", doubled));
  }
}

}  // namespace spool::bench
