// Conversions between spool.v1 messages and the core's types, and the one
// mapping from absl::Status to grpc::Status. Malformed wire values (an
// out-of-range Duration or Timestamp) become INVALID_ARGUMENT naming the field.
#pragma once

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "core/types.h"
#include "core/validation.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/support/status.h"
#include "spool/v1/spool.pb.h"

namespace spool::api {

// The single place where internal statuses become wire statuses. Messages
// are passed through: the layers below never put SQL or secrets in them.
grpc::Status ToGrpcStatus(const absl::Status& status);

absl::StatusOr<absl::Duration> FromProto(const google::protobuf::Duration& d,
                                         absl::string_view field);
absl::StatusOr<absl::Time> FromProto(const google::protobuf::Timestamp& t,
                                     absl::string_view field);
void ToProto(absl::Time t, google::protobuf::Timestamp* out);

absl::StatusOr<core::JobInput> FromProto(const v1::JobSpec& spec,
                                         absl::string_view field);
absl::StatusOr<core::LeaseInput> FromProto(const v1::LeaseRequest& req);
absl::StatusOr<core::NackInput> FromProto(const v1::NackRequest& req);

void ToProto(const core::LeasedJob& job, v1::LeasedJob* out);
void ToProto(const core::Job& job, v1::Job* out);
v1::JobState ToProto(core::JobState state);

}  // namespace spool::api
