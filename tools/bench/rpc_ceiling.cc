// rpc_ceiling: as `enqueue`, but calling spoold's gRPC health check, which
// touches no database: what gRPC itself allows on this machine with the same
// client, callers and server, the bound any single-job RPC can reach.
#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tools/bench/flags.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"
#include "tools/bench/unary_load.h"

namespace spool::bench {

void RunRpcCeiling(const ScenarioContext& ctx) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 2000 : absl::GetFlag(FLAGS_enqueue_jobs);
  UnaryLoad<grpc::health::v1::Health::Stub,
            grpc::health::v1::HealthCheckRequest,
            grpc::health::v1::HealthCheckResponse>
      load;
  load.start = [](grpc::health::v1::Health::Stub& stub,
                  grpc::ClientContext* call,
                  const grpc::health::v1::HealthCheckRequest& req,
                  grpc::CompletionQueue* cq) {
    return stub.PrepareAsyncCheck(call, req, cq);
  };
  load.fill = [](grpc::health::v1::HealthCheckRequest&) {};
  load.RunAndReport(ctx, "rpc_ceiling", "calls", total);
  if (load.failed != 0 || load.ok != total) {
    Fail(absl::StrCat("rpc_ceiling: ", load.ok, " ok, ", load.failed,
                      " failed of ", total));
  }
}

}  // namespace spool::bench
