// spool_sdk_test_worker: a real worker process for the integration tests.
// Handles one queue with spool::Worker and records, one line per event,
// "start <job_id> <attempt>" when a handler begins and "ok <job_id> <attempt>"
// just before it returns Success, appended to --out with O_APPEND (so lines
// of concurrent handlers never interleave). Stops gracefully on SIGTERM.
//
//   spool_sdk_test_worker --targets=H:P[,H:P] --queue=Q --out=FILE
//       [--concurrency=N] [--sleep_ms=MS] [--visibility_timeout_ms=MS]
//       [--stop_deadline_ms=MS]
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "spool/worker.h"

namespace {

bool Flag(std::string_view arg, std::string_view name, std::string* value) {
  const std::string prefix = "--" + std::string(name) + "=";
  if (arg.substr(0, prefix.size()) != prefix) return false;
  *value = std::string(arg.substr(prefix.size()));
  return true;
}

int g_out = -1;

void Record(const std::string& line) {
  const std::string text = line + "\n";
  if (write(g_out, text.data(), text.size()) !=
      static_cast<ssize_t>(text.size())) {
    std::perror("write");
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string targets;
  std::string queue;
  std::string out;
  std::string concurrency = "4";
  std::string sleep_ms = "0";
  std::string vt_ms = "30000";
  std::string stop_ms = "10000";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (Flag(arg, "targets", &targets) || Flag(arg, "queue", &queue) ||
        Flag(arg, "out", &out) || Flag(arg, "concurrency", &concurrency) ||
        Flag(arg, "sleep_ms", &sleep_ms) ||
        Flag(arg, "visibility_timeout_ms", &vt_ms) ||
        Flag(arg, "stop_deadline_ms", &stop_ms)) {
      continue;
    }
    std::fprintf(stderr, "unknown argument %s\n", argv[i]);
    return 2;
  }
  if (targets.empty() || queue.empty() || out.empty()) {
    std::fprintf(stderr, "--targets, --queue and --out are required\n");
    return 2;
  }
  g_out = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (g_out < 0) {
    std::perror("open --out");
    return 2;
  }
  spool::InstallSignalHandlers();

  spool::WorkerOptions options;
  options.client.targets = absl::StrSplit(targets, ',', absl::SkipEmpty());
  options.reconnect_backoff = {absl::Milliseconds(50), absl::Seconds(1), 2.0,
                               0.2};
  spool::Worker worker(std::move(options));
  spool::QueueOptions queue_options;
  queue_options.concurrency = std::atoi(concurrency.c_str());
  queue_options.visibility_timeout =
      absl::Milliseconds(std::atoll(vt_ms.c_str()));
  queue_options.max_wait = absl::Seconds(5);
  const absl::Duration sleep = absl::Milliseconds(std::atoll(sleep_ms.c_str()));
  absl::Status status = worker.Register(
      queue,
      [sleep](const spool::Job& job) {
        Record(absl::StrCat("start ", job.id, " ", job.attempt));
        if (sleep > absl::ZeroDuration() &&
            job.cancellation.WaitForCancellation(sleep)) {
          return spool::Outcome::Retry(absl::ZeroDuration(), "cancelled");
        }
        Record(absl::StrCat("ok ", job.id, " ", job.attempt));
        return spool::Outcome::Success();
      },
      queue_options);
  if (status.ok()) status = worker.Start();
  if (!status.ok()) {
    std::fprintf(stderr, "worker: %s\n", status.ToString().c_str());
    return 1;
  }
  Record("ready");
  spool::WaitForSignal();
  status = worker.Stop(absl::Milliseconds(std::atoll(stop_ms.c_str())));
  if (!status.ok()) {
    std::fprintf(stderr, "stop: %s\n", status.ToString().c_str());
    return 3;
  }
  return 0;
}
