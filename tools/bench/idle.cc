// idle: --idle_polls concurrent idle long-polls; what they cost spoold while
// they wait (its threads, RSS and database connections; needs --start).
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spool/v1/spool.grpc.pb.h"
#include "spool/wire/time.h"
#include "tools/bench/flags.h"
#include "tools/bench/metering.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace spool::bench {

void RunIdle(const ScenarioContext& ctx) {
  const std::vector<std::string>& targets = ctx.targets;
  LocalServer* const server = ctx.server;
  const int polls =
      absl::GetFlag(FLAGS_quick) ? 200 : absl::GetFlag(FLAGS_idle_polls);
  std::vector<std::unique_ptr<v1::JobService::Stub>> stubs;
  for (int i = 0; i < 8; ++i)
    stubs.push_back(
        v1::JobService::NewStub(MakeChannel(targets[i % targets.size()])));
  struct Poll {
    grpc::ClientContext ctx;
    v1::LeaseRequest req;
    v1::LeaseResponse resp;
  };
  std::vector<std::unique_ptr<Poll>> calls(polls);
  std::atomic<int> done{0}, ok{0};
  for (int i = 0; i < polls; ++i) {
    calls[i] = std::make_unique<Poll>();
    calls[i]->req.set_queue(ctx.queue);
    wire::ToProto(absl::Seconds(5), calls[i]->req.mutable_wait());
    stubs[i % stubs.size()]->async()->Lease(
        &calls[i]->ctx, &calls[i]->req, &calls[i]->resp, [&](grpc::Status s) {
          if (s.ok()) ++ok;
          ++done;
        });
  }
  absl::SleepFor(absl::Seconds(2));
  int64_t threads = -1, rss_kb = -1, connections = -1;
  if (server != nullptr) {
    threads = ProcStatus(server->spoold_pid(), "Threads");
    rss_kb = ProcStatus(server->spoold_pid(), "VmRSS");
    connections = server->DatabaseConnections();
  }
  const int waiting = polls - done.load();
  absl::Time until = absl::Now() + absl::Seconds(30);
  while (done.load() < polls && absl::Now() < until)
    absl::SleepFor(absl::Milliseconds(20));
  Report r{"idle"};
  r.Add("polls", polls);
  r.Add("waiting_at_sample", waiting);
  r.Add("spoold_threads", threads);
  r.Add("db_connections", connections);
  r.Add("spoold_rss_mib", rss_kb < 0 ? -1.0 : rss_kb / 1024.0);
  r.Add("returned_ok", ok.load());
  r.Print();
  if (waiting != polls || ok.load() != polls) {
    Fail(absl::StrCat("idle: ", waiting, " waiting of ", polls, ", ", ok.load(),
                      " ok"));
  }
}

}  // namespace spool::bench
