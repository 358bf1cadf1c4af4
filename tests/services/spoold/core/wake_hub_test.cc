// Unit tests for core/wake_hub: the lost-wake-up (generation) rule, waking
// just enough waiters oldest first, per-queue fallback wake-ups, shutdown.
#include "core/wake_hub.h"

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace spool::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// Records the order in which waiters were woken.
class FakeWaiter : public Waiter {
 public:
  FakeWaiter(int id, int capacity, std::vector<int>* log)
      : id_(id), capacity_(capacity), log_(log) {}
  void Wake() override {
    ++wakes_;
    if (log_ != nullptr) log_->push_back(id_);
  }
  int Capacity() const override { return capacity_; }
  int wakes() const { return wakes_; }
  int id() const { return id_; }

 private:
  int id_;
  int capacity_;
  std::vector<int>* log_;
  int wakes_ = 0;
};

std::shared_ptr<FakeWaiter> Make(int id, int capacity,
                                 std::vector<int>* log = nullptr) {
  return std::make_shared<FakeWaiter>(id, capacity, log);
}

TEST(WakeHub, NewQueueStartsAtGenerationZero) {
  WakeHub hub;
  EXPECT_EQ(hub.Generation("q"), 0u);
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, RegisterWithCurrentGenerationSucceeds) {
  WakeHub hub;
  auto w = Make(1, 1);
  EXPECT_TRUE(hub.Register("q", hub.Generation("q"), w));
  EXPECT_EQ(hub.WaitingCount(), 1);
  EXPECT_EQ(w->wakes(), 0);
}

TEST(WakeHub, NotifyBumpsGenerationAndRefusesStaleRegister) {
  WakeHub hub;
  const uint64_t seen = hub.Generation("q");
  // A job arrives between the waiter's query and its registration.
  hub.Notify("q", 1);
  EXPECT_EQ(hub.Generation("q"), seen + 1);
  auto w = Make(1, 1);
  EXPECT_FALSE(hub.Register("q", seen, w));
  EXPECT_EQ(hub.WaitingCount(), 0);
  // A refused waiter is not registered: a later notify does not wake it.
  hub.Notify("q", 1);
  EXPECT_EQ(w->wakes(), 0);
  // It queries again with the fresh generation and registers.
  EXPECT_TRUE(hub.Register("q", hub.Generation("q"), w));
  EXPECT_EQ(hub.WaitingCount(), 1);
}

TEST(WakeHub, GenerationsArePerQueue) {
  WakeHub hub;
  const uint64_t a = hub.Generation("a");
  const uint64_t b = hub.Generation("b");
  hub.Notify("a", 3);
  EXPECT_EQ(hub.Generation("a"), a + 1);
  EXPECT_EQ(hub.Generation("b"), b);
  EXPECT_TRUE(hub.Register("b", b, Make(1, 1)));
  EXPECT_FALSE(hub.Register("a", a, Make(2, 1)));
}

TEST(WakeHub, NotifyWithoutJobsIsANoOp) {
  WakeHub hub;
  std::vector<int> log;
  auto w = Make(1, 1, &log);
  ASSERT_TRUE(hub.Register("q", 0, w));
  hub.Notify("q", 0);
  hub.Notify("q", -3);
  EXPECT_THAT(log, IsEmpty());
  EXPECT_EQ(hub.WaitingCount(), 1);
  EXPECT_EQ(hub.Generation("q"), 0u);
}

TEST(WakeHub, NotifyWithNoWaitersStillBumpsGeneration) {
  WakeHub hub;
  hub.Notify("q", 5);
  EXPECT_EQ(hub.Generation("q"), 1u);
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, NotifyOneJobWakesExactlyOneWaiter) {
  WakeHub hub;
  std::vector<int> log;
  for (int i = 1; i <= 3; ++i)
    ASSERT_TRUE(hub.Register("q", 0, Make(i, 1, &log)));
  hub.Notify("q", 1);
  EXPECT_THAT(log, ElementsAre(1));
  EXPECT_EQ(hub.WaitingCount(), 2);
}

TEST(WakeHub, NotifyWakesOldestFirst) {
  WakeHub hub;
  std::vector<int> log;
  for (int i = 1; i <= 5; ++i)
    ASSERT_TRUE(hub.Register("q", 0, Make(i, 1, &log)));
  hub.Notify("q", 2);
  EXPECT_THAT(log, ElementsAre(1, 2));
  hub.Notify("q", 1);
  EXPECT_THAT(log, ElementsAre(1, 2, 3));
  hub.Notify("q", 10);
  EXPECT_THAT(log, ElementsAre(1, 2, 3, 4, 5));
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, NotifyWakesUntilCapacitiesCoverTheJobs) {
  WakeHub hub;
  std::vector<int> log;
  // Capacities 3, 2, 5, 1.
  ASSERT_TRUE(hub.Register("q", 0, Make(1, 3, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(2, 2, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(3, 5, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(4, 1, &log)));
  // 4 jobs: 3 is not enough, 3 + 2 covers it.
  hub.Notify("q", 4);
  EXPECT_THAT(log, ElementsAre(1, 2));
  EXPECT_EQ(hub.WaitingCount(), 2);
  // 5 jobs: exactly covered by waiter 3.
  hub.Notify("q", 5);
  EXPECT_THAT(log, ElementsAre(1, 2, 3));
  EXPECT_EQ(hub.WaitingCount(), 1);
}

TEST(WakeHub, OneJobWakesOneBigWaiterOnly) {
  WakeHub hub;
  std::vector<int> log;
  ASSERT_TRUE(hub.Register("q", 0, Make(1, 256, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(2, 256, &log)));
  hub.Notify("q", 1);
  EXPECT_THAT(log, ElementsAre(1));
}

TEST(WakeHub, ZeroCapacityWaitersDoNotCoverJobs) {
  WakeHub hub;
  std::vector<int> log;
  ASSERT_TRUE(hub.Register("q", 0, Make(1, 0, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(2, 0, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(3, 1, &log)));
  ASSERT_TRUE(hub.Register("q", 0, Make(4, 1, &log)));
  hub.Notify("q", 1);
  EXPECT_THAT(log, ElementsAre(1, 2, 3));
}

TEST(WakeHub, NotifyOnlyWakesItsQueue) {
  WakeHub hub;
  std::vector<int> log;
  ASSERT_TRUE(hub.Register("a", 0, Make(1, 1, &log)));
  ASSERT_TRUE(hub.Register("b", 0, Make(2, 1, &log)));
  hub.Notify("b", 1);
  EXPECT_THAT(log, ElementsAre(2));
  hub.Notify("c", 1);
  EXPECT_THAT(log, ElementsAre(2));
  EXPECT_EQ(hub.WaitingCount(), 1);
}

TEST(WakeHub, WakesEachWaiterOnce) {
  WakeHub hub;
  auto w = Make(1, 1);
  ASSERT_TRUE(hub.Register("q", 0, w));
  hub.Notify("q", 1);
  hub.Notify("q", 1);
  hub.NotifyEachQueue();
  EXPECT_EQ(w->wakes(), 1);
}

TEST(WakeHub, UnregisterRemovesTheWaiter) {
  WakeHub hub;
  std::vector<int> log;
  auto w1 = Make(1, 1, &log);
  auto w2 = Make(2, 1, &log);
  ASSERT_TRUE(hub.Register("q", 0, w1));
  ASSERT_TRUE(hub.Register("q", 0, w2));
  EXPECT_TRUE(hub.Unregister("q", w1.get()));
  EXPECT_EQ(hub.WaitingCount(), 1);
  hub.Notify("q", 1);
  EXPECT_THAT(log, ElementsAre(2));
  EXPECT_EQ(w1->wakes(), 0);
}

TEST(WakeHub, UnregisterDoesNotBumpGeneration) {
  WakeHub hub;
  auto w = Make(1, 1);
  ASSERT_TRUE(hub.Register("q", 0, w));
  ASSERT_TRUE(hub.Unregister("q", w.get()));
  EXPECT_EQ(hub.Generation("q"), 0u);
}

TEST(WakeHub, UnregisterUnknownReturnsFalse) {
  WakeHub hub;
  auto w = Make(1, 1);
  auto other = Make(2, 1);
  EXPECT_FALSE(hub.Unregister("nowhere", w.get()));
  ASSERT_TRUE(hub.Register("q", 0, w));
  EXPECT_FALSE(hub.Unregister("q", other.get()));
  EXPECT_FALSE(hub.Unregister("other", w.get()));  // Wrong queue.
  EXPECT_EQ(hub.WaitingCount(), 1);
  EXPECT_TRUE(hub.Unregister("q", w.get()));
  EXPECT_FALSE(hub.Unregister("q", w.get()));  // Already gone.
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, UnregisterAfterWakeReturnsFalse) {
  WakeHub hub;
  auto w = Make(1, 1);
  ASSERT_TRUE(hub.Register("q", 0, w));
  hub.Notify("q", 1);
  EXPECT_FALSE(hub.Unregister("q", w.get()));
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, UnregisterKeepsOrderOfTheOthers) {
  WakeHub hub;
  std::vector<int> log;
  std::vector<std::shared_ptr<FakeWaiter>> ws;
  for (int i = 1; i <= 4; ++i) {
    ws.push_back(Make(i, 1, &log));
    ASSERT_TRUE(hub.Register("q", 0, ws.back()));
  }
  ASSERT_TRUE(hub.Unregister("q", ws[1].get()));
  hub.Notify("q", 3);
  EXPECT_THAT(log, ElementsAre(1, 3, 4));
}

TEST(WakeHub, NotifyEachQueueWakesOnePerQueue) {
  WakeHub hub;
  std::vector<int> log;
  ASSERT_TRUE(hub.Register("a", 0, Make(1, 1, &log)));
  ASSERT_TRUE(hub.Register("a", 0, Make(2, 1, &log)));
  ASSERT_TRUE(hub.Register("b", 0, Make(3, 1, &log)));
  ASSERT_TRUE(hub.Register("b", 0, Make(4, 1, &log)));
  ASSERT_TRUE(hub.Register("c", 0, Make(5, 1, &log)));
  hub.NotifyEachQueue();
  // The oldest of each queue; map iteration order is unspecified.
  EXPECT_THAT(log, UnorderedElementsAre(1, 3, 5));
  EXPECT_EQ(hub.WaitingCount(), 2);
  log.clear();
  hub.NotifyEachQueue();
  EXPECT_THAT(log, UnorderedElementsAre(2, 4));
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, NotifyEachQueueBumpsEveryGeneration) {
  WakeHub hub;
  const uint64_t a = hub.Generation("a");
  const uint64_t b = hub.Generation("b");
  ASSERT_TRUE(hub.Register("a", a, Make(1, 1)));
  hub.NotifyEachQueue();
  EXPECT_EQ(hub.Generation("a"), a + 1);
  // Also the queue without waiters: a waiter mid-query there must retry.
  EXPECT_EQ(hub.Generation("b"), b + 1);
  EXPECT_FALSE(hub.Register("b", b, Make(2, 1)));
}

TEST(WakeHub, TakeAllReturnsEveryWaiterAndEmptiesTheHub) {
  WakeHub hub;
  std::vector<int> log;
  auto w1 = Make(1, 1, &log);
  auto w2 = Make(2, 1, &log);
  auto w3 = Make(3, 4, &log);
  ASSERT_TRUE(hub.Register("a", 0, w1));
  ASSERT_TRUE(hub.Register("a", 0, w2));
  ASSERT_TRUE(hub.Register("b", 0, w3));
  const uint64_t gen_a = hub.Generation("a");
  std::vector<std::shared_ptr<Waiter>> all = hub.TakeAll();
  std::vector<Waiter*> raw;
  for (const auto& w : all) raw.push_back(w.get());
  EXPECT_THAT(raw, UnorderedElementsAre(w1.get(), w2.get(), w3.get()));
  // TakeAll hands them over; it does not wake them itself.
  EXPECT_THAT(log, IsEmpty());
  EXPECT_EQ(hub.WaitingCount(), 0);
  EXPECT_GT(hub.Generation("a"), gen_a);
  hub.Notify("a", 10);
  hub.Notify("b", 10);
  EXPECT_THAT(log, IsEmpty());
  EXPECT_THAT(hub.TakeAll(), IsEmpty());
}

TEST(WakeHub, WaitingCountTracksEveryPath) {
  WakeHub hub;
  auto w1 = Make(1, 1);
  auto w2 = Make(2, 1);
  auto w3 = Make(3, 1);
  auto w4 = Make(4, 1);
  ASSERT_TRUE(hub.Register("a", 0, w1));
  ASSERT_TRUE(hub.Register("a", 0, w2));
  ASSERT_TRUE(hub.Register("b", 0, w3));
  ASSERT_TRUE(hub.Register("c", 0, w4));
  EXPECT_EQ(hub.WaitingCount(), 4);
  hub.Notify("a", 1);
  EXPECT_EQ(hub.WaitingCount(), 3);
  ASSERT_TRUE(hub.Unregister("b", w3.get()));
  EXPECT_EQ(hub.WaitingCount(), 2);
  hub.NotifyEachQueue();
  EXPECT_EQ(hub.WaitingCount(), 0);
  EXPECT_FALSE(hub.Register("a", 0, w1));  // Stale generation: not counted.
  EXPECT_EQ(hub.WaitingCount(), 0);
}

TEST(WakeHub, WakeCalledWithoutTheHubLock) {
  // A waiter that calls back into the hub from Wake() must not deadlock.
  class Reentrant : public Waiter {
   public:
    explicit Reentrant(WakeHub* hub) : hub_(hub) {}
    void Wake() override {
      count_seen = hub_->WaitingCount();
      gen_seen = hub_->Generation("q");
    }
    int Capacity() const override { return 1; }
    int64_t count_seen = -1;
    uint64_t gen_seen = 0;

   private:
    WakeHub* hub_;
  };
  WakeHub hub;
  auto w = std::make_shared<Reentrant>(&hub);
  ASSERT_TRUE(hub.Register("q", 0, w));
  hub.Notify("q", 1);
  EXPECT_EQ(w->count_seen, 0);
  EXPECT_EQ(w->gen_seen, 1u);
}

TEST(WakeHub, ConcurrentRegisterAndNotifyLoseNoWaiter) {
  // Every waiter either is refused (and would re-query) or is woken by a
  // later notify; none is left registered after a final sweep.
  WakeHub hub;
  std::atomic<int> woken{0};
  std::atomic<int> refused{0};
  class CountingWaiter : public Waiter {
   public:
    explicit CountingWaiter(std::atomic<int>* n) : n_(n) {}
    void Wake() override { n_->fetch_add(1); }
    int Capacity() const override { return 1; }

   private:
    std::atomic<int>* n_;
  };
  constexpr int kPerThread = 2000;
  std::thread registrar([&] {
    for (int i = 0; i < kPerThread; ++i) {
      uint64_t gen = hub.Generation("q");
      if (!hub.Register("q", gen, std::make_shared<CountingWaiter>(&woken))) {
        refused.fetch_add(1);
      }
    }
  });
  std::thread notifier([&] {
    for (int i = 0; i < kPerThread; ++i) hub.Notify("q", 1);
  });
  registrar.join();
  notifier.join();
  hub.Notify("q", kPerThread);
  EXPECT_EQ(hub.WaitingCount(), 0);
  EXPECT_EQ(woken.load() + refused.load(), kPerThread);
}

}  // namespace
}  // namespace spool::core
