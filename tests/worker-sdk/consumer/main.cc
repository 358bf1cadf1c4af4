// Uses the installed SDK's public API: a Client call that fails fast (no
// server on port 1) and a Worker that registers a handler without starting.
#include <cstdio>

#include "spool/client.h"
#include "spool/worker.h"

int main() {
  spool::ClientOptions options;
  options.targets = {"127.0.0.1:1"};
  options.default_deadline = absl::Milliseconds(200);
  absl::StatusOr<spool::Client> client = spool::Client::Connect(options);
  if (!client.ok()) return 1;
  absl::StatusOr<spool::JobInfo> job = client->GetJob("nothing");
  if (job.ok()) return 2;

  spool::WorkerOptions worker_options;
  worker_options.client = options;
  spool::Worker worker(std::move(worker_options));
  absl::Status registered = worker.Register(
      "thumbnail", [](const spool::Job&) { return spool::Outcome::Success(); });
  if (!registered.ok()) return 3;
  std::printf("spool consumer ok (%s)\n",
              std::string(job.status().message()).c_str());
  return 0;
}
