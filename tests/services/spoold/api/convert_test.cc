// Unit tests for api/convert: wire Duration/Timestamp validity, Timestamp
// round trips at microsecond precision, JobSpec/LeaseRequest/NackRequest to
// core inputs (presence of optional fields), store rows to wire messages, and
// ToGrpcStatus.
#include "api/convert.h"

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"
#include "spool/v1/spool.pb.h"
#include "store/types.h"

namespace spool::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

google::protobuf::Duration Dur(int64_t seconds, int32_t nanos) {
  google::protobuf::Duration d;
  d.set_seconds(seconds);
  d.set_nanos(nanos);
  return d;
}

google::protobuf::Timestamp Ts(int64_t seconds, int32_t nanos) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  t.set_nanos(nanos);
  return t;
}

void ExpectInvalidField(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(field + " ")) << s;
}

// --- ToGrpcStatus ------------------------------------------------------------

TEST(ToGrpcStatus, OkIsOk) {
  grpc::Status s = ToGrpcStatus(absl::OkStatus());
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::OK);
  EXPECT_EQ(s.error_message(), "");
}

TEST(ToGrpcStatus, PreservesCodeAndMessage) {
  struct Case {
    absl::Status in;
    grpc::StatusCode code;
  };
  const Case cases[] = {
      {absl::InvalidArgumentError("jobs[3].priority must be between"),
       grpc::StatusCode::INVALID_ARGUMENT},
      {absl::NotFoundError("job 42 not found"), grpc::StatusCode::NOT_FOUND},
      {absl::FailedPreconditionError("stale lease"),
       grpc::StatusCode::FAILED_PRECONDITION},
      {absl::ResourceExhaustedError("queue full"),
       grpc::StatusCode::RESOURCE_EXHAUSTED},
      {absl::UnavailableError("database down"), grpc::StatusCode::UNAVAILABLE},
      {absl::DeadlineExceededError("late"),
       grpc::StatusCode::DEADLINE_EXCEEDED},
      {absl::CancelledError("bye"), grpc::StatusCode::CANCELLED},
      {absl::InternalError("oops"), grpc::StatusCode::INTERNAL},
      {absl::AlreadyExistsError("dup"), grpc::StatusCode::ALREADY_EXISTS},
      {absl::PermissionDeniedError("no"), grpc::StatusCode::PERMISSION_DENIED},
      {absl::UnauthenticatedError("who"), grpc::StatusCode::UNAUTHENTICATED},
      {absl::AbortedError("retry"), grpc::StatusCode::ABORTED},
      {absl::OutOfRangeError("range"), grpc::StatusCode::OUT_OF_RANGE},
      {absl::UnimplementedError("later"), grpc::StatusCode::UNIMPLEMENTED},
      {absl::DataLossError("lost"), grpc::StatusCode::DATA_LOSS},
      {absl::UnknownError("?"), grpc::StatusCode::UNKNOWN},
  };
  for (const Case& c : cases) {
    grpc::Status s = ToGrpcStatus(c.in);
    EXPECT_EQ(s.error_code(), c.code) << c.in;
    EXPECT_EQ(s.error_message(), std::string(c.in.message())) << c.in;
  }
}

TEST(ToGrpcStatus, MessageWithUnicodeAndEmptyMessage) {
  grpc::Status s =
      ToGrpcStatus(absl::InvalidArgumentError("caf\xC3\xA9 \"x\""));
  EXPECT_EQ(s.error_message(), "caf\xC3\xA9 \"x\"");
  grpc::Status empty =
      ToGrpcStatus(absl::Status(absl::StatusCode::kAborted, ""));
  EXPECT_EQ(empty.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_EQ(empty.error_message(), "");
}

// --- Duration ----------------------------------------------------------------

TEST(DurationFromProto, ValidValues) {
  auto zero = FromProto(Dur(0, 0), "d");
  ASSERT_TRUE(zero.ok());
  EXPECT_EQ(*zero, absl::ZeroDuration());
  auto d = FromProto(Dur(5, 250000000), "d");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(*d, absl::Milliseconds(5250));
  auto neg = FromProto(Dur(-5, -250000000), "d");
  ASSERT_TRUE(neg.ok());
  EXPECT_EQ(*neg, -absl::Milliseconds(5250));
  auto nanos_only = FromProto(Dur(0, -1), "d");
  ASSERT_TRUE(nanos_only.ok());
  EXPECT_EQ(*nanos_only, -absl::Nanoseconds(1));
  auto max = FromProto(Dur(315576000000, 999999999), "d");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, absl::Seconds(315576000000) + absl::Nanoseconds(999999999));
  auto min = FromProto(Dur(-315576000000, -999999999), "d");
  ASSERT_TRUE(min.ok());
  EXPECT_EQ(*min, -absl::Seconds(315576000000) - absl::Nanoseconds(999999999));
}

TEST(DurationFromProto, NanosOutOfRange) {
  ExpectInvalidField(FromProto(Dur(1, 1000000000), "wait").status(), "wait");
  ExpectInvalidField(FromProto(Dur(-1, -1000000000), "wait").status(), "wait");
  ExpectInvalidField(FromProto(Dur(0, INT32_MAX), "wait").status(), "wait");
  ExpectInvalidField(FromProto(Dur(0, INT32_MIN), "wait").status(), "wait");
}

TEST(DurationFromProto, SignMismatch) {
  absl::Status s = FromProto(Dur(1, -1), "visibility_timeout").status();
  ExpectInvalidField(s, "visibility_timeout");
  EXPECT_THAT(std::string(s.message()), HasSubstr("Duration"));
  ExpectInvalidField(FromProto(Dur(-1, 1), "visibility_timeout").status(),
                     "visibility_timeout");
}

TEST(DurationFromProto, SecondsOutOfRange) {
  ExpectInvalidField(FromProto(Dur(315576000001, 0), "d").status(), "d");
  ExpectInvalidField(FromProto(Dur(-315576000001, 0), "d").status(), "d");
  ExpectInvalidField(FromProto(Dur(INT64_MAX, 0), "d").status(), "d");
  ExpectInvalidField(FromProto(Dur(INT64_MIN, 0), "d").status(), "d");
}

// --- Timestamp ---------------------------------------------------------------

TEST(TimestampFromProto, ValidValues) {
  auto epoch = FromProto(Ts(0, 0), "t");
  ASSERT_TRUE(epoch.ok());
  EXPECT_EQ(*epoch, absl::UnixEpoch());
  auto t = FromProto(Ts(1700000000, 123456789), "t");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t,
            absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(123456789));
  auto before_epoch = FromProto(Ts(-1, 999999999), "t");
  ASSERT_TRUE(before_epoch.ok());
  EXPECT_EQ(*before_epoch, absl::UnixEpoch() - absl::Nanoseconds(1));
  // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999999Z.
  auto min = FromProto(Ts(-62135596800, 0), "t");
  ASSERT_TRUE(min.ok());
  EXPECT_EQ(*min, absl::FromCivil(absl::CivilSecond(1, 1, 1, 0, 0, 0),
                                  absl::UTCTimeZone()));
  auto max = FromProto(Ts(253402300799, 999999999), "t");
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, absl::FromCivil(absl::CivilSecond(9999, 12, 31, 23, 59, 59),
                                  absl::UTCTimeZone()) +
                      absl::Nanoseconds(999999999));
}

TEST(TimestampFromProto, NanosOutOfRange) {
  ExpectInvalidField(FromProto(Ts(0, -1), "jobs[3].run_at").status(),
                     "jobs[3].run_at");
  ExpectInvalidField(FromProto(Ts(0, 1000000000), "run_at").status(), "run_at");
  ExpectInvalidField(FromProto(Ts(-5, -1), "run_at").status(), "run_at");
}

TEST(TimestampFromProto, SecondsOutOfRange) {
  absl::Status s = FromProto(Ts(-62135596801, 0), "run_at").status();
  ExpectInvalidField(s, "run_at");
  EXPECT_THAT(std::string(s.message()), HasSubstr("Timestamp"));
  ExpectInvalidField(FromProto(Ts(253402300800, 0), "run_at").status(),
                     "run_at");
}

TEST(TimestampToProto, MicrosecondPrecision) {
  google::protobuf::Timestamp out;
  ToProto(absl::FromUnixSeconds(1700000000) + absl::Nanoseconds(123456789),
          &out);
  EXPECT_EQ(out.seconds(), 1700000000);
  EXPECT_EQ(out.nanos(), 123456000);
}

TEST(TimestampToProto, BeforeEpochNormalised) {
  google::protobuf::Timestamp out;
  ToProto(absl::UnixEpoch() - absl::Microseconds(1), &out);
  EXPECT_EQ(out.seconds(), -1);
  EXPECT_EQ(out.nanos(), 999999000);
  ToProto(absl::UnixEpoch() - absl::Seconds(2), &out);
  EXPECT_EQ(out.seconds(), -2);
  EXPECT_EQ(out.nanos(), 0);
  ToProto(absl::UnixEpoch() - absl::Milliseconds(1500), &out);
  EXPECT_EQ(out.seconds(), -2);
  EXPECT_EQ(out.nanos(), 500000000);
}

TEST(TimestampToProto, RoundTripAtMicrosecondPrecision) {
  for (int64_t us :
       {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{999999}, int64_t{1000000},
        int64_t{-1000000}, int64_t{-1000001}, int64_t{1700000000123456},
        int64_t{-1700000000654321}, int64_t{253402300799999999},
        int64_t{-62135596800000000}}) {
    const absl::Time t = absl::FromUnixMicros(us);
    google::protobuf::Timestamp proto;
    ToProto(t, &proto);
    EXPECT_GE(proto.nanos(), 0) << us;
    EXPECT_LT(proto.nanos(), 1000000000) << us;
    EXPECT_EQ(proto.nanos() % 1000, 0) << us;
    auto back = FromProto(proto, "t");
    ASSERT_TRUE(back.ok()) << us << ": " << back.status();
    EXPECT_EQ(*back, t) << us;
    EXPECT_EQ(absl::ToUnixMicros(*back), us);
  }
}

TEST(TimestampToProto, SubMicrosecondTruncatedTowardsPast) {
  google::protobuf::Timestamp proto;
  ToProto(absl::FromUnixMicros(42) + absl::Nanoseconds(999), &proto);
  EXPECT_EQ(proto.seconds(), 0);
  EXPECT_EQ(proto.nanos(), 42000);
}

// --- JobSpec -----------------------------------------------------------------

TEST(JobSpecFromProto, CopiesFields) {
  v1::JobSpec spec;
  spec.set_queue("emails");
  spec.set_payload(std::string("p\0ay", 4));
  spec.set_priority(-7);
  spec.set_max_attempts(3);
  spec.set_idempotency_key("key-1");
  (*spec.mutable_headers())["zeta"] = "z";
  (*spec.mutable_headers())["alpha"] = "a";
  (*spec.mutable_headers())["mid"] = "";
  auto in = FromProto(spec, "job");
  ASSERT_TRUE(in.ok()) << in.status();
  EXPECT_EQ(in->queue, "emails");
  EXPECT_EQ(in->payload, std::string("p\0ay", 4));
  EXPECT_EQ(in->priority, -7);
  EXPECT_EQ(in->max_attempts, 3);
  EXPECT_EQ(in->idempotency_key, "key-1");
  // Headers come out in name order.
  EXPECT_THAT(in->headers, ElementsAre(Pair("alpha", "a"), Pair("mid", ""),
                                       Pair("zeta", "z")));
  EXPECT_FALSE(in->delay.has_value());
  EXPECT_FALSE(in->run_at.has_value());
}

TEST(JobSpecFromProto, DelayPresence) {
  v1::JobSpec spec;
  spec.set_queue("q");
  // A zero delay that is set is still present.
  spec.mutable_delay();
  auto zero = FromProto(spec, "job");
  ASSERT_TRUE(zero.ok());
  ASSERT_TRUE(zero->delay.has_value());
  EXPECT_EQ(*zero->delay, absl::ZeroDuration());
  EXPECT_FALSE(zero->run_at.has_value());

  *spec.mutable_delay() = Dur(90, 500000000);
  auto in = FromProto(spec, "job");
  ASSERT_TRUE(in.ok());
  ASSERT_TRUE(in->delay.has_value());
  EXPECT_EQ(*in->delay, absl::Milliseconds(90500));
  EXPECT_FALSE(in->run_at.has_value());
}

TEST(JobSpecFromProto, RunAtPresence) {
  v1::JobSpec spec;
  spec.set_queue("q");
  *spec.mutable_run_at() = Ts(1700000000, 5000);
  auto in = FromProto(spec, "job");
  ASSERT_TRUE(in.ok());
  ASSERT_TRUE(in->run_at.has_value());
  EXPECT_EQ(*in->run_at,
            absl::FromUnixSeconds(1700000000) + absl::Microseconds(5));
  EXPECT_FALSE(in->delay.has_value());
  // The epoch itself is a present run_at, not "unset".
  *spec.mutable_run_at() = Ts(0, 0);
  auto epoch = FromProto(spec, "job");
  ASSERT_TRUE(epoch.ok());
  ASSERT_TRUE(epoch->run_at.has_value());
  EXPECT_EQ(*epoch->run_at, absl::UnixEpoch());
}

TEST(JobSpecFromProto, BothPresentAreBothPassedOnForValidation) {
  v1::JobSpec spec;
  spec.set_queue("q");
  *spec.mutable_delay() = Dur(1, 0);
  *spec.mutable_run_at() = Ts(1700000000, 0);
  auto in = FromProto(spec, "job");
  ASSERT_TRUE(in.ok());
  EXPECT_TRUE(in->delay.has_value());
  EXPECT_TRUE(in->run_at.has_value());
  // Validation then rejects the pair.
  absl::Status s = core::ValidateJob(*in, core::Limits(),
                                     absl::FromUnixSeconds(1700000000), "job");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(JobSpecFromProto, InvalidDelayNamesTheField) {
  v1::JobSpec spec;
  spec.set_queue("q");
  *spec.mutable_delay() = Dur(1, -1);
  ExpectInvalidField(FromProto(spec, "jobs[3]").status(), "jobs[3].delay");
}

TEST(JobSpecFromProto, InvalidRunAtNamesTheField) {
  v1::JobSpec spec;
  spec.set_queue("q");
  *spec.mutable_run_at() = Ts(0, -1);
  ExpectInvalidField(FromProto(spec, "jobs[7]").status(), "jobs[7].run_at");
}

// --- LeaseRequest / NackRequest ----------------------------------------------

TEST(LeaseRequestFromProto, CopiesFieldsAndPresence) {
  v1::LeaseRequest req;
  req.set_queue("q");
  req.set_max_jobs(17);
  req.set_worker_id("w-1");
  auto unset = FromProto(req);
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->queue, "q");
  EXPECT_EQ(unset->max_jobs, 17);
  EXPECT_EQ(unset->worker_id, "w-1");
  EXPECT_FALSE(unset->wait.has_value());
  EXPECT_FALSE(unset->visibility_timeout.has_value());

  *req.mutable_wait() = Dur(20, 0);
  *req.mutable_visibility_timeout() = Dur(0, 0);
  auto set = FromProto(req);
  ASSERT_TRUE(set.ok());
  ASSERT_TRUE(set->wait.has_value());
  EXPECT_EQ(*set->wait, absl::Seconds(20));
  ASSERT_TRUE(set->visibility_timeout.has_value());
  EXPECT_EQ(*set->visibility_timeout, absl::ZeroDuration());
}

TEST(LeaseRequestFromProto, InvalidDurationsNameTheField) {
  v1::LeaseRequest req;
  req.set_queue("q");
  *req.mutable_wait() = Dur(1, -5);
  ExpectInvalidField(FromProto(req).status(), "wait");
  req.clear_wait();
  *req.mutable_visibility_timeout() = Dur(0, 1000000000);
  ExpectInvalidField(FromProto(req).status(), "visibility_timeout");
}

TEST(NackRequestFromProto, CopiesFieldsAndPresence) {
  v1::NackRequest req;
  req.set_job_id("42");
  req.set_lease_id("123e4567-e89b-12d3-a456-426614174000");
  req.set_error("boom");
  req.set_dead_letter(true);
  auto unset = FromProto(req);
  ASSERT_TRUE(unset.ok());
  EXPECT_EQ(unset->job_id, "42");
  EXPECT_EQ(unset->lease_id, "123e4567-e89b-12d3-a456-426614174000");
  EXPECT_EQ(unset->error, "boom");
  EXPECT_TRUE(unset->dead_letter);
  EXPECT_FALSE(unset->retry_delay.has_value());

  *req.mutable_retry_delay() = Dur(0, 0);
  auto zero = FromProto(req);
  ASSERT_TRUE(zero.ok());
  ASSERT_TRUE(zero->retry_delay.has_value());
  EXPECT_EQ(*zero->retry_delay, absl::ZeroDuration());

  *req.mutable_retry_delay() = Dur(-1, 1);
  ExpectInvalidField(FromProto(req).status(), "retry_delay");
}

// --- Store rows to wire ------------------------------------------------------

TEST(JobStateToProto, NumbersMatch) {
  EXPECT_EQ(ToProto(store::JobState::kScheduled), v1::JOB_STATE_SCHEDULED);
  EXPECT_EQ(ToProto(store::JobState::kReady), v1::JOB_STATE_READY);
  EXPECT_EQ(ToProto(store::JobState::kLeased), v1::JOB_STATE_LEASED);
  EXPECT_EQ(ToProto(store::JobState::kSucceeded), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(ToProto(store::JobState::kDead), v1::JOB_STATE_DEAD);
  EXPECT_EQ(ToProto(store::JobState::kCancelled), v1::JOB_STATE_CANCELLED);
}

TEST(LeasedJobToProto, CopiesEveryField) {
  store::LeasedJob job;
  job.job_id = 9007199254740993;  // Above 2^53: must survive as a string.
  job.lease_id = "123e4567-e89b-12d3-a456-426614174000";
  job.queue = "q";
  job.payload = std::string("\x00\xff", 2);
  job.headers = {{"a", "1"}, {"b", "2"}};
  job.priority = 5;
  job.attempt = 2;
  job.max_attempts = 20;
  job.enqueued_at = absl::FromUnixMicros(1700000000000001);
  job.lease_expires_at = absl::FromUnixMicros(1700000030000002);
  v1::LeasedJob out;
  ToProto(job, &out);
  EXPECT_EQ(out.job_id(), "9007199254740993");
  EXPECT_EQ(out.lease_id(), job.lease_id);
  EXPECT_EQ(out.queue(), "q");
  EXPECT_EQ(out.payload(), job.payload);
  EXPECT_EQ(out.headers().size(), 2u);
  EXPECT_EQ(out.headers().at("a"), "1");
  EXPECT_EQ(out.headers().at("b"), "2");
  EXPECT_EQ(out.priority(), 5);
  EXPECT_EQ(out.attempt(), 2);
  EXPECT_EQ(out.max_attempts(), 20);
  EXPECT_EQ(out.enqueued_at().seconds(), 1700000000);
  EXPECT_EQ(out.enqueued_at().nanos(), 1000);
  EXPECT_EQ(out.lease_expires_at().seconds(), 1700000030);
  EXPECT_EQ(out.lease_expires_at().nanos(), 2000);
}

TEST(JobToProto, CopiesEveryFieldAndOptionalTimes) {
  store::Job job;
  job.job_id = 42;
  job.queue = "q";
  job.state = store::JobState::kDead;
  job.priority = -3;
  job.attempt = 20;
  job.max_attempts = 20;
  job.payload = "p";
  job.headers = {{"h", "v"}};
  job.idempotency_key = "k";
  job.enqueued_at = absl::FromUnixSeconds(100);
  job.run_at = absl::FromUnixSeconds(200);
  job.finished_at = absl::FromUnixSeconds(300);
  job.last_error = "lease expired";
  job.result = "r";
  job.worker_id = "w";
  v1::Job out;
  ToProto(job, &out);
  EXPECT_EQ(out.job_id(), "42");
  EXPECT_EQ(out.queue(), "q");
  EXPECT_EQ(out.state(), v1::JOB_STATE_DEAD);
  EXPECT_EQ(out.priority(), -3);
  EXPECT_EQ(out.attempt(), 20);
  EXPECT_EQ(out.max_attempts(), 20);
  EXPECT_EQ(out.payload(), "p");
  EXPECT_EQ(out.headers().at("h"), "v");
  EXPECT_EQ(out.idempotency_key(), "k");
  EXPECT_EQ(out.enqueued_at().seconds(), 100);
  EXPECT_EQ(out.run_at().seconds(), 200);
  EXPECT_FALSE(out.has_lease_expires_at());
  ASSERT_TRUE(out.has_finished_at());
  EXPECT_EQ(out.finished_at().seconds(), 300);
  EXPECT_EQ(out.last_error(), "lease expired");
  EXPECT_EQ(out.result(), "r");
  EXPECT_EQ(out.worker_id(), "w");

  job.finished_at.reset();
  job.lease_expires_at = absl::FromUnixSeconds(400);
  v1::Job leased;
  ToProto(job, &leased);
  EXPECT_FALSE(leased.has_finished_at());
  ASSERT_TRUE(leased.has_lease_expires_at());
  EXPECT_EQ(leased.lease_expires_at().seconds(), 400);
}

}  // namespace
}  // namespace spool::api
