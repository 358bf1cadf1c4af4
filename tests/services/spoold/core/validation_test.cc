// Unit tests for core/validation: every request rule returns INVALID_ARGUMENT
// with a message naming the offending field, and the boundaries are exact.
#include "core/validation.h"

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "core/limits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

const absl::Time kNow = absl::FromUnixSeconds(1700000000);

JobInput ValidJob() {
  JobInput job;
  job.queue = "emails";
  job.payload = "hello";
  return job;
}

LeaseInput ValidLease() {
  LeaseInput lease;
  lease.queue = "emails";
  return lease;
}

// Asserts INVALID_ARGUMENT whose message starts with the field path.
void ExpectInvalid(const absl::Status& s, const std::string& field) {
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(std::string(s.message()), StartsWith(field + " ")) << s;
}

// --- ValidateQueueName -----------------------------------------------------

TEST(ValidateQueueName, AcceptsTypicalNames) {
  for (const char* name :
       {"a", "Z", "7", "emails", "orders.v2", "a-b_c.d", "0queue", "A1_.-"}) {
    EXPECT_TRUE(ValidateQueueName(name, "queue").ok()) << name;
  }
}

TEST(ValidateQueueName, EmptyIsRequired) {
  absl::Status s = ValidateQueueName("", "queue");
  ExpectInvalid(s, "queue");
  EXPECT_THAT(std::string(s.message()), HasSubstr("required"));
}

TEST(ValidateQueueName, LengthLimitIs128) {
  EXPECT_TRUE(ValidateQueueName(std::string(128, 'q'), "queue").ok());
  absl::Status s = ValidateQueueName(std::string(129, 'q'), "queue");
  ExpectInvalid(s, "queue");
  EXPECT_THAT(std::string(s.message()), HasSubstr("128"));
}

TEST(ValidateQueueName, MustStartWithLetterOrDigit) {
  for (const char* name : {"-a", "_a", ".a", " a"}) {
    ExpectInvalid(ValidateQueueName(name, "queue"), "queue");
  }
}

TEST(ValidateQueueName, RejectsCharactersOutsideTheClass) {
  for (const char* name :
       {"a b", "a/b", "a:b", "a*", "a@b", "a\tb", "a,b", "a+b"}) {
    ExpectInvalid(ValidateQueueName(name, "queue"), "queue");
  }
  ExpectInvalid(ValidateQueueName(std::string("a\0b", 3), "queue"), "queue");
}

TEST(ValidateQueueName, RejectsUnicode) {
  ExpectInvalid(ValidateQueueName("caf\xC3\xA9", "queue"), "queue");  // café
  ExpectInvalid(ValidateQueueName("\xC3\xA9t\xC3\xA9", "queue"), "queue");
  ExpectInvalid(ValidateQueueName("\xE2\x80\x8B"
                                  "a",
                                  "queue"),
                "queue");
}

TEST(ValidateQueueName, UsesTheGivenFieldName) {
  ExpectInvalid(ValidateQueueName("-x", "jobs[2].queue"), "jobs[2].queue");
}

// --- ValidateJob -----------------------------------------------------------

TEST(ValidateJob, AcceptsMinimalJob) {
  EXPECT_TRUE(ValidateJob(ValidJob(), Limits(), kNow, "job").ok());
}

TEST(ValidateJob, QueueErrorNamesNestedField) {
  JobInput job = ValidJob();
  job.queue = "";
  ExpectInvalid(ValidateJob(job, Limits(), kNow, "jobs[3]"), "jobs[3].queue");
}

TEST(ValidateJob, EmptyPrefixGivesBareFieldNames) {
  JobInput job = ValidJob();
  job.priority = 101;
  ExpectInvalid(ValidateJob(job, Limits(), kNow, ""), "priority");
}

TEST(ValidateJob, PriorityBoundsInclusive) {
  for (int32_t p : {-100, -1, 0, 1, 100}) {
    JobInput job = ValidJob();
    job.priority = p;
    EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "jobs[3]").ok()) << p;
  }
  for (int32_t p : {101, -101, INT32_MAX, INT32_MIN}) {
    JobInput job = ValidJob();
    job.priority = p;
    absl::Status s = ValidateJob(job, Limits(), kNow, "jobs[3]");
    ExpectInvalid(s, "jobs[3].priority");
    EXPECT_THAT(std::string(s.message()), HasSubstr("-100"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("100"));
    EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat(p)));
  }
}

TEST(ValidateJob, PayloadLimit) {
  Limits limits;
  JobInput job = ValidJob();
  job.payload = std::string(limits.max_payload_bytes, 'x');
  EXPECT_TRUE(ValidateJob(job, limits, kNow, "job").ok());
  job.payload += 'x';
  absl::Status s = ValidateJob(job, limits, kNow, "job");
  ExpectInvalid(s, "job.payload");
  EXPECT_THAT(std::string(s.message()),
              HasSubstr(absl::StrCat(limits.max_payload_bytes)));
}

TEST(ValidateJob, PayloadLimitFollowsConfiguredLimit) {
  Limits limits;
  limits.max_payload_bytes = 10;
  JobInput job = ValidJob();
  job.payload = std::string(10, 'x');
  EXPECT_TRUE(ValidateJob(job, limits, kNow, "job").ok());
  job.payload = std::string(11, 'x');
  ExpectInvalid(ValidateJob(job, limits, kNow, "job"), "job.payload");
}

TEST(ValidateJob, DelayAndRunAtAreExclusive) {
  JobInput job = ValidJob();
  job.delay = absl::Seconds(5);
  job.run_at = kNow + absl::Seconds(5);
  absl::Status s = ValidateJob(job, Limits(), kNow, "jobs[0]");
  ExpectInvalid(s, "jobs[0].delay");
  EXPECT_THAT(std::string(s.message()), HasSubstr("run_at"));
}

TEST(ValidateJob, DelayAndRunAtBothZeroStillExclusive) {
  JobInput job = ValidJob();
  job.delay = absl::ZeroDuration();
  job.run_at = kNow;
  ExpectInvalid(ValidateJob(job, Limits(), kNow, "job"), "job.delay");
}

TEST(ValidateJob, DelayBounds) {
  const absl::Duration kMax = absl::Hours(24 * 366);
  for (absl::Duration d : {absl::ZeroDuration(), absl::Seconds(1), kMax}) {
    JobInput job = ValidJob();
    job.delay = d;
    EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "job").ok()) << d;
  }
  for (absl::Duration d : {kMax + absl::Nanoseconds(1), kMax + absl::Seconds(1),
                           absl::Hours(24 * 367), absl::InfiniteDuration()}) {
    JobInput job = ValidJob();
    job.delay = d;
    absl::Status s = ValidateJob(job, Limits(), kNow, "job");
    ExpectInvalid(s, "job.delay");
    EXPECT_THAT(std::string(s.message()), HasSubstr("at most"));
  }
}

TEST(ValidateJob, NegativeDelayRejected) {
  JobInput job = ValidJob();
  job.delay = -absl::Seconds(1);
  absl::Status s = ValidateJob(job, Limits(), kNow, "job");
  ExpectInvalid(s, "job.delay");
  EXPECT_THAT(std::string(s.message()), HasSubstr("negative"));
}

TEST(ValidateJob, RunAtWithin366DaysEitherWayAccepted) {
  const absl::Duration kMax = absl::Hours(24 * 366);
  for (absl::Time t : {kNow, kNow + kMax, kNow - kMax, kNow + absl::Hours(1),
                       kNow - absl::Hours(1)}) {
    JobInput job = ValidJob();
    job.run_at = t;
    EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "job").ok())
        << absl::FormatTime(t);
  }
}

TEST(ValidateJob, RunAtTooFarAheadRejected) {
  JobInput job = ValidJob();
  job.run_at = kNow + absl::Hours(24 * 366) + absl::Microseconds(1);
  absl::Status s = ValidateJob(job, Limits(), kNow, "jobs[1]");
  ExpectInvalid(s, "jobs[1].run_at");
  EXPECT_THAT(std::string(s.message()), HasSubstr("ahead"));
}

TEST(ValidateJob, RunAtTooFarInThePastRejected) {
  JobInput job = ValidJob();
  job.run_at = kNow - absl::Hours(24 * 366) - absl::Microseconds(1);
  absl::Status s = ValidateJob(job, Limits(), kNow, "jobs[1]");
  ExpectInvalid(s, "jobs[1].run_at");
  EXPECT_THAT(std::string(s.message()), HasSubstr("past"));
}

TEST(ValidateJob, MaxAttempts) {
  for (int32_t n : {0, 1, 20, INT32_MAX}) {
    JobInput job = ValidJob();
    job.max_attempts = n;
    EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "job").ok()) << n;
  }
  for (int32_t n : {-1, INT32_MIN}) {
    JobInput job = ValidJob();
    job.max_attempts = n;
    absl::Status s = ValidateJob(job, Limits(), kNow, "job");
    ExpectInvalid(s, "job.max_attempts");
    EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat(n)));
  }
}

TEST(ValidateJob, IdempotencyKeyLimits) {
  Limits limits;
  JobInput job = ValidJob();
  job.idempotency_key = std::string(limits.max_idempotency_key_bytes, 'k');
  EXPECT_TRUE(ValidateJob(job, limits, kNow, "job").ok());
  job.idempotency_key += 'k';
  ExpectInvalid(ValidateJob(job, limits, kNow, "job"), "job.idempotency_key");
  job.idempotency_key = std::string("a\0b", 3);
  ExpectInvalid(ValidateJob(job, limits, kNow, "job"), "job.idempotency_key");
}

TEST(ValidateJob, SixtyFourHeadersOkSixtyFiveRejected) {
  JobInput job = ValidJob();
  for (int i = 0; i < 64; ++i) {
    job.headers.emplace_back(absl::StrCat("h", i), "v");
  }
  EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "jobs[3]").ok());
  job.headers.emplace_back("h64", "v");
  absl::Status s = ValidateJob(job, Limits(), kNow, "jobs[3]");
  ExpectInvalid(s, "jobs[3].headers");
  EXPECT_THAT(std::string(s.message()), HasSubstr("64"));
}

TEST(ValidateJob, HeaderBytesLimitCountsNamesAndValues) {
  JobInput job = ValidJob();
  // 8 KiB exactly: name 1 byte + value 8191 bytes.
  job.headers = {{"a", std::string(8191, 'v')}};
  EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "job").ok());
  job.headers = {{"a", std::string(8192, 'v')}};
  absl::Status s = ValidateJob(job, Limits(), kNow, "job");
  ExpectInvalid(s, "job.headers");
  EXPECT_THAT(std::string(s.message()), HasSubstr("8192"));
  // Spread over several headers.
  job.headers = {{"a", std::string(4000, 'v')},
                 {"b", std::string(4000, 'v')},
                 {std::string(191, 'c'), ""}};  // 8193 total.
  ExpectInvalid(ValidateJob(job, Limits(), kNow, "job"), "job.headers");
}

TEST(ValidateJob, NulInHeaderNameOrValueRejected) {
  JobInput job = ValidJob();
  job.headers = {{std::string("a\0b", 3), "v"}};
  ExpectInvalid(ValidateJob(job, Limits(), kNow, "jobs[3]"), "jobs[3].headers");
  job.headers = {{"name", std::string("v\0", 2)}};
  absl::Status s = ValidateJob(job, Limits(), kNow, "jobs[3]");
  ExpectInvalid(s, "jobs[3].headers");
  EXPECT_THAT(std::string(s.message()), HasSubstr("NUL"));
}

TEST(ValidateJob, EmptyHeaderNameRejected) {
  JobInput job = ValidJob();
  job.headers = {{"", "v"}};
  ExpectInvalid(ValidateJob(job, Limits(), kNow, "job"), "job.headers");
}

TEST(ValidateJob, AcceptsFullyPopulatedJob) {
  JobInput job = ValidJob();
  job.priority = -100;
  job.run_at = kNow + absl::Hours(2);
  job.max_attempts = 5;
  job.idempotency_key = "order-42";
  job.headers = {{"content-type", "application/json"}, {"trace", "abc"}};
  EXPECT_TRUE(ValidateJob(job, Limits(), kNow, "job").ok());
}

// --- ValidateLease / ValidateVisibilityTimeout -------------------------------

TEST(ValidateLease, AcceptsDefaults) {
  EXPECT_TRUE(ValidateLease(ValidLease(), Limits()).ok());
}

TEST(ValidateLease, QueueNameChecked) {
  LeaseInput lease = ValidLease();
  lease.queue = "bad queue";
  ExpectInvalid(ValidateLease(lease, Limits()), "queue");
}

TEST(ValidateLease, MaxJobsBounds) {
  for (int32_t n : {0, 1, 100, 256}) {
    LeaseInput lease = ValidLease();
    lease.max_jobs = n;
    EXPECT_TRUE(ValidateLease(lease, Limits()).ok()) << n;
  }
  for (int32_t n : {257, -1, INT32_MAX, INT32_MIN}) {
    LeaseInput lease = ValidLease();
    lease.max_jobs = n;
    absl::Status s = ValidateLease(lease, Limits());
    ExpectInvalid(s, "max_jobs");
    EXPECT_THAT(std::string(s.message()), HasSubstr("256"));
    EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat(n)));
  }
}

TEST(ValidateLease, NegativeWaitRejectedZeroOk) {
  LeaseInput lease = ValidLease();
  lease.wait = absl::ZeroDuration();
  EXPECT_TRUE(ValidateLease(lease, Limits()).ok());
  lease.wait = absl::Seconds(30);
  EXPECT_TRUE(ValidateLease(lease, Limits()).ok());
  lease.wait = -absl::Milliseconds(1);
  ExpectInvalid(ValidateLease(lease, Limits()), "wait");
}

TEST(ValidateLease, VisibilityTimeoutChecked) {
  LeaseInput lease = ValidLease();
  lease.visibility_timeout = absl::Seconds(1);
  EXPECT_TRUE(ValidateLease(lease, Limits()).ok());
  lease.visibility_timeout = absl::Milliseconds(999);
  absl::Status s = ValidateLease(lease, Limits());
  ExpectInvalid(s, "visibility_timeout");
  lease.visibility_timeout = absl::Hours(12) + absl::Seconds(1);
  ExpectInvalid(ValidateLease(lease, Limits()), "visibility_timeout");
}

TEST(ValidateLease, WorkerIdLimits) {
  Limits limits;
  LeaseInput lease = ValidLease();
  lease.worker_id = std::string(limits.max_worker_id_bytes, 'w');
  EXPECT_TRUE(ValidateLease(lease, limits).ok());
  lease.worker_id += 'w';
  ExpectInvalid(ValidateLease(lease, limits), "worker_id");
  lease.worker_id = std::string("w\0", 2);
  ExpectInvalid(ValidateLease(lease, limits), "worker_id");
}

TEST(ValidateVisibilityTimeout, Bounds) {
  Limits limits;
  EXPECT_TRUE(ValidateVisibilityTimeout(absl::Seconds(1), limits, "vt").ok());
  EXPECT_TRUE(ValidateVisibilityTimeout(absl::Seconds(30), limits, "vt").ok());
  EXPECT_TRUE(ValidateVisibilityTimeout(absl::Hours(12), limits, "vt").ok());
  for (absl::Duration d :
       {absl::Milliseconds(999), absl::ZeroDuration(), -absl::Seconds(1),
        absl::Hours(12) + absl::Seconds(1),
        absl::Hours(12) + absl::Nanoseconds(1), absl::InfiniteDuration()}) {
    absl::Status s = ValidateVisibilityTimeout(d, limits, "visibility_timeout");
    ExpectInvalid(s, "visibility_timeout");
    EXPECT_THAT(std::string(s.message()), HasSubstr("1s"));
    EXPECT_THAT(std::string(s.message()), HasSubstr("12h"));
  }
}

TEST(ValidateVisibilityTimeout, NamesTheGivenField) {
  absl::Status s = ValidateVisibilityTimeout(absl::Milliseconds(999), Limits(),
                                             "extend.visibility_timeout");
  ExpectInvalid(s, "extend.visibility_timeout");
  EXPECT_THAT(std::string(s.message()), HasSubstr("999ms"));
}

// --- ParseJobId --------------------------------------------------------------

TEST(ParseJobId, AcceptsPositiveDecimal) {
  auto id = ParseJobId("42", "job_id");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, 42);
  auto one = ParseJobId("1", "job_id");
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(*one, 1);
  auto max = ParseJobId("9223372036854775807", "job_id");
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(*max, INT64_MAX);
}

TEST(ParseJobId, RejectsMalformed) {
  for (const char* id :
       {"", "abc", "-1", "0", "12x", "12345678901234567890", "+5", " 42", "42 ",
        "4 2", "0x10", "1e3", "9223372036854775808", "-0", "00"}) {
    auto parsed = ParseJobId(id, "completions[4].job_id");
    EXPECT_FALSE(parsed.ok()) << "\"" << id << "\" parsed as " << *parsed;
    ExpectInvalid(parsed.status(), "completions[4].job_id");
  }
}

TEST(ParseJobId, RejectsEmbeddedNul) {
  auto parsed = ParseJobId(absl::string_view("42\0", 3), "job_id");
  EXPECT_FALSE(parsed.ok());
  ExpectInvalid(parsed.status(), "job_id");
}

TEST(ParseJobId, MessageQuotesATruncatedId) {
  std::string long_id(500, 'z');
  auto parsed = ParseJobId(long_id, "job_id");
  ASSERT_FALSE(parsed.ok());
  EXPECT_THAT(std::string(parsed.status().message()),
              HasSubstr(std::string(64, 'z')));
  EXPECT_THAT(std::string(parsed.status().message()),
              ::testing::Not(HasSubstr(std::string(65, 'z'))));
}

// --- ValidateLeaseId ---------------------------------------------------------

TEST(ValidateLeaseId, AcceptsCanonicalUuids) {
  EXPECT_TRUE(
      ValidateLeaseId("123e4567-e89b-12d3-a456-426614174000", "lease_id").ok());
  EXPECT_TRUE(
      ValidateLeaseId("ABCDEF01-2345-6789-ABCD-EF0123456789", "lease_id").ok());
  EXPECT_TRUE(
      ValidateLeaseId("00000000-0000-0000-0000-000000000000", "lease_id").ok());
}

TEST(ValidateLeaseId, EmptyIsRequired) {
  absl::Status s = ValidateLeaseId("", "lease_id");
  ExpectInvalid(s, "lease_id");
  EXPECT_THAT(std::string(s.message()), HasSubstr("required"));
}

TEST(ValidateLeaseId, RejectsMalformed) {
  for (const char* id : {
           "123e4567e89b12d3a456426614174000",        // No hyphens.
           "{123e4567-e89b-12d3-a456-426614174000}",  // Braces.
           "123e4567-e89b-12d3-a456-42661417400",     // 35 chars.
           "123e4567-e89b-12d3-a456-4266141740000",   // 37 chars.
           "123e4567-e89b-12d3-a456_426614174000",    // Wrong separator.
           "123e4567-e89b-12d3-a4566-26614174000",    // Hyphen misplaced.
           "g23e4567-e89b-12d3-a456-426614174000",    // Not hex.
           "123e4567-e89b-12d3-a456-42661417400 ",    // Trailing space.
           "not-a-lease",
       }) {
    ExpectInvalid(ValidateLeaseId(id, "acks[1].lease_id"), "acks[1].lease_id");
  }
}

// --- SanitizeErrorText -------------------------------------------------------

TEST(SanitizeErrorText, ShortTextUnchanged) {
  EXPECT_EQ(SanitizeErrorText("boom", 100), "boom");
  EXPECT_EQ(SanitizeErrorText("", 100), "");
  EXPECT_EQ(SanitizeErrorText("caf\xC3\xA9", 100), "caf\xC3\xA9");
}

TEST(SanitizeErrorText, StripsNul) {
  EXPECT_EQ(SanitizeErrorText(absl::string_view("a\0b\0\0c", 6), 100), "abc");
  EXPECT_EQ(SanitizeErrorText(absl::string_view("\0", 1), 100), "");
}

TEST(SanitizeErrorText, ExactlyAtLimitUnchanged) {
  std::string text(100, 'x');
  EXPECT_EQ(SanitizeErrorText(text, 100), text);
}

TEST(SanitizeErrorText, NulBytesDoNotCountTowardsTheLimit) {
  std::string text(100, 'x');
  text.insert(50, std::string(10, '\0'));
  EXPECT_EQ(SanitizeErrorText(text, 100), std::string(100, 'x'));
}

TEST(SanitizeErrorText, TruncatesWithMarker) {
  const std::string kMarker = "\xE2\x80\xA6[truncated]";  // "…[truncated]"
  std::string out = SanitizeErrorText(std::string(101, 'x'), 100);
  EXPECT_EQ(out.size(), 100u);
  EXPECT_EQ(out, std::string(100 - kMarker.size(), 'x') + kMarker);
}

TEST(SanitizeErrorText, TruncatesOnUtf8Boundary) {
  const std::string kMarker = "\xE2\x80\xA6[truncated]";
  // 40 three-byte characters (U+20AC, "€") = 120 bytes.
  std::string euro = "\xE2\x82\xAC";
  std::string text;
  for (int i = 0; i < 40; ++i) text += euro;
  for (int limit = kMarker.size(); limit <= 119; ++limit) {
    std::string out = SanitizeErrorText(text, limit);
    ASSERT_LE(out.size(), static_cast<size_t>(limit)) << limit;
    ASSERT_TRUE(out.ends_with(kMarker)) << limit;
    std::string kept = out.substr(0, out.size() - kMarker.size());
    // Only whole characters kept, as many as fit.
    EXPECT_EQ(kept.size() % 3, 0u) << limit;
    EXPECT_EQ(kept.size(), (limit - kMarker.size()) / 3 * 3) << limit;
    EXPECT_EQ(kept, text.substr(0, kept.size())) << limit;
  }
}

TEST(SanitizeErrorText, FourByteCharactersNotSplit) {
  const std::string kMarker = "\xE2\x80\xA6[truncated]";
  std::string text = "ab";
  for (int i = 0; i < 10; ++i) text += "\xF0\x9F\x98\x80";  // U+1F600.
  // Room for "ab" plus 1.5 emoji before the marker.
  std::string out = SanitizeErrorText(text, kMarker.size() + 2 + 6);
  EXPECT_EQ(out, "ab\xF0\x9F\x98\x80" + kMarker);
}

TEST(SanitizeErrorText, SizeNeverAboveLimit) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += (i % 3 == 0) ? "\xC3\xA9" : "z";
  text += std::string("\0\0", 2);
  for (int limit = 0; limit <= 420; ++limit) {
    std::string out = SanitizeErrorText(text, limit);
    EXPECT_LE(out.size(), static_cast<size_t>(limit)) << limit;
    EXPECT_EQ(out.find('\0'), std::string::npos) << limit;
  }
}

TEST(SanitizeErrorText, LimitSmallerThanMarkerCutsWithoutMarker) {
  EXPECT_EQ(SanitizeErrorText("hello world", 5), "hello");
  EXPECT_EQ(SanitizeErrorText("hello world", 0), "");
  // "é" is two bytes: three bytes hold one of them.
  EXPECT_EQ(SanitizeErrorText("\xC3\xA9\xC3\xA9", 3), "\xC3\xA9");
  EXPECT_EQ(SanitizeErrorText("\xC3\xA9", 1), "");
}

TEST(SanitizeErrorText, DefaultLimitIs16KiB) {
  Limits limits;
  std::string out =
      SanitizeErrorText(std::string(100000, 'e'), limits.max_error_bytes);
  EXPECT_EQ(out.size(), 16u * 1024u);
  EXPECT_TRUE(out.ends_with("[truncated]"));
}

}  // namespace
}  // namespace spool::core
