// The retry backoff, spool_backoff_us() (migrations/0002), against real
// PostgreSQL: exponential growth from the queue's initial delay, the cap
// (which holds even with jitter), the ±jitter bounds, no overflow for huge
// attempt numbers, and defaults that match the queue table's.
#include <climits>
#include <cmath>
#include <memory>
#include <pqxx/pqxx>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "store/migrator.h"
#include "store/pg_codec.h"
#include "store/session.h"
#include "store/types.h"
#include "tests/support/test_postgres.h"

namespace spool::store {
namespace {

// Delays are built from doubles and truncated to microseconds.
constexpr double kTolerance = 1.01e-6;

QueueConfig DefaultQueue() {
  QueueConfig q;  // 1 s initial, factor 2, cap 1 h, jitter 0.2.
  return q;
}

QueueConfig NoJitterQueue() {
  QueueConfig q;
  q.backoff_jitter = 0.0;
  return q;
}

double Secs(absl::Duration d) { return absl::ToDoubleSeconds(d); }

// One database for the whole file: the function is pure.
class Db {
 public:
  static Db& Get() {
    static Db* db = new Db;
    return *db;
  }
  pqxx::connection& conn() { return *conn_; }

 private:
  Db() {
    auto url = testing::SharedPostgres()->CreateDatabase();
    EXPECT_TRUE(url.ok()) << url.status();
    EXPECT_TRUE(ApplyMigrations(*url).ok());
    conn_ = std::make_unique<pqxx::connection>(*url);
    conn_->prepare("backoff",
                   "SELECT spool_backoff_us($1 * interval '1 microsecond', $2,"
                   " $3 * interval '1 microsecond', $4, $5, $6)");
  }
  std::unique_ptr<pqxx::connection> conn_;
};

absl::Duration RetryBackoff(const QueueConfig& q, int attempt, double unit) {
  pqxx::nontransaction tx(Db::Get().conn());
  pqxx::row r = tx.exec_prepared1("backoff", ToMicros(q.backoff_initial),
                                  q.backoff_factor, ToMicros(q.backoff_max),
                                  q.backoff_jitter, attempt, unit);
  return absl::Microseconds(r[0].as<int64_t>());
}

const double kAlmostOne = std::nextafter(1.0, 0.0);

TEST(RetryBackoff, DefaultsMatchTheSpecAndTheQueueTable) {
  QueueConfig q;
  EXPECT_EQ(q.backoff_initial, absl::Seconds(1));
  EXPECT_EQ(q.backoff_factor, 2.0);
  EXPECT_EQ(q.backoff_max, absl::Hours(1));
  EXPECT_EQ(q.backoff_jitter, 0.2);
  pqxx::nontransaction tx(Db::Get().conn());
  pqxx::row r = tx.exec1(
      "INSERT INTO spool_queues (name) VALUES ('defaults') RETURNING "
      "(extract(epoch FROM backoff_initial) * 1000000)::bigint, "
      "backoff_factor, (extract(epoch FROM backoff_max) * 1000000)::bigint, "
      "backoff_jitter");
  EXPECT_EQ(absl::Microseconds(r[0].as<int64_t>()), q.backoff_initial);
  EXPECT_EQ(r[1].as<double>(), q.backoff_factor);
  EXPECT_EQ(absl::Microseconds(r[2].as<int64_t>()), q.backoff_max);
  EXPECT_EQ(r[3].as<double>(), q.backoff_jitter);
}

TEST(RetryBackoff, FirstAttemptGivesInitialDelay) {
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), 1, 0.5)), 1.0, kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(NoJitterQueue(), 1, 0.0)), 1.0, kTolerance);
  QueueConfig q = NoJitterQueue();
  q.backoff_initial = absl::Milliseconds(250);
  EXPECT_NEAR(Secs(RetryBackoff(q, 1, 0.9)), 0.25, kTolerance);
}

TEST(RetryBackoff, AttemptZeroOrNegativeTreatedAsFirst) {
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), 0, 0.5)), 1.0, kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), -5, 0.5)), 1.0, kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), INT_MIN, 0.5)), 1.0,
              kTolerance);
}

TEST(RetryBackoff, DoublesEachAttempt) {
  const double expected[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048};
  for (int attempt = 1; attempt <= 12; ++attempt) {
    EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), attempt, 0.5)),
                expected[attempt - 1], kTolerance)
        << attempt;
  }
}

TEST(RetryBackoff, UsesTheQueueFactor) {
  QueueConfig q = NoJitterQueue();
  q.backoff_initial = absl::Seconds(2);
  q.backoff_factor = 3.0;
  EXPECT_NEAR(Secs(RetryBackoff(q, 1, 0.5)), 2.0, kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(q, 2, 0.5)), 6.0, kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(q, 3, 0.5)), 18.0, kTolerance);
  q.backoff_factor = 1.0;  // Constant backoff.
  EXPECT_NEAR(Secs(RetryBackoff(q, 50, 0.5)), 2.0, kTolerance);
}

TEST(RetryBackoff, CappedAtBackoffMax) {
  // 2^12 = 4096 s > 3600 s.
  EXPECT_EQ(RetryBackoff(DefaultQueue(), 13, 0.5), absl::Hours(1));
  EXPECT_EQ(RetryBackoff(DefaultQueue(), 20, 0.5), absl::Hours(1));
  EXPECT_EQ(RetryBackoff(NoJitterQueue(), 13, 0.0), absl::Hours(1));
}

TEST(RetryBackoff, CapHoldsWithJitterAtAnyAttempt) {
  for (int attempt = 1; attempt <= 40; ++attempt) {
    for (double r : {0.0, 0.25, 0.5, 0.75, 0.99, kAlmostOne}) {
      absl::Duration d = RetryBackoff(DefaultQueue(), attempt, r);
      EXPECT_LE(d, absl::Hours(1)) << attempt << " " << r;
      EXPECT_GT(d, absl::ZeroDuration()) << attempt << " " << r;
    }
  }
}

TEST(RetryBackoff, JitterAtCapSpreadsBelowIt) {
  // At the cap, a low sample gives 80 % of it; a high one stays at the cap.
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), 30, 0.0)), 0.8 * 3600,
              kTolerance);
  EXPECT_EQ(RetryBackoff(DefaultQueue(), 30, kAlmostOne), absl::Hours(1));
}

TEST(RetryBackoff, CapBelowInitialWins) {
  QueueConfig q = NoJitterQueue();
  q.backoff_initial = absl::Seconds(10);
  q.backoff_max = absl::Seconds(3);
  EXPECT_EQ(RetryBackoff(q, 1, 0.5), absl::Seconds(3));
}

TEST(RetryBackoff, JitterBoundsPlusMinusTwentyPercent) {
  // Attempt 3: 4 s un-jittered.
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), 3, 0.0)), 3.2, kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), 3, 0.5)), 4.0, kTolerance);
  double high = Secs(RetryBackoff(DefaultQueue(), 3, kAlmostOne));
  EXPECT_NEAR(high, 4.8, kTolerance);
  EXPECT_LE(high, 4.8 + kTolerance);
  EXPECT_NEAR(Secs(RetryBackoff(DefaultQueue(), 3, 0.75)), 4.4, kTolerance);
}

TEST(RetryBackoff, JitterWithinBoundsForManySamples) {
  for (int attempt = 1; attempt <= 11; ++attempt) {
    const double base = std::pow(2.0, attempt - 1);
    double prev = 0;
    for (int i = 0; i < 200; ++i) {
      const double r = i / 200.0;
      const double s = Secs(RetryBackoff(DefaultQueue(), attempt, r));
      EXPECT_GE(s, base * 0.8 - kTolerance) << attempt << " " << r;
      EXPECT_LE(s, base * 1.2 + kTolerance) << attempt << " " << r;
      EXPECT_GE(s, prev - kTolerance) << "not monotonic in the sample";
      prev = s;
    }
  }
}

TEST(RetryBackoff, ZeroJitterIgnoresSample) {
  for (double r : {0.0, 0.3, kAlmostOne}) {
    EXPECT_NEAR(Secs(RetryBackoff(NoJitterQueue(), 4, r)), 8.0, kTolerance);
  }
}

TEST(RetryBackoff, ExcessiveJitterClampedBelowOne) {
  // A jitter of 1.0 or more would allow zero or negative delays; it is
  // clamped to 0.99, so the delay stays positive.
  QueueConfig q = DefaultQueue();
  q.backoff_jitter = 5.0;
  EXPECT_NEAR(Secs(RetryBackoff(q, 1, 0.0)), 0.01, kTolerance);
  q.backoff_jitter = -1.0;  // Negative: no jitter.
  EXPECT_NEAR(Secs(RetryBackoff(q, 1, 0.0)), 1.0, kTolerance);
}

TEST(RetryBackoff, HugeAttemptNumbersDoNotOverflow) {
  for (int attempt : {64, 100, 1000, 1025, 100000, INT_MAX - 1, INT_MAX}) {
    EXPECT_EQ(RetryBackoff(DefaultQueue(), attempt, 0.5), absl::Hours(1))
        << attempt;
    EXPECT_EQ(RetryBackoff(NoJitterQueue(), attempt, 0.0), absl::Hours(1))
        << attempt;
    absl::Duration low = RetryBackoff(DefaultQueue(), attempt, 0.0);
    EXPECT_NEAR(Secs(low), 0.8 * 3600, kTolerance) << attempt;
  }
}

TEST(RetryBackoff, ZeroInitialOrCapMeansNoDelay) {
  QueueConfig q = DefaultQueue();
  q.backoff_initial = absl::ZeroDuration();
  EXPECT_EQ(RetryBackoff(q, 1, 0.9), absl::ZeroDuration());
  EXPECT_EQ(RetryBackoff(q, INT_MAX, 0.9), absl::ZeroDuration());
  q = DefaultQueue();
  q.backoff_max = absl::ZeroDuration();
  EXPECT_EQ(RetryBackoff(q, 5, 0.9), absl::ZeroDuration());
}

TEST(RetryBackoff, LongCapNotTruncated) {
  QueueConfig q = NoJitterQueue();
  q.backoff_max = absl::Hours(24 * 366);
  EXPECT_EQ(RetryBackoff(q, INT_MAX, 0.5), absl::Hours(24 * 366));
  EXPECT_NEAR(Secs(RetryBackoff(q, 21, 0.5)), std::pow(2.0, 20), kTolerance);
}

}  // namespace
}  // namespace spool::store
