// spool-bench: Spool's load generator. Bounded in count and time, loopback
// only. Scenarios:
//   rpc_ceiling  as enqueue, but gRPC health checks (no database): the
//            bound gRPC itself puts on single-job RPCs on this machine
//   enqueue  N concurrent single-job Enqueue callers (raw async gRPC)
//   batch    EnqueueBatch of --batch_size jobs from a few callers
//   process  pre-fill --process_jobs, then M worker *processes* built on the
//            worker SDK with no-op handlers drain them; every job is counted
//            by id and must be handled exactly once
//   latency  Enqueue -> handler start at a fixed trickle rate, idle
//            long-polling SDK workers; p50/p90/p99/max
//   mixed    producers and workers at once for a set time, random priorities,
//            --retry_percent of first attempts retried; exact-once checked
//   idle     --idle_polls concurrent idle long-polls; spoold's threads and
//            database connections while they wait (needs --start)
// With --start it runs its own throwaway PostgreSQL and spoold (with the test
// support launchers of tests/support); otherwise it targets --target.
// --max_depth (with --start) limits each scenario's queue, to measure
// depth-limited queues. Prints one summary line per scenario and, with
// --json, one JSON object per line. Exits 1 if any count is wrong.
//
// This file: flags, the local server and the scenario loop. The scenarios
// are one file each (scenario.h); metering.h measures CPU and memory,
// report.h prints the results.
#include <signal.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "tools/bench/flags.h"
#include "tools/bench/local_server.h"
#include "tools/bench/metering.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace spool::bench {
namespace {

std::string RunId() {
  absl::BitGen gen;
  return absl::StrCat(absl::Hex(absl::Uniform<uint32_t>(gen)));
}

// The scenario called `name`, or nullptr.
using ScenarioFn = void (*)(const ScenarioContext&);
ScenarioFn FindScenario(const std::string& name) {
  if (name == "enqueue") return RunEnqueue;
  if (name == "rpc_ceiling") return RunRpcCeiling;
  if (name == "batch") return RunBatch;
  if (name == "process") return RunProcess;
  if (name == "latency") return RunLatency;
  if (name == "mixed") return RunMixed;
  if (name == "idle") return RunIdle;
  return nullptr;
}

int Main(int argc, char** argv) {
  // As in spoold: no per-acquisition lock-order checks in a load generator.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  absl::SetProgramUsageMessage(
      "Spool's load generator; see the comment at the top of "
      "tools/bench/main.cc or docs/benchmarks.md.");
  absl::ParseCommandLine(argc, argv);
  std::vector<std::string> targets =
      absl::StrSplit(absl::GetFlag(FLAGS_target), ',', absl::SkipEmpty());
  if (!absl::GetFlag(FLAGS_worker_queue).empty()) return WorkerMain(targets);
  signal(SIGPIPE, SIG_IGN);

  if (absl::GetFlag(FLAGS_max_depth) < 0 ||
      (absl::GetFlag(FLAGS_max_depth) > 0 && !absl::GetFlag(FLAGS_start))) {
    std::fprintf(stderr,
                 "spool-bench: --max_depth must be at least 0 and needs "
                 "--start\n");
    return 2;
  }
  std::unique_ptr<LocalServer> server;
  if (absl::GetFlag(FLAGS_start)) {
    absl::StatusOr<std::unique_ptr<LocalServer>> started = LocalServer::Start(
        absl::GetFlag(FLAGS_spoold), absl::GetFlag(FLAGS_spoold_flags));
    if (!started.ok()) {
      std::fprintf(stderr, "spool-bench: %s\n",
                   std::string(started.status().message()).c_str());
      return 1;
    }
    server = *std::move(started);
    targets = {server->target()};
  }
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  const std::string run = RunId();
  bool first = true;
  for (const std::string& scenario : absl::GetFlag(FLAGS_scenarios)) {
    const ScenarioFn run_scenario = FindScenario(scenario);
    if (run_scenario == nullptr) {
      std::fprintf(stderr, "spool-bench: unknown scenario %s\n",
                   scenario.c_str());
      return 2;
    }
    const ScenarioContext ctx{
        .targets = targets,
        .queue = absl::StrCat("bench-", scenario, "-", run),
        .server = server.get(),
        .self = self,
    };
    // With our own database: each scenario starts settled, not paying for
    // vacuuming the previous one's rows (the jobs it left stay).
    if (server != nullptr && !first) server->Settle();
    first = false;
    if (const int64_t depth = absl::GetFlag(FLAGS_max_depth); depth > 0) {
      if (absl::Status s = server->LimitQueue(ctx.queue, depth); !s.ok()) {
        std::fprintf(stderr, "spool-bench: %s\n",
                     std::string(s.message()).c_str());
        return 1;
      }
    }
    run_scenario(ctx);
  }
  if (server != nullptr) {
    Report r{"spoold"};
    r.Add("peak_rss_mib", ProcStatus(server->spoold_pid(), "VmHWM") / 1024.0);
    r.Add("threads", ProcStatus(server->spoold_pid(), "Threads"));
    r.Print();
    server->Stop();
  }
  return Failed() ? 1 : 0;
}

}  // namespace
}  // namespace spool::bench

int main(int argc, char** argv) { return spool::bench::Main(argc, argv); }
