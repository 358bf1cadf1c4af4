// Conversions between the public SDK types and the generated spool.v1
// messages. Kept out of the public headers. Durations and timestamps go
// through spool/wire/time.h, shared with spoold.
#pragma once

#include <optional>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "spool/client.h"
#include "spool/job.h"
#include "spool/v1/spool.pb.h"

namespace spool::internal {

void ToProto(const JobOptions& job, v1::JobSpec* out);
// `cancellation` is attached to the returned Job.
Job FromProto(const v1::LeasedJob& leased, CancellationToken cancellation);
JobInfo FromProto(const v1::Job& job);
JobState FromProto(v1::JobState state);

absl::Status FromGrpc(const grpc::Status& status);

}  // namespace spool::internal
