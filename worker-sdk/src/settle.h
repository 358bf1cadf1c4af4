// How handler outcomes and RPC results turn into acks, nacks and retries.
// Pure functions, unit-tested apart from the runtime.
#pragma once

#include <exception>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "spool/outcome.h"

namespace spool::internal {

// What the runtime sends for an outcome.
struct SettleAction {
  enum class Kind { kAck, kNack };
  Kind kind = Kind::kAck;
  // Ack: the result bytes.
  std::string result;
  // Nack: unset means the queue's backoff; zero means ready at once.
  std::optional<absl::Duration> retry_delay;
  std::string error;
  bool dead_letter = false;
};

SettleAction ToSettleAction(const Outcome& outcome);

// The outcome of a handler that threw `error`: Retry with the exception's
// message (std::exception::what(), or a fixed text for other types).
Outcome OutcomeFromException(std::exception_ptr error);

// The nack that hands a job back to the queue at once (shutdown leftovers).
SettleAction HandBackAction(std::string reason);

// How often a running job's lease is extended: a third of the visibility
// timeout, so two extensions can fail before the lease runs out.
absl::Duration ExtensionInterval(absl::Duration visibility_timeout);

// The per-item verdict of an Ack (ItemResult.code) or of a Nack/ExtendLease.
enum class ItemVerdict {
  kOk,
  // FAILED_PRECONDITION: the lease is not ours any more; never retried.
  kLeaseLost,
  // NOT_FOUND: the job no longer exists (e.g. already acked and deleted).
  kNotFound,
  // Anything else: rejected for good (e.g. result too large).
  kRejected,
};
ItemVerdict ClassifyItemCode(int code);

// Codes worth retrying an ack/nack/extension for: the request may not have
// been applied and applying it twice is harmless (fencing by lease id).
bool IsTransient(absl::StatusCode code);
// Of those, the ones that mean "server unreachable / too slow": acks are
// retried for these for as long as the worker runs.
bool IsUnreachable(absl::StatusCode code);

// Client retry rule (see client.h): retry when the request was provably not
// sent, when spoold answered ABORTED (rolled back: nothing written), or when
// it failed with UNAVAILABLE and is idempotent.
bool ShouldRetryClientCall(absl::StatusCode code, bool idempotent, bool sent);

}  // namespace spool::internal
