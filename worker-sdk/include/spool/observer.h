// Hooks a Worker calls as jobs flow, for metrics and tracing. Callbacks run
// on the worker's own threads, concurrently: keep them fast and thread-safe,
// and do not throw.
#pragma once

#include <string_view>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "spool/job.h"
#include "spool/outcome.h"

namespace spool {

// Why a job's attempt ended without its outcome being recorded as intended.
enum class JobFailure {
  // The handler threw; the job is retried with the exception's message.
  kHandlerException,
  // The server refused the ack/nack/extension because the lease is no longer
  // ours (expired and re-leased): another worker owns the job now.
  kLeaseLost,
  // The ack/nack could not be delivered (server unreachable until the lease
  // ran out or shutdown gave up, or the server rejected it); the job comes
  // back after its visibility timeout.
  kSettleFailed,
};

const char* JobFailureName(JobFailure failure);

class WorkerObserver {
 public:
  virtual ~WorkerObserver() = default;

  // A handler is about to run `job`.
  virtual void OnJobStarted(const Job& /*job*/) {}
  // The handler returned (or threw: then `outcome` is the Retry it maps to).
  virtual void OnJobFinished(const Job& /*job*/, const Outcome& /*outcome*/,
                             absl::Duration /*duration*/) {}
  // Something went wrong with this attempt; see JobFailure.
  virtual void OnJobFailed(const Job& /*job*/, JobFailure /*failure*/,
                           const absl::Status& /*status*/) {}
  // An ExtendLease call failed. Transient failures are retried while the
  // lease lasts; a lost lease also cancels the job's token.
  virtual void OnLeaseExtensionFailed(const Job& /*job*/,
                                      const absl::Status& /*status*/) {}
  // An Ack batch of `batch_size` completions was answered; `latency` runs
  // from the oldest completion in it being handed to the batcher.
  virtual void OnAckLatency(absl::Duration /*latency*/, int /*batch_size*/) {}
  // A Lease call returned `count` jobs.
  virtual void OnLeased(std::string_view /*queue*/, int /*count*/) {}
  // A Lease call failed (spoold unreachable, ...); the worker backs off.
  virtual void OnLeaseError(std::string_view /*queue*/,
                            const absl::Status& /*status*/) {}
};

}  // namespace spool
