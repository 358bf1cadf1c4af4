// Helpers for integration tests that talk to real spoold processes over
// loopback gRPC: a per-test database and server, and short wrappers around
// the spool.v1 RPCs that keep test bodies about behaviour.
#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "spool/v1/spool.grpc.pb.h"
#include "spool/wire/time.h"
#include "tests/services/spoold/metrics/metrics_test_util.h"
#include "tests/support/spoold_process.h"
#include "tests/support/test_postgres.h"

namespace spool::testing {

// Fast maintenance so expiry and delays show within a test's patience.
inline std::vector<std::string> FastFlags() {
  return {"--maintenance_interval=100ms", "--log_level=warning"};
}

// Proto time fields for requests and responses (spool/wire/time.h).
using wire::ToProtoDuration;
using wire::ToProtoTimestamp;
using wire::ToTime;

// Checks `done` every 20 ms until it holds or `timeout` passes; the failure
// says what was awaited. For state a test observes (a row, a job's state, a
// gauge), never for letting time pass.
::testing::AssertionResult WaitUntil(const std::function<bool()>& done,
                                     absl::Duration timeout,
                                     absl::string_view what);

// Flags for a metrics endpoint on a port the kernel picks, so there is no
// race with a probed free port; MetricsPort() reads the port back from the
// "metrics listening" line, which needs --log_level=info (put these flags
// last: the last --log_level wins).
std::vector<std::string> MetricsFlags();
absl::StatusOr<int> MetricsPort(const SpooldProcess& server);
// `flags` followed by MetricsFlags().
std::vector<std::string> WithMetrics(std::vector<std::string> flags);
// Fallback polling and maintenance slowed to a minute, with metrics: only a
// wake-up (in-process or NOTIFY) delivers a job to a parked poll in seconds.
std::vector<std::string> WakeUpOnlyFlags();

// One scrape of spoold's /metrics: the sum of the samples named `name` whose
// labels include `match` (0 when none do).
absl::StatusOr<double> ScrapeMetric(int metrics_port, const std::string& name,
                                    const Labels& match = {});

// Waits until spoold's spool_long_polls_waiting gauge reads `n`: that many
// Lease calls are parked, waiting for a job.
::testing::AssertionResult WaitForLongPollsWaiting(
    int metrics_port, int n, absl::Duration timeout = absl::Seconds(30));

// A client bound to one spoold.
class Api {
 public:
  explicit Api(std::shared_ptr<grpc::Channel> channel)
      : stub_(v1::JobService::NewStub(channel)) {}

  v1::JobService::Stub* stub() { return stub_.get(); }

  grpc::Status Enqueue(const v1::JobSpec& spec, v1::EnqueueResponse* resp,
                       absl::Duration timeout = absl::Seconds(10)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoSeconds(timeout));
    v1::EnqueueRequest req;
    *req.mutable_job() = spec;
    return stub_->Enqueue(&ctx, req, resp);
  }

  // Enqueues and returns the job id, failing the test on error.
  std::string MustEnqueue(const std::string& queue, const std::string& payload,
                          int priority = 0) {
    v1::JobSpec spec;
    spec.set_queue(queue);
    spec.set_payload(payload);
    spec.set_priority(priority);
    v1::EnqueueResponse resp;
    grpc::Status s = Enqueue(spec, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.job_id();
  }

  grpc::Status EnqueueBatch(const std::vector<v1::JobSpec>& jobs,
                            v1::EnqueueBatchResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v1::EnqueueBatchRequest req;
    for (const auto& j : jobs) *req.add_jobs() = j;
    return stub_->EnqueueBatch(&ctx, req, resp);
  }

  grpc::Status Lease(const v1::LeaseRequest& req, v1::LeaseResponse* resp,
                     absl::Duration timeout = absl::Seconds(60)) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(timeout));
    return stub_->Lease(&ctx, req, resp);
  }

  // Leases up to n jobs, waiting up to `wait`.
  std::vector<v1::LeasedJob> LeaseJobs(
      const std::string& queue, int n,
      absl::Duration wait = absl::ZeroDuration(),
      absl::Duration visibility = absl::Seconds(30)) {
    v1::LeaseRequest req;
    req.set_queue(queue);
    req.set_max_jobs(n);
    *req.mutable_wait() = ToProtoDuration(wait);
    *req.mutable_visibility_timeout() = ToProtoDuration(visibility);
    req.set_worker_id("test");
    v1::LeaseResponse resp;
    grpc::Status s = Lease(req, &resp, wait + absl::Seconds(30));
    EXPECT_TRUE(s.ok()) << s.error_message();
    return {resp.jobs().begin(), resp.jobs().end()};
  }

  grpc::Status Ack(const std::vector<v1::Completion>& completions,
                   v1::AckResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    v1::AckRequest req;
    for (const auto& c : completions) *req.add_completions() = c;
    return stub_->Ack(&ctx, req, resp);
  }

  // Acks one job and returns the item's code.
  int AckOne(const std::string& job_id, const std::string& lease_id,
             const std::string& result = "") {
    v1::Completion c;
    c.set_job_id(job_id);
    c.set_lease_id(lease_id);
    c.set_result(result);
    v1::AckResponse resp;
    grpc::Status s = Ack({c}, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (!s.ok() || resp.results_size() != 1) return -1;
    return resp.results(0).code();
  }

  grpc::Status Nack(const v1::NackRequest& req, v1::NackResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    return stub_->Nack(&ctx, req, resp);
  }

  grpc::Status Extend(const std::string& job_id, const std::string& lease_id,
                      absl::Duration timeout, v1::ExtendLeaseResponse* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::ExtendLeaseRequest req;
    req.set_job_id(job_id);
    req.set_lease_id(lease_id);
    *req.mutable_visibility_timeout() = ToProtoDuration(timeout);
    return stub_->ExtendLease(&ctx, req, resp);
  }

  grpc::Status GetJob(const std::string& job_id, v1::Job* job) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(10));
    v1::GetJobRequest req;
    req.set_job_id(job_id);
    return stub_->GetJob(&ctx, req, job);
  }

  v1::Job MustGetJob(const std::string& job_id) {
    v1::Job job;
    grpc::Status s = GetJob(job_id, &job);
    EXPECT_TRUE(s.ok()) << job_id << ": " << s.error_message();
    return job;
  }

 private:
  std::unique_ptr<v1::JobService::Stub> stub_;
};

// A long-poll parked on one spoold, then a job enqueued (maybe through
// another): what the poll got and how long after the enqueue it returned.
struct WakeUp {
  ::testing::AssertionResult parked = ::testing::AssertionFailure();
  std::vector<v1::LeasedJob> got;
  std::string enqueued_id;
  absl::Duration latency;
};
// Starts a 25 s Lease on `waiter`, waits until `waiter_metrics_port` shows it
// parked, enqueues one job on `queue` through `enqueuer`, and waits for the
// Lease to return.
WakeUp LeaseParkedThenEnqueue(Api& waiter, int waiter_metrics_port,
                              Api& enqueuer, const std::string& queue);

// Runs SQL against a test database (settings the API cannot change yet).
void ExecSql(const std::string& url, const std::string& sql);
// Runs a query returning one integer.
int64_t QueryInt(const std::string& url, const std::string& sql);
// How many of these job ids exist in spool_jobs.
int64_t CountExistingJobs(const std::string& url,
                          const std::set<std::string>& ids);
// Waits (WaitUntil, 30 s) until the integer query `sql` returns `want`.
::testing::AssertionResult WaitForQueryInt(const std::string& url,
                                           const std::string& sql, int64_t want,
                                           absl::string_view what);

// A database and one spoold on it, per test.
class SpooldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TestPostgres* pg = SharedPostgres();
    ASSERT_NE(pg, nullptr);
    auto url = pg->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    auto server = SpooldProcess::Start(url_, ServerFlags());
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    api_ = std::make_unique<Api>(server_->Channel());
  }

  virtual std::vector<std::string> ServerFlags() { return FastFlags(); }

  std::string url_;
  std::unique_ptr<SpooldProcess> server_;
  std::unique_ptr<Api> api_;
};

// SpooldTest whose spoold also serves /metrics (for the long-poll gauge).
class SpooldWithMetricsTest : public SpooldTest {
 protected:
  std::vector<std::string> ServerFlags() override {
    return WithMetrics(FastFlags());
  }
  // The metrics port of server_ (0 and a test failure if unknown).
  int MustMetricsPort() {
    auto port = MetricsPort(*server_);
    EXPECT_TRUE(port.ok()) << port.status();
    return port.ok() ? *port : 0;
  }
};

}  // namespace spool::testing
