// spool-producer: enqueues N "thumbnail" jobs.
//
//   spool-producer [--target=127.0.0.1:50051] [--count=10] [--queue=thumbnail]
//                  [--poison_every=0]
//
// Every --poison_every-th job (0: none) carries a payload the example worker
// rejects for good, so it ends in the dead letters.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "spool/client.h"

namespace {

bool Flag(std::string_view arg, std::string_view name, std::string* value) {
  const std::string prefix = "--" + std::string(name) + "=";
  if (arg.substr(0, prefix.size()) != prefix) return false;
  *value = std::string(arg.substr(prefix.size()));
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string target = "127.0.0.1:50051";
  std::string queue = "thumbnail";
  std::string count_text = "10";
  std::string poison_text = "0";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (Flag(arg, "target", &target) || Flag(arg, "queue", &queue) ||
        Flag(arg, "count", &count_text) ||
        Flag(arg, "poison_every", &poison_text)) {
      continue;
    }
    std::fprintf(stderr,
                 "usage: %s [--target=host:port] [--count=N] [--queue=NAME] "
                 "[--poison_every=K]\n",
                 argv[0]);
    return 2;
  }
  const int count = std::atoi(count_text.c_str());
  const int poison_every = std::atoi(poison_text.c_str());

  absl::StatusOr<spool::Client> client = spool::Client::Connect(target);
  if (!client.ok()) {
    std::fprintf(stderr, "connect: %s\n", client.status().ToString().c_str());
    return 1;
  }
  int failed = 0;
  for (int i = 1; i <= count; ++i) {
    spool::JobOptions job;
    job.queue = queue;
    const bool poisoned = poison_every > 0 && i % poison_every == 0;
    job.payload =
        poisoned ? "poison" : absl::StrCat("images/photo-", i, ".jpg");
    job.headers["content-type"] = "text/plain";
    job.max_attempts = 5;
    // A key makes the enqueue safe to retry if the connection drops.
    job.idempotency_key = absl::StrCat("example-", i, "-", job.payload);
    absl::StatusOr<spool::EnqueueResult> result = client->Enqueue(job);
    if (!result.ok()) {
      std::fprintf(stderr, "enqueue %d: %s\n", i,
                   result.status().ToString().c_str());
      ++failed;
      continue;
    }
    std::printf("enqueued %s %s%s\n", result->job_id.c_str(),
                job.payload.c_str(), result->duplicate ? " (duplicate)" : "");
  }
  return failed == 0 ? 0 : 1;
}
