// Uses the installed SDK's public API: a Client call that fails fast (no
// server on port 1), a Worker that registers a handler without starting, and
// the Prometheus observer, served on a loopback port.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "spool/client.h"
#include "spool/prometheus.h"
#include "spool/worker.h"

int main() {
  spool::ClientOptions options;
  options.targets = {"127.0.0.1:1"};
  options.default_deadline = absl::Milliseconds(200);
  absl::StatusOr<spool::Client> client = spool::Client::Connect(options);
  if (!client.ok()) return 1;
  absl::StatusOr<spool::JobInfo> job = client->GetJob("nothing");
  if (job.ok()) return 2;

  auto metrics = std::make_shared<spool::PrometheusWorkerObserver>();
  metrics->OnLeased("thumbnail", 1);
  const std::vector<prometheus::MetricFamily> families =
      metrics->registry()->Collect();
  if (families.empty()) return 4;
  absl::StatusOr<std::unique_ptr<spool::MetricsExposer>> exposer =
      spool::ServeWorkerMetrics("127.0.0.1:0", metrics->registry());
  if (!exposer.ok() || (*exposer)->port() <= 0) return 5;

  spool::WorkerOptions worker_options;
  worker_options.client = options;
  worker_options.observer = metrics;
  spool::Worker worker(std::move(worker_options));
  absl::Status registered = worker.Register(
      "thumbnail", [](const spool::Job&) { return spool::Outcome::Success(); });
  if (!registered.ok()) return 3;
  std::printf("spool consumer ok (%s)\n",
              std::string(job.status().message()).c_str());
  return 0;
}
