// spool-worker: handles the "thumbnail" queue until SIGTERM/SIGINT.
//
//   spool-worker [--target=127.0.0.1:50051] [--queue=thumbnail]
//                [--concurrency=4] [--metrics_listen=127.0.0.1:9465]
//
// The handler "renders" for a while (honouring cancellation), asks for a
// retry now and then (as if a storage call timed out), and fails for good on
// a poisoned payload so the job goes to the dead letters. With
// --metrics_listen it serves Prometheus metrics (spool_worker_*) on
// http://<address>/metrics.
#include "spool/worker.h"

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "spool/prometheus.h"

namespace {

bool Flag(std::string_view arg, std::string_view name, std::string* value) {
  const std::string prefix = "--" + std::string(name) + "=";
  if (arg.substr(0, prefix.size()) != prefix) return false;
  *value = std::string(arg.substr(prefix.size()));
  return true;
}

// A handler as a class: handy when it holds state (clients, caches).
class ThumbnailHandler : public spool::Handler {
 public:
  spool::Outcome Handle(const spool::Job& job) override {
    if (job.payload == "poison") {
      return spool::Outcome::Fail("cannot decode image: poisoned payload");
    }
    // Pretend to render for 200-800 ms, giving up if the worker is stopping.
    if (job.cancellation.WaitForCancellation(
            absl::Milliseconds(Uniform(200, 800)))) {
      return spool::Outcome::Retry(absl::ZeroDuration(), "cancelled");
    }
    // One in five first attempts hits a "transient storage error".
    if (job.attempt == 1 && Uniform(0, 5) == 0) {
      // Throwing works too: it means Retry with the exception's message.
      throw std::runtime_error("storage timeout while writing thumbnail");
    }
    std::printf("thumbnail done: job=%s payload=%s attempt=%d\n",
                job.id.c_str(), job.payload.c_str(), job.attempt);
    std::fflush(stdout);
    return spool::Outcome::Success(absl::StrCat("thumbs/", job.payload));
  }

 private:
  int Uniform(int lo, int hi) {
    absl::MutexLock lock(&mu_);
    return absl::Uniform(gen_, lo, hi);
  }
  absl::Mutex mu_;
  absl::BitGen gen_;
};

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:50051";
  std::string queue = "thumbnail";
  std::string concurrency_text = "4";
  std::string metrics_listen;  // empty: no metrics
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (Flag(arg, "target", &target) || Flag(arg, "queue", &queue) ||
        Flag(arg, "concurrency", &concurrency_text) ||
        Flag(arg, "metrics_listen", &metrics_listen)) {
      continue;
    }
    std::fprintf(stderr,
                 "usage: %s [--target=host:port] [--queue=NAME] "
                 "[--concurrency=N] [--metrics_listen=host:port]\n",
                 argv[0]);
    return 2;
  }

  // Before any thread starts, so every thread sees the handlers.
  spool::InstallSignalHandlers();

  spool::WorkerOptions options;
  options.client.targets = {target};
  // Optional Prometheus metrics: the observer records, the exposer serves
  // its registry. (An application that already serves /metrics passes its
  // own registry to PrometheusWorkerObserver instead.)
  std::unique_ptr<spool::MetricsExposer> metrics;
  if (!metrics_listen.empty()) {
    auto observer = std::make_shared<spool::PrometheusWorkerObserver>();
    absl::StatusOr<std::unique_ptr<spool::MetricsExposer>> exposer =
        spool::ServeWorkerMetrics(metrics_listen, observer->registry());
    if (!exposer.ok()) {
      std::fprintf(stderr, "metrics: %s\n",
                   exposer.status().ToString().c_str());
      return 1;
    }
    metrics = *std::move(exposer);
    options.observer = std::move(observer);
    std::fprintf(stderr, "spool-worker: metrics on port %d (/metrics)\n",
                 metrics->port());
  }
  spool::Worker worker(std::move(options));
  spool::QueueOptions queue_options;
  queue_options.concurrency = std::atoi(concurrency_text.c_str());
  queue_options.visibility_timeout = absl::Seconds(30);
  absl::Status status = worker.Register(
      queue, std::make_shared<ThumbnailHandler>(), queue_options);
  if (status.ok()) status = worker.Start();
  if (!status.ok()) {
    std::fprintf(stderr, "worker: %s\n", status.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "spool-worker %s: handling queue %s from %s\n",
               worker.worker_id().c_str(), queue.c_str(), target.c_str());

  const int sig = spool::WaitForSignal();
  std::fprintf(stderr, "signal %d: stopping\n", sig);
  status = worker.Stop(absl::Seconds(20));
  if (!status.ok()) {
    std::fprintf(stderr, "stop: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
