// The load loop of rpc_ceiling and enqueue: many unary calls kept in flight
// on raw async gRPC.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpcpp/grpcpp.h"
#include "tools/bench/flags.h"
#include "tools/bench/metering.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"

namespace spool::bench {

// Keeps `callers` unary calls in flight until `total` were issued (or
// --timeout passed), on --client_threads completion queues, each drained by
// one thread and owning one channel: the leanest client gRPC offers, so the
// load generator takes as little of the machine as it can. `start(stub, req,
// resp, ctx, cq)` starts one call; `done(resp)` sees each OK response.
template <typename Stub, typename Req, typename Resp>
struct UnaryLoad {
  std::function<std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>>(
      Stub&, grpc::ClientContext*, const Req&, grpc::CompletionQueue*)>
      start;
  std::function<void(Req&)> fill;
  std::function<void(const Resp&)> done;
  int ok = 0;
  int failed = 0;
  absl::Duration took;

  void Run(const std::vector<std::string>& targets, int callers, int total) {
    const int threads =
        std::max(1, std::min(callers, absl::GetFlag(FLAGS_client_threads)));
    struct Call {
      grpc::ClientContext ctx;
      Req req;
      Resp resp;
      grpc::Status status;
      std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> reader;
    };
    std::atomic<int> issued{0}, oks{0}, fails{0};
    const absl::Time deadline = absl::Now() + absl::GetFlag(FLAGS_timeout);
    absl::Mutex done_mu;
    std::vector<std::thread> pool;
    const absl::Time begin = absl::Now();
    for (int t = 0; t < threads; ++t) {
      const int mine = callers / threads + (t < callers % threads ? 1 : 0);
      pool.emplace_back([&, t, mine] {
        auto stub =
            std::make_unique<Stub>(MakeChannel(targets[t % targets.size()]));
        grpc::CompletionQueue cq;
        auto issue = [&]() -> bool {
          if (issued.fetch_add(1) >= total || absl::Now() > deadline) {
            return false;
          }
          auto* c = new Call;
          fill(c->req);
          c->ctx.set_deadline(std::chrono::system_clock::now() +
                              std::chrono::seconds(30));
          c->reader = start(*stub, &c->ctx, c->req, &cq);
          c->reader->StartCall();
          c->reader->Finish(&c->resp, &c->status, c);
          return true;
        };
        int in_flight = 0;
        for (int i = 0; i < mine; ++i) in_flight += issue() ? 1 : 0;
        void* tag;
        bool ok_tag;
        while (in_flight > 0 && cq.Next(&tag, &ok_tag)) {
          auto* c = static_cast<Call*>(tag);
          --in_flight;
          if (c->status.ok()) {
            ++oks;
            if (done) {
              absl::MutexLock lock(&done_mu);
              done(c->resp);
            }
          } else {
            ++fails;
          }
          delete c;
          in_flight += issue() ? 1 : 0;
        }
        cq.Shutdown();
        while (cq.Next(&tag, &ok_tag)) {
        }
      });
    }
    for (auto& t : pool) t.join();
    took = absl::Now() - begin;
    ok = oks.load();
    failed = fails.load();
  }

  // Run() with --callers callers, measured, printed as `scenario` with the
  // calls counted as `unit`.
  void RunAndReport(const ScenarioContext& ctx, const std::string& scenario,
                    const std::string& unit, int total) {
    const int callers = absl::GetFlag(FLAGS_callers);
    CpuMeter cpu = ctx.NewCpuMeter();
    Run(ctx.targets, callers, total);
    Report r{scenario};
    cpu.AddTo(r);
    r.Add("callers", callers);
    r.Add(unit, ok);
    r.Add("failed", failed);
    r.Add("seconds", absl::ToDoubleSeconds(took));
    r.Add(unit + "_per_s", ok / absl::ToDoubleSeconds(took));
    r.Print();
  }
};

}  // namespace spool::bench
