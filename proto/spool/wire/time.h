// Conversions between google.protobuf.Duration/Timestamp and absl::Duration/
// absl::Time, written once for spoold, the SDK, tools and tests. Checked
// conversions refuse values outside the ranges protobuf defines (TimeUtil's
// limits) with INVALID_ARGUMENT naming the field; unchecked ones are for
// values a trusted peer produced.
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace spool::wire {

absl::StatusOr<absl::Duration> ParseDuration(
    const google::protobuf::Duration& d, absl::string_view field);
absl::StatusOr<absl::Time> ParseTime(const google::protobuf::Timestamp& t,
                                     absl::string_view field);

absl::Duration ToDuration(const google::protobuf::Duration& d);
absl::Time ToTime(const google::protobuf::Timestamp& t);

// Exact to the nanosecond.
void ToProto(absl::Duration d, google::protobuf::Duration* out);
google::protobuf::Duration ToProtoDuration(absl::Duration d);
// Truncated to the microsecond, the resolution PostgreSQL stores.
void ToProto(absl::Time t, google::protobuf::Timestamp* out);
google::protobuf::Timestamp ToProtoTimestamp(absl::Time t);

}  // namespace spool::wire
