// batch: EnqueueBatch of --batch_size jobs from --batch_callers callers until
// --batch_jobs; every job id must come back distinct.
#include "tools/bench/batch.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spool/v1/spool.grpc.pb.h"
#include "tools/bench/flags.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace spool::bench {

std::vector<std::string> EnqueueBatches(const std::vector<std::string>& targets,
                                        const std::string& queue, int total,
                                        int batch_size, int callers,
                                        int* failed) {
  std::atomic<int> next{0};
  absl::Mutex mu;
  std::vector<std::string> ids;
  std::atomic<int> fails{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < callers; ++c) {
    threads.emplace_back([&, c] {
      auto stub =
          v1::JobService::NewStub(MakeChannel(targets[c % targets.size()]));
      while (true) {
        int begin = next.fetch_add(batch_size);
        if (begin >= total) return;
        int n = std::min(batch_size, total - begin);
        v1::EnqueueBatchRequest req;
        for (int i = 0; i < n; ++i) {
          v1::JobSpec* j = req.add_jobs();
          j->set_queue(queue);
          j->set_payload(absl::StrCat(begin + i));
        }
        v1::EnqueueBatchResponse resp;
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(60));
        grpc::Status s = stub->EnqueueBatch(&ctx, req, &resp);
        if (!s.ok()) {
          fails += n;
          std::fprintf(stderr, "EnqueueBatch: %s\n", s.error_message().c_str());
          continue;
        }
        absl::MutexLock lock(&mu);
        for (const auto& r : resp.results()) ids.push_back(r.job_id());
      }
    });
  }
  for (auto& t : threads) t.join();
  *failed = fails.load();
  return ids;
}

void RunBatch(const ScenarioContext& ctx) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 5000 : absl::GetFlag(FLAGS_batch_jobs);
  const int size = absl::GetFlag(FLAGS_batch_size);
  const int callers = absl::GetFlag(FLAGS_batch_callers);
  int failed = 0;
  CpuMeter cpu = ctx.NewCpuMeter();
  absl::Time start = absl::Now();
  auto ids =
      EnqueueBatches(ctx.targets, ctx.queue, total, size, callers, &failed);
  absl::Duration took = absl::Now() - start;
  Report r{"batch"};
  cpu.AddTo(r);
  r.Add("batch_size", size);
  r.Add("callers", callers);
  r.Add("jobs", ids.size());
  r.Add("failed", failed);
  r.Add("seconds", absl::ToDoubleSeconds(took));
  r.Add("jobs_per_s", ids.size() / absl::ToDoubleSeconds(took));
  r.Print();
  if (failed != 0 ||
      static_cast<int>(std::set<std::string>(ids.begin(), ids.end()).size()) !=
          total) {
    Fail(absl::StrCat("batch: ", ids.size(), " ids, ", failed, " failed of ",
                      total));
  }
}

}  // namespace spool::bench
