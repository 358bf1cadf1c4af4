// process: pre-fill --process_jobs, then --workers worker *processes* (this
// binary in its worker mode, process_worker.cc) with no-op handlers drain
// them; every job is counted by id and must be handled exactly once. Timed
// from the moment every worker is up and connected until spoold has answered
// the ack of every job.
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spool/v1/spool.grpc.pb.h"
#include "tools/bench/batch.h"
#include "tools/bench/flags.h"
#include "tools/bench/metering.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace spool::bench {
namespace {

struct ChildWorker {
  pid_t pid = -1;
  int out_fd = -1;
  int in_fd = -1;  // a line here starts its leasing
  std::string ids_path;
  bool ready = false;
  int64_t handled = 0;
  int64_t acked = 0;
  std::string buffer;
};

ChildWorker SpawnWorker(const std::string& self, const std::string& targets,
                        const std::string& queue, const std::string& ids_path) {
  int out[2], in[2];
  if (pipe(out) != 0) return {};
  if (pipe(in) != 0) {
    close(out[0]);
    close(out[1]);
    return {};
  }
  ChildWorker w;
  w.ids_path = ids_path;
  w.pid = fork();
  if (w.pid == 0) {
    dup2(out[1], 1);
    dup2(in[0], 0);
    close(out[0]);
    close(out[1]);
    close(in[0]);
    close(in[1]);
    std::vector<std::string> args = {
        self, absl::StrCat("--target=", targets),
        absl::StrCat("--worker_queue=", queue),
        absl::StrCat("--worker_ids_out=", ids_path),
        absl::StrCat("--worker_concurrency=",
                     absl::GetFlag(FLAGS_worker_concurrency))};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(out[1]);
  close(in[0]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  w.out_fd = out[0];
  w.in_fd = in[1];
  return w;
}

void PollWorker(ChildWorker& w) {
  char buf[4096];
  ssize_t n;
  while ((n = read(w.out_fd, buf, sizeof buf)) > 0) w.buffer.append(buf, n);
  size_t nl;
  while ((nl = w.buffer.find('\n')) != std::string::npos) {
    std::string line = w.buffer.substr(0, nl);
    w.buffer.erase(0, nl + 1);
    std::vector<std::string> f = absl::StrSplit(line, ' ');
    if (f.size() == 1 && f[0] == "ready") w.ready = true;
    if (f.size() == 4 && f[0] == "handled" && f[2] == "acked") {
      (void)absl::SimpleAtoi(f[1], &w.handled);
      (void)absl::SimpleAtoi(f[3], &w.acked);
    }
  }
}

}  // namespace

void RunProcess(const ScenarioContext& ctx) {
  const std::vector<std::string>& targets = ctx.targets;
  const std::string& queue = ctx.queue;
  const int total =
      absl::GetFlag(FLAGS_quick) ? 2000 : absl::GetFlag(FLAGS_process_jobs);
  const int nworkers = absl::GetFlag(FLAGS_workers);
  int failed = 0;
  auto ids = EnqueueBatches(targets, queue, total, 1000, 2, &failed);
  if (failed != 0 || static_cast<int>(ids.size()) != total) {
    Fail("process: pre-fill failed");
    return;
  }
  char tmpl[] = "/tmp/spool-bench-ids-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<ChildWorker> workers;
  for (int i = 0; i < nworkers; ++i) {
    workers.push_back(SpawnWorker(ctx.self, absl::StrJoin(targets, ","), queue,
                                  absl::StrCat(dir, "/w", i)));
  }
  // Timed from the moment every worker process is up and connected until
  // spoold has answered the ack of every job.
  absl::Time ready_deadline = absl::Now() + absl::Seconds(30);
  while (absl::Now() < ready_deadline &&
         !std::all_of(workers.begin(), workers.end(), [](ChildWorker& w) {
           PollWorker(w);
           return w.ready;
         })) {
    absl::SleepFor(absl::Milliseconds(2));
  }
  double worker_cpu = 0;
  for (auto& w : workers) worker_cpu -= ProcCpuSeconds(w.pid);
  CpuMeter cpu = ctx.NewCpuMeter();
  absl::Time start = absl::Now();
  for (auto& w : workers) (void)!write(w.in_fd, "go\n", 3);
  absl::Time deadline = start + absl::GetFlag(FLAGS_timeout);
  int64_t handled = 0, acked = 0;
  while (absl::Now() < deadline) {
    handled = acked = 0;
    for (auto& w : workers) {
      PollWorker(w);
      handled += w.handled;
      acked += w.acked;
    }
    if (acked >= total) break;
    absl::SleepFor(absl::Milliseconds(1));
  }
  absl::Duration took = absl::Now() - start;
  const int spoold_pid = ctx.spoold_pid(), postgres_pid = ctx.postgres_pid();
  const double spoold_cpu = spoold_pid > 0 ? ProcCpuSeconds(spoold_pid) : -1;
  const double pg_cpu =
      postgres_pid > 0 ? PostgresCpuSeconds(postgres_pid) : -1;
  for (auto& w : workers) worker_cpu += ProcCpuSeconds(w.pid);
  for (auto& w : workers) kill(w.pid, SIGTERM);
  int bad_exit = 0;
  for (auto& w : workers) {
    int status = 0;
    waitpid(w.pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++bad_exit;
    close(w.out_fd);
    close(w.in_fd);
  }
  std::map<std::string, int> count;
  for (auto& w : workers) {
    std::ifstream in(w.ids_path);
    std::string id;
    while (std::getline(in, id)) ++count[id];
  }
  const ExactOnce once = CheckExactlyOnce(ids, count);
  const int lost = once.lost, doubled = once.doubled;
  // Drained: nothing is left to lease.
  auto stub = v1::JobService::NewStub(MakeChannel(targets[0]));
  v1::LeaseRequest lr;
  lr.set_queue(queue);
  lr.set_max_jobs(256);
  v1::LeaseResponse resp;
  grpc::ClientContext lease_ctx;
  grpc::Status ls = stub->Lease(&lease_ctx, lr, &resp);
  (void)system(absl::StrCat("rm -rf ", dir).c_str());
  Report r{"process"};
  // Up to the moment the last job was handled: the workers' CPU (read before
  // they were stopped), spoold's and PostgreSQL's.
  r.Add("cpu_s_workers", worker_cpu);
  if (spoold_pid > 0) {
    r.Add("cpu_s_spoold", spoold_cpu - cpu.spoold_start());
    r.Add("cpu_s_postgres", pg_cpu - cpu.pg_start());
  }
  r.Add("workers", nworkers);
  r.Add("concurrency", absl::GetFlag(FLAGS_worker_concurrency));
  r.Add("jobs", total);
  r.Add("handled", handled);
  r.Add("acked", acked);
  r.Add("lost", lost);
  r.Add("doubled", doubled);
  r.Add("seconds", absl::ToDoubleSeconds(took));
  r.Add("jobs_per_s", total / absl::ToDoubleSeconds(took));
  r.Print();
  if (lost != 0 || doubled != 0 || bad_exit != 0 || acked != total ||
      !ls.ok() || resp.jobs_size() != 0) {
    Fail(absl::StrCat("process: lost=", lost, " doubled=", doubled,
                      " bad worker exits=", bad_exit,
                      " left=", resp.jobs_size()));
  }
}

}  // namespace spool::bench
