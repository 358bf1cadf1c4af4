// FakeJobService's shared rules checked against spoold: one scripted
// sequence of Enqueue/Lease/Ack/Nack/ExtendLease/GetJob calls, including
// refusals (bad queue name, stale lease, unknown job, settled job), runs
// against the fake and against a real spoold on a throwaway PostgreSQL, and
// both must answer the same codes, item codes, states and attempts. If the
// fake drifts from the server, this fails, not the SDK tests built on it.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fake_job_service.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "gtest/gtest.h"
#include "spool/v1/spool.grpc.pb.h"
#include "spool/wire/time.h"
#include "tests/support/spoold_process.h"
#include "tests/support/test_postgres.h"

namespace spool::testing {
namespace {

// Runs the script against `target`; returns one line per step.
std::vector<std::string> RunScript(const std::string& target) {
  auto channel =
      grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  std::unique_ptr<v1::JobService::Stub> stub = v1::JobService::NewStub(channel);
  std::vector<std::string> steps;
  auto call = [&](auto method, const auto& request, auto* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(10));
    return ((*stub).*method)(&context, request, response);
  };
  auto record = [&](const std::string& step, const grpc::Status& status,
                    const std::string& detail = "") {
    steps.push_back(absl::StrCat(step, ": ", status.error_code(),
                                 detail.empty() ? "" : " ", detail));
  };

  auto enqueue = [&](const std::string& step, const std::string& queue,
                     const std::string& key, std::string* id) {
    v1::EnqueueRequest request;
    request.mutable_job()->set_queue(queue);
    request.mutable_job()->set_payload("p");
    request.mutable_job()->set_idempotency_key(key);
    v1::EnqueueResponse response;
    const grpc::Status status =
        call(&v1::JobService::Stub::Enqueue, request, &response);
    if (id != nullptr) *id = response.job_id();
    record(step, status, absl::StrCat("duplicate=", response.duplicate()));
  };
  auto lease = [&](const std::string& step, const std::string& queue,
                   std::string* job_id, std::string* lease_id) {
    v1::LeaseRequest request;
    request.set_queue(queue);
    request.set_max_jobs(1);
    wire::ToProto(absl::ZeroDuration(), request.mutable_wait());
    wire::ToProto(absl::Seconds(30), request.mutable_visibility_timeout());
    request.set_worker_id("conformance");
    v1::LeaseResponse response;
    const grpc::Status status =
        call(&v1::JobService::Stub::Lease, request, &response);
    std::string detail = absl::StrCat("jobs=", response.jobs_size());
    if (response.jobs_size() > 0) {
      if (job_id != nullptr) *job_id = response.jobs(0).job_id();
      if (lease_id != nullptr) *lease_id = response.jobs(0).lease_id();
      absl::StrAppend(&detail, " attempt=", response.jobs(0).attempt());
    }
    record(step, status, detail);
  };
  auto extend = [&](const std::string& step, const std::string& job_id,
                    const std::string& lease_id) {
    v1::ExtendLeaseRequest request;
    request.set_job_id(job_id);
    request.set_lease_id(lease_id);
    wire::ToProto(absl::Seconds(30), request.mutable_visibility_timeout());
    v1::ExtendLeaseResponse response;
    record(step, call(&v1::JobService::Stub::ExtendLease, request, &response));
  };
  auto ack = [&](const std::string& step, const std::string& job_id,
                 const std::string& lease_id) {
    v1::AckRequest request;
    v1::Completion* c = request.add_completions();
    c->set_job_id(job_id);
    c->set_lease_id(lease_id);
    c->set_result("r");
    v1::AckResponse response;
    const grpc::Status status =
        call(&v1::JobService::Stub::Ack, request, &response);
    record(step, status,
           response.results_size() == 1
               ? absl::StrCat("item=", response.results(0).code())
               : absl::StrCat("results=", response.results_size()));
  };
  auto nack = [&](const std::string& step, const std::string& job_id,
                  const std::string& lease_id) {
    v1::NackRequest request;
    request.set_job_id(job_id);
    request.set_lease_id(lease_id);
    wire::ToProto(absl::ZeroDuration(), request.mutable_retry_delay());
    request.set_error("again");
    v1::NackResponse response;
    const grpc::Status status =
        call(&v1::JobService::Stub::Nack, request, &response);
    record(step, status,
           status.ok() ? absl::StrCat("state=", response.state()) : "");
  };
  auto get = [&](const std::string& step, const std::string& job_id) {
    v1::GetJobRequest request;
    request.set_job_id(job_id);
    v1::Job response;
    const grpc::Status status =
        call(&v1::JobService::Stub::GetJob, request, &response);
    record(step, status,
           status.ok() ? absl::StrCat("state=", response.state(),
                                      " attempt=", response.attempt())
                       : "");
  };

  std::string id;
  std::string dup_first;
  std::string dup_second;
  enqueue("enqueue", "conf", "", &id);
  enqueue("enqueue_bad_queue", "-bad", "", nullptr);
  {
    v1::EnqueueBatchRequest request;
    request.add_jobs()->set_queue("conf-batch");
    request.add_jobs()->set_queue("bad name");
    v1::EnqueueBatchResponse response;
    record("enqueue_batch_bad_queue",
           call(&v1::JobService::Stub::EnqueueBatch, request, &response));
  }
  enqueue("enqueue_key", "conf-dup", "k1", &dup_first);
  enqueue("enqueue_key_again", "conf-dup", "k1", &dup_second);
  steps.push_back(absl::StrCat("same_id: ", dup_first == dup_second));
  lease("lease_bad_queue", "-bad", nullptr, nullptr);
  lease("lease_empty_queue", "conf-empty", nullptr, nullptr);
  std::string first_lease;
  lease("lease", "conf", nullptr, &first_lease);
  extend("extend", id, first_lease);
  get("get_leased", id);
  nack("nack", id, first_lease);
  get("get_nacked", id);
  std::string second_lease;
  lease("lease_again", "conf", nullptr, &second_lease);
  extend("extend_stale", id, first_lease);
  ack("ack_stale", id, first_lease);
  nack("nack_stale", id, first_lease);
  ack("ack", id, second_lease);
  get("get_acked", id);
  extend("extend_settled", id, second_lease);
  ack("ack_settled", id, second_lease);
  nack("nack_settled", id, second_lease);
  const std::string unknown = "999999999";
  get("get_unknown", unknown);
  extend("extend_unknown", unknown, second_lease);
  ack("ack_unknown", unknown, second_lease);
  nack("nack_unknown", unknown, second_lease);
  return steps;
}

class FakeConformanceTest : public PostgresTest {};

TEST_F(FakeConformanceTest, FakeAnswersLikeSpoold) {
  ASSERT_NE(postgres_, nullptr);
  absl::StatusOr<std::unique_ptr<SpooldProcess>> spoold =
      SpooldProcess::Start(database_url_);
  ASSERT_TRUE(spoold.ok()) << spoold.status();
  const std::vector<std::string> real = RunScript((*spoold)->Target());

  auto service = std::make_shared<FakeJobService>();
  FakeServer server(service);
  ASSERT_TRUE(server.ok());
  const std::vector<std::string> fake = RunScript(server.Target());

  EXPECT_EQ(fake, real) << "spoold:\n  " << absl::StrJoin(real, "\n  ")
                        << "\nfake:\n  " << absl::StrJoin(fake, "\n  ");
}

}  // namespace
}  // namespace spool::testing
