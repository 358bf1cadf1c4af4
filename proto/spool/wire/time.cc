#include "spool/wire/time.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace spool::wire {

using google::protobuf::util::TimeUtil;

absl::StatusOr<absl::Duration> ParseDuration(
    const google::protobuf::Duration& d, absl::string_view field) {
  if (d.seconds() < TimeUtil::kDurationMinSeconds ||
      d.seconds() > TimeUtil::kDurationMaxSeconds || d.nanos() <= -1000000000 ||
      d.nanos() >= 1000000000 || (d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is not a valid Duration"));
  }
  return ToDuration(d);
}

absl::StatusOr<absl::Time> ParseTime(const google::protobuf::Timestamp& t,
                                     absl::string_view field) {
  if (t.seconds() < TimeUtil::kTimestampMinSeconds ||
      t.seconds() > TimeUtil::kTimestampMaxSeconds || t.nanos() < 0 ||
      t.nanos() >= 1000000000) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " is not a valid Timestamp"));
  }
  return ToTime(t);
}

absl::Duration ToDuration(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

absl::Time ToTime(const google::protobuf::Timestamp& t) {
  return absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos());
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  // Seconds toward zero, the remainder's nanoseconds with the same sign, as
  // Duration requires.
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

google::protobuf::Duration ToProtoDuration(absl::Duration d) {
  google::protobuf::Duration out;
  ToProto(d, &out);
  return out;
}

void ToProto(absl::Time t, google::protobuf::Timestamp* out) {
  *out = TimeUtil::MicrosecondsToTimestamp(absl::ToUnixMicros(t));
}

google::protobuf::Timestamp ToProtoTimestamp(absl::Time t) {
  google::protobuf::Timestamp out;
  ToProto(t, &out);
  return out;
}

}  // namespace spool::wire
