// The scenarios spool-bench runs (one file each), what each one is given,
// and the pieces several of them share.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/channel.h"
#include "spool/client.h"
#include "spool/worker.h"
#include "tools/bench/local_server.h"
#include "tools/bench/metering.h"

namespace spool::bench {

struct ScenarioContext {
  // spoold address(es).
  std::vector<std::string> targets;
  // This scenario's own queue (bench-SCENARIO-RUN).
  std::string queue;
  // The --start server, or nullptr when targeting --target.
  LocalServer* server = nullptr;
  // This binary, for the worker processes of `process`.
  std::string self;

  int spoold_pid() const { return server ? server->spoold_pid() : -1; }
  int postgres_pid() const { return server ? server->postgres_pid() : -1; }
  CpuMeter NewCpuMeter() const {
    return CpuMeter(spoold_pid(), postgres_pid());
  }
};

// rpc_ceiling: as enqueue, but gRPC health checks (no database).
void RunRpcCeiling(const ScenarioContext& ctx);
// enqueue: --callers concurrent single-job Enqueue calls.
void RunEnqueue(const ScenarioContext& ctx);
// batch: EnqueueBatch of --batch_size jobs from --batch_callers callers.
void RunBatch(const ScenarioContext& ctx);
// process: pre-filled jobs drained by --workers worker processes.
void RunProcess(const ScenarioContext& ctx);
// latency: Enqueue -> handler start at a fixed trickle rate.
void RunLatency(const ScenarioContext& ctx);
// mixed: producers and workers at once, some attempts retried.
void RunMixed(const ScenarioContext& ctx);
// idle: --idle_polls concurrent idle long-polls and what they cost spoold.
void RunIdle(const ScenarioContext& ctx);

// The worker-process mode of `process` (--worker_queue set): exit code.
int WorkerMain(const std::vector<std::string>& targets);

// A channel with its own TCP connection and no receive size limit.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& target);

// The SDK logs each retry; the bench asks for retries, so keep only errors.
void QuietLog(std::string_view line);

// Options of an SDK client of the bench: `targets`, the rest default.
ClientOptions BenchClientOptions(const std::vector<std::string>& targets);

// Options of an SDK worker of the bench: `targets`, QuietLog, `worker_id`.
WorkerOptions BenchWorkerOptions(const std::vector<std::string>& targets,
                                 std::string worker_id);

// How many of `ids` were never seen in `seen` (id -> times), and how many
// extra times the others were.
struct ExactOnce {
  int lost = 0;
  int doubled = 0;
};
ExactOnce CheckExactlyOnce(const std::vector<std::string>& ids,
                           const std::map<std::string, int>& seen);

}  // namespace spool::bench
