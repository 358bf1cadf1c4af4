// enqueue: --callers single-job Enqueue calls kept in flight until
// --enqueue_jobs were issued; every job id must come back distinct.
#include <set>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "spool/v1/spool.grpc.pb.h"
#include "tools/bench/flags.h"
#include "tools/bench/report.h"
#include "tools/bench/scenario.h"
#include "tools/bench/unary_load.h"

namespace spool::bench {

void RunEnqueue(const ScenarioContext& ctx) {
  const int total =
      absl::GetFlag(FLAGS_quick) ? 2000 : absl::GetFlag(FLAGS_enqueue_jobs);
  const std::string& queue = ctx.queue;
  std::set<std::string> ids;
  UnaryLoad<v1::JobService::Stub, v1::EnqueueRequest, v1::EnqueueResponse> load;
  load.start = [](v1::JobService::Stub& stub, grpc::ClientContext* call,
                  const v1::EnqueueRequest& req, grpc::CompletionQueue* cq) {
    return stub.PrepareAsyncEnqueue(call, req, cq);
  };
  load.fill = [&](v1::EnqueueRequest& req) {
    req.mutable_job()->set_queue(queue);
    req.mutable_job()->set_payload("x");
  };
  load.done = [&](const v1::EnqueueResponse& resp) {
    ids.insert(resp.job_id());
  };
  load.RunAndReport(ctx, "enqueue", "jobs", total);
  if (load.failed != 0 || load.ok != total ||
      static_cast<int>(ids.size()) != total) {
    Fail(absl::StrCat("enqueue: ", load.ok, " ok, ", load.failed, " failed, ",
                      ids.size(), " distinct ids of ", total));
  }
}

}  // namespace spool::bench
