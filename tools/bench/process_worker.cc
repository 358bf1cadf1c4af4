// The worker process of `process` (spool-bench --worker_queue=...): no-op
// handlers on the worker SDK. It connects, prints "ready", and starts leasing
// only when a line arrives on stdin, so the timed run measures the queue, not
// process start-up. As it goes it prints "handled N acked M" lines (M:
// completions spoold answered), and at SIGTERM stops (flushing acks) and
// writes every handled job id to --worker_ids_out.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "spool/client.h"
#include "spool/worker.h"
#include "tools/bench/flags.h"
#include "tools/bench/scenario.h"

namespace spool::bench {
namespace {

class AckCounter : public spool::WorkerObserver {
 public:
  void OnAckLatency(absl::Duration, int batch_size) override {
    acked_ += batch_size;
  }
  int64_t acked() const { return acked_.load(); }

 private:
  std::atomic<int64_t> acked_{0};
};

}  // namespace

int WorkerMain(const std::vector<std::string>& targets) {
  InstallSignalHandlers();
  auto acks = std::make_shared<AckCounter>();
  WorkerOptions options =
      BenchWorkerOptions(targets, absl::StrCat("bench-", getpid()));
  options.observer = acks;
  Worker worker(options);
  absl::Mutex mu;
  std::vector<std::string> handled;
  std::atomic<int64_t> count{0};
  QueueOptions qo;
  qo.concurrency = absl::GetFlag(FLAGS_worker_concurrency);
  qo.max_wait = absl::Seconds(5);
  absl::Status s = worker.Register(
      absl::GetFlag(FLAGS_worker_queue),
      [&](const Job& job) {
        {
          absl::MutexLock lock(&mu);
          handled.push_back(job.id);
        }
        ++count;
        return Outcome::Success();
      },
      qo);
  if (s.ok()) {
    auto client = Client::Connect(BenchClientOptions(targets));
    if (!client.ok()) {
      s = client.status();
    } else if (!client->WaitForConnected(absl::Seconds(10))) {
      s = absl::UnavailableError("spoold unreachable");
    }
  }
  if (!s.ok()) {
    std::fprintf(stderr, "worker: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("ready\n");
  std::fflush(stdout);
  char go[16];
  if (read(0, go, sizeof go) <= 0) return 1;
  if (!(s = worker.Start()).ok()) {
    std::fprintf(stderr, "worker: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  int64_t last_handled = -1, last_acked = -1;
  while (WaitForSignal(absl::Milliseconds(2)) == 0) {
    const int64_t now_handled = count.load(), now_acked = acks->acked();
    if (now_handled != last_handled || now_acked != last_acked) {
      std::printf("handled %lld acked %lld\n",
                  static_cast<long long>(now_handled),
                  static_cast<long long>(now_acked));
      std::fflush(stdout);
      last_handled = now_handled;
      last_acked = now_acked;
    }
  }
  s = worker.Stop(absl::Seconds(10));
  std::ofstream out(absl::GetFlag(FLAGS_worker_ids_out));
  absl::MutexLock lock(&mu);
  for (const auto& id : handled) out << id << "\n";
  return s.ok() ? 0 : 1;
}

}  // namespace spool::bench
