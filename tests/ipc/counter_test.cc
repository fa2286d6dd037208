#include <sched.h>
#include <sys/shm.h>

#include <limits>
#include <memory>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/sem_counter.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::UniqueKey;

constexpr int64_t kMax = kCounterMax;
constexpr int64_t kMin = kCounterMin;

// The same tests for both implementations, through the Counter interface.
template <typename T>
class CounterTest : public ::testing::Test {
 protected:
  std::unique_ptr<Counter> Make(int64_t initial = 0) {
    absl::StatusOr<T> c = T::Create({.initial_value = initial});
    EXPECT_TRUE(c.ok()) << c.status();
    return std::make_unique<T>(*std::move(c));
  }
};
using CounterTypes = ::testing::Types<AtomicCounter, SemCounter>;
TYPED_TEST_SUITE(CounterTest, CounterTypes);

TYPED_TEST(CounterTest, AddSubGetSet) {
  std::unique_ptr<Counter> c = this->Make(5);
  EXPECT_EQ(*c->Get(), 5);
  EXPECT_EQ(*c->Add(10), 15);
  EXPECT_EQ(*c->Sub(20), -5);
  ASSERT_TRUE(c->Set(42).ok());
  EXPECT_EQ(*c->Get(), 42);
}

// A moved-from counter answers every call with FailedPrecondition (it
// used to follow a pointer into the segment that moved away); the moved-to
// one, constructed or assigned, is the counter.
TYPED_TEST(CounterTest, AMovedFromCounterRefusesEveryCall) {
  absl::StatusOr<TypeParam> made = TypeParam::Create({.initial_value = 3});
  ASSERT_TRUE(made.ok()) << made.status();
  TypeParam a = *std::move(made);
  TypeParam b = std::move(a);
  const auto moved_from = [](TypeParam& c) {
    EXPECT_THAT(c.Add(1), StatusIsWith(absl::StatusCode::kFailedPrecondition,
                                       "moved from"));
    EXPECT_THAT(c.Get(), StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c.Set(1), StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c.CompareAndSet(3, 4),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c.WaitUntil([](int64_t) { return true; }, absl::Seconds(1)),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c.Wake(), StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(c.Remove(), StatusIs(absl::StatusCode::kFailedPrecondition));
  };
  moved_from(a);  // NOLINT(bugprone-use-after-move)
  absl::StatusOr<int64_t> added = b.Add(1);
  ASSERT_TRUE(added.ok()) << added.status();
  EXPECT_EQ(*added, 4);
  a = std::move(b);
  moved_from(b);  // NOLINT(bugprone-use-after-move)
  absl::StatusOr<int64_t> value = a.Get();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, 4);
}

TYPED_TEST(CounterTest, InitialValueOutsideTheRangeIsRefused) {
  EXPECT_THAT(TypeParam::Create({.initial_value = kCounterMax + 1}),
              StatusIsWith(absl::StatusCode::kOutOfRange, "initial value"));
}

TYPED_TEST(CounterTest, CompareAndSet) {
  std::unique_ptr<Counter> c = this->Make(1);
  EXPECT_FALSE(*c->CompareAndSet(2, 3));
  EXPECT_EQ(*c->Get(), 1);
  EXPECT_TRUE(*c->CompareAndSet(1, 3));
  EXPECT_EQ(*c->Get(), 3);
}

TYPED_TEST(CounterTest, LeavingTheRangeIsOutOfRangeAndChangesNothing) {
  std::unique_ptr<Counter> c = this->Make(kMax - 1);
  EXPECT_EQ(*c->Add(1), kMax);
  EXPECT_THAT(c->Add(1), StatusIsWith(absl::StatusCode::kOutOfRange,
                                      "outside the counter range"));
  EXPECT_EQ(*c->Get(), kMax);
  EXPECT_THAT(c->Add(std::numeric_limits<int64_t>::max()),
              StatusIs(absl::StatusCode::kOutOfRange));  // checked path
  EXPECT_EQ(*c->Get(), kMax);
  ASSERT_TRUE(c->Set(kMin).ok());
  EXPECT_THAT(c->Sub(1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*c->Get(), kMin);
  EXPECT_THAT(c->Sub(std::numeric_limits<int64_t>::min()),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(c->Set(kMax + 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(c->CompareAndSet(kMin, kMin - 1),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*c->Get(), kMin);
  ASSERT_TRUE(c->Set(0).ok());
  // Large deltas far from the limits take the checked path and still work.
  EXPECT_EQ(*c->Add(int64_t{1} << 40), int64_t{1} << 40);
  EXPECT_EQ(*c->Add(-(int64_t{1} << 41)), -(int64_t{1} << 40));
}

TYPED_TEST(CounterTest, WaitUntilTimesOut) {
  std::unique_ptr<Counter> c = this->Make();
  const absl::Time start = absl::Now();
  EXPECT_THAT(c->WaitUntilAtLeast(1, absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  // Already satisfied: returns at once.
  EXPECT_EQ(*c->WaitUntilAtLeast(0, absl::ZeroDuration()), 0);
}

TYPED_TEST(CounterTest, WaitUntilIsWokenByAdd) {
  std::unique_ptr<Counter> c = this->Make();
  std::thread adder([&] {
    for (int i = 0; i < 10; ++i) {
      absl::SleepFor(absl::Milliseconds(5));
      ASSERT_TRUE(c->Add(1).ok());
    }
  });
  absl::StatusOr<int64_t> v = c->WaitUntilAtLeast(10, absl::Seconds(20));
  adder.join();
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(*v, 10);
  EXPECT_EQ(*c->WaitForChange(3, absl::Seconds(1)), 10);
}

TYPED_TEST(CounterTest, WakeMakesWaitersRecheck) {
  std::unique_ptr<Counter> c = this->Make();
  std::atomic<int> checks{0};
  std::thread waiter([&] {
    EXPECT_THAT(c->WaitUntil(
                    [&](int64_t) {
                      ++checks;
                      return false;
                    },
                    absl::Seconds(3)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
  });
  // Wait for the first check, then the wake-up's re-check (the event, with
  // a bound in seconds; the waiter gives up after 3 s).
  const absl::Time deadline = absl::Now() + absl::Seconds(3);
  while (checks == 0 && absl::Now() < deadline) sched_yield();
  const int before = checks;
  ASSERT_TRUE(c->Wake().ok());
  while (checks == before && absl::Now() < deadline) sched_yield();
  EXPECT_GT(checks, before);
  waiter.join();
}

TYPED_TEST(CounterTest, KeyedCounterIsSharedByAttach) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<TypeParam> c =
      TypeParam::Create({.key = key, .initial_value = 7});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(TypeParam::Create({.key = key}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<TypeParam> a = TypeParam::Attach(key);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a->Add(1), 8);
  EXPECT_EQ(*c->Get(), 8);
  ASSERT_TRUE(c->Remove().ok());
  EXPECT_THAT(TypeParam::Attach(key), StatusIs(absl::StatusCode::kNotFound));
}

TEST(CounterKinds, AttachingTheWrongKindIsRefused) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<AtomicCounter> c = AtomicCounter::Create({.key = key});
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(SemCounter::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "holds kind atomic-counter (2), not sem-counter"));
  ASSERT_TRUE(c->Remove().ok());
}

TEST(CounterKinds, AttachingANonShmkitSegmentIsRefused) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 4096, .key = key});
  ASSERT_TRUE(s.ok());
  std::memset(s->data(), 0x11, 64);
  EXPECT_THAT(AtomicCounter::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "not a shmkit object"));
  ASSERT_TRUE(s->Remove().ok());
}

TEST(CounterKinds, AttachingAnUnpublishedObjectTimesOut) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 4096, .key = key});
  ASSERT_TRUE(s.ok());  // zero-filled: looks like a creator still at work
  EXPECT_THAT(
      AtomicCounter::Attach(key, {.init_timeout = absl::Milliseconds(20)}),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "never published"));
  ASSERT_TRUE(s->Remove().ok());
}

TEST(SemCounter, AMovedFromCounterCannotBeLocked) {
  absl::StatusOr<SemCounter> a = SemCounter::Create();
  ASSERT_TRUE(a.ok()) << a.status();
  SemCounter b = *std::move(a);
  EXPECT_THAT(a->Lock(), StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(a->LockFor(absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(a->dead_holders(), 0u);
  EXPECT_EQ(a->last_dead_holder(), 0);
  absl::StatusOr<SemCounter::Holder> h = b.Lock();
  ASSERT_TRUE(h.ok()) << h.status();
}

TEST(SemCounter, HolderSeesACleanPredecessor) {
  absl::StatusOr<SemCounter> c = SemCounter::Create({});
  ASSERT_TRUE(c.ok()) << c.status();
  {
    absl::StatusOr<SemCounter::Holder> h = c->Lock();
    ASSERT_TRUE(h.ok());
    EXPECT_FALSE(h->previous_holder_died());
    h->set_value(9);
    EXPECT_THAT(c->LockFor(absl::Milliseconds(20)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
  }
  EXPECT_EQ(*c->Get(), 9);
  EXPECT_EQ(c->dead_holders(), 0u);
}

}  // namespace
}  // namespace shmkit
