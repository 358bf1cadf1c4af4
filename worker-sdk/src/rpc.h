// The Client's retrying unary call (see the retry rule in spool/client.h).
#pragma once

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "backoff.h"
#include "connection.h"
#include "convert.h"
#include "settle.h"

namespace spool::internal {

template <typename Request, typename Response>
using StubMethod = grpc::Status (v1::JobService::Stub::*)(grpc::ClientContext*,
                                                          const Request&,
                                                          Response*);

// Sends `request` only over a READY connection (waiting for one is not an
// attempt), and retries per ShouldRetryClientCall until `deadline` or
// max_attempts sent attempts.
template <typename Request, typename Response>
absl::Status CallWithRetry(Connection& connection, const char* name,
                           StubMethod<Request, Response> method,
                           const Request& request, Response* response,
                           bool idempotent, absl::Time deadline) {
  const ClientOptions& options = connection.options();
  Backoff backoff(options.retry_backoff);
  int sent_attempts = 0;
  absl::Status last;
  while (true) {
    if (!connection.WaitForAnyReady(deadline)) {
      return absl::UnavailableError(absl::StrCat(
          name, ": no spoold connection became ready before the deadline",
          sent_attempts == 0 ? " (request not sent)" : "",
          last.ok() ? "" : absl::StrCat("; last error: ", last.ToString())));
    }
    Connection::Endpoint& endpoint = connection.Pick();
    if (endpoint.channel->GetState(false) != GRPC_CHANNEL_READY) {
      // Lost the connection between the check and the pick: not sent yet.
      continue;
    }
    grpc::ClientContext context;
    connection.Prepare(&context, deadline);
    ++sent_attempts;
    grpc::Status status =
        ((*endpoint.stub).*method)(&context, request, response);
    if (status.ok()) return absl::OkStatus();
    last = FromGrpc(status);
    if (!ShouldRetryClientCall(last.code(), idempotent, /*sent=*/true)) {
      if (!idempotent && last.code() == absl::StatusCode::kUnavailable) {
        return absl::UnavailableError(absl::StrCat(
            name, ": ", last.message(),
            " (not retried: the request was sent and may have been applied; "
            "set an idempotency key to make retries safe)"));
      }
      return last;
    }
    if (sent_attempts >= options.max_attempts) return last;
    const absl::Duration delay = backoff.Next();
    if (absl::Now() + delay >= deadline) return last;
    absl::SleepFor(delay);
  }
}

}  // namespace spool::internal
