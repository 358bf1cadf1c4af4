// An in-memory spool.v1.JobService on a loopback port, for the SDK tests
// that need what a real spoold cannot be made to show on demand:
//   - a call that fails with a chosen code, before or after it took effect
//     (FailNext: an Ack whose answer is lost, UNAVAILABLE ExtendLease /
//     Ack / Lease bursts, a GetJob that fails);
//   - a lease taken over by another worker at an exact moment
//     (StealLease), and lease expiry on a test's ManualClock;
//   - the exact requests the SDK sent (max_jobs asked, ack batch sizes,
//     nack delays and errors, call counts).
// Behaviour a real server shows (outcomes, extension, graceful stop,
// restarts, kill -9, exactly-once at scale) is tested against spoold in
// worker_pgtest.cc. The rules the fake shares with spoold (queue names,
// fencing by lease id, stale/unknown/settled answers, idempotency keys,
// attempts, acked jobs gone) are checked against a real spoold by
// fake_conformance_pgtest.cc.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clock.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "spool/v1/spool.grpc.pb.h"

namespace spool::testing {

class FakeJobService final : public v1::JobService::Service {
 public:
  // Lease expiry, run_at and delays follow `clock` (which must outlive the
  // service); a long-poll's wait is real time, like the RPC it answers.
  explicit FakeJobService(
      const internal::Clock& clock = internal::Clock::Real())
      : clock_(clock) {}

  struct FakeJob {
    std::string id;
    std::string queue;
    std::string payload;
    std::map<std::string, std::string> headers;
    int priority = 0;
    int attempt = 0;
    int max_attempts = 20;
    std::string idempotency_key;
    v1::JobState state = v1::JOB_STATE_READY;
    std::string lease_id;
    absl::Time lease_expires_at = absl::InfinitePast();
    absl::Time run_at = absl::InfinitePast();
    std::string last_error;
    std::string result;
    int acks = 0;  // successful acks
  };

  struct NackRecord {
    std::string job_id;
    std::optional<absl::Duration> retry_delay;
    std::string error;
    bool dead_letter = false;
  };

  // Returns the new job's id.
  std::string AddJob(const std::string& queue, const std::string& payload,
                     int max_attempts = 20);

  // The next `count` calls of `method` ("Enqueue", "Lease", "Ack", ...) fail
  // with `code`; with `after_apply` the call takes effect first (its answer
  // is lost, as when a connection drops after the server committed).
  void FailNext(const std::string& method, int count, grpc::StatusCode code,
                bool after_apply = false);

  // Re-leases a leased job under a new lease id, as if its lease expired and
  // another worker took it: the old lease id becomes stale.
  void StealLease(const std::string& job_id);

  std::optional<FakeJob> GetFakeJob(const std::string& job_id);
  int Calls(const std::string& method);
  std::vector<int> LeaseMaxJobs();
  std::vector<int> AckBatchSizes();
  std::vector<NackRecord> Nacks();
  std::vector<v1::JobSpec> EnqueuedSpecs();
  // Jobs in `state`.
  int CountInState(v1::JobState state);

  grpc::Status Enqueue(grpc::ServerContext* context,
                       const v1::EnqueueRequest* request,
                       v1::EnqueueResponse* response) override;
  grpc::Status EnqueueBatch(grpc::ServerContext* context,
                            const v1::EnqueueBatchRequest* request,
                            v1::EnqueueBatchResponse* response) override;
  grpc::Status Lease(grpc::ServerContext* context,
                     const v1::LeaseRequest* request,
                     v1::LeaseResponse* response) override;
  grpc::Status Ack(grpc::ServerContext* context, const v1::AckRequest* request,
                   v1::AckResponse* response) override;
  grpc::Status Nack(grpc::ServerContext* context,
                    const v1::NackRequest* request,
                    v1::NackResponse* response) override;
  grpc::Status ExtendLease(grpc::ServerContext* context,
                           const v1::ExtendLeaseRequest* request,
                           v1::ExtendLeaseResponse* response) override;
  grpc::Status GetJob(grpc::ServerContext* context,
                      const v1::GetJobRequest* request,
                      v1::Job* response) override;

 private:
  struct Fault {
    int remaining = 0;
    grpc::StatusCode code = grpc::StatusCode::UNAVAILABLE;
    bool after_apply = false;
  };

  // Counts the call; returns the failure to inject before/after applying.
  std::optional<grpc::Status> TakeFault(const std::string& method,
                                        bool* after_apply)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string AddJobLocked(const v1::JobSpec& spec, bool* duplicate)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeasesLocked(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // NOT_FOUND / FAILED_PRECONDITION unless `lease_id` is the job's lease.
  grpc::Status CheckLeaseLocked(const std::string& job_id,
                                const std::string& lease_id, FakeJob** job)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const internal::Clock& clock_;
  absl::Mutex mu_;
  absl::CondVar changed_;
  int next_id_ ABSL_GUARDED_BY(mu_) = 0;
  int next_lease_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, FakeJob> jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> order_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Fault> faults_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, int> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<int> lease_max_jobs_ ABSL_GUARDED_BY(mu_);
  std::vector<int> ack_batch_sizes_ ABSL_GUARDED_BY(mu_);
  std::vector<NackRecord> nacks_ ABSL_GUARDED_BY(mu_);
  std::vector<v1::JobSpec> enqueued_ ABSL_GUARDED_BY(mu_);
};

// Serves a FakeJobService on 127.0.0.1 (a fresh port, or a given one).
class FakeServer {
 public:
  // port 0: pick one. Null credentials: plaintext.
  explicit FakeServer(
      std::shared_ptr<FakeJobService> service, int port = 0,
      std::shared_ptr<grpc::ServerCredentials> credentials = nullptr);
  ~FakeServer();

  std::string Target() const;
  int port() const { return port_; }
  FakeJobService& service() { return *service_; }
  // Stops serving (in-flight calls are cancelled).
  void Shutdown();
  // Serves again on the same port.
  void Restart();
  bool ok() const { return server_ != nullptr; }

 private:
  void StartServer(int port);
  std::shared_ptr<FakeJobService> service_;
  std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// A loopback port that is free right now.
int FreePort();

}  // namespace spool::testing
