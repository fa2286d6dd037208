// The counter conformance suite: what ipc/counter.h promises, through the
// Counter interface, over the shared-memory counters and the Redis one.
#include <atomic>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "redis_test_env.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/sem_counter.h"
#include "shmkit/redis/redis_counter.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::SharedRedis;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::UniqueName;

struct Atomic {
  static constexpr const char* kName = "atomic";
  static absl::StatusOr<std::unique_ptr<Counter>> Make(int64_t initial) {
    absl::StatusOr<AtomicCounter> c = AtomicCounter::Create({.initial_value = initial});
    if (!c.ok()) return c.status();
    return std::unique_ptr<Counter>(new AtomicCounter(*std::move(c)));
  }
};
struct Sem {
  static constexpr const char* kName = "sem";
  static absl::StatusOr<std::unique_ptr<Counter>> Make(int64_t initial) {
    absl::StatusOr<SemCounter> c = SemCounter::Create({.initial_value = initial});
    if (!c.ok()) return c.status();
    return std::unique_ptr<Counter>(new SemCounter(*std::move(c)));
  }
};
struct Redis {
  static constexpr const char* kName = "redis";
  static absl::StatusOr<std::unique_ptr<Counter>> Make(int64_t initial) {
    absl::StatusOr<RedisCounter> c =
        RedisCounter::Open(SharedRedis().url(), UniqueName("counter"),
                           {.initial_value = initial});
    if (!c.ok()) return c.status();
    return std::unique_ptr<Counter>(new RedisCounter(*std::move(c)));
  }
};
struct Names {
  template <typename T>
  static std::string GetName(int) {
    return T::kName;
  }
};

template <typename T>
class CounterConformance : public ::testing::Test {
 protected:
  std::unique_ptr<Counter> Make(int64_t initial = 0) {
    absl::StatusOr<std::unique_ptr<Counter>> c = T::Make(initial);
    EXPECT_TRUE(c.ok()) << c.status();
    if (!c.ok()) std::abort();
    return *std::move(c);
  }
};
using Types = ::testing::Types<Atomic, Sem, Redis>;
TYPED_TEST_SUITE(CounterConformance, Types, Names);

TYPED_TEST(CounterConformance, AddSubGetSetCompareAndSet) {
  std::unique_ptr<Counter> c = this->Make(5);
  EXPECT_EQ(*c->Get(), 5);
  EXPECT_EQ(*c->Add(10), 15);
  EXPECT_EQ(*c->Sub(20), -5);
  ASSERT_TRUE(c->Set(42).ok());
  EXPECT_EQ(*c->Get(), 42);
  EXPECT_FALSE(*c->CompareAndSet(41, 1));
  EXPECT_EQ(*c->Get(), 42);
  EXPECT_TRUE(*c->CompareAndSet(42, 1));
  EXPECT_EQ(*c->Get(), 1);
}

TYPED_TEST(CounterConformance, RangeIsEnforcedAndNothingChanges) {
  EXPECT_THAT(TypeParam::Make(kCounterMax + 1),
              StatusIsWith(absl::StatusCode::kOutOfRange, "initial value"));
  std::unique_ptr<Counter> c = this->Make(kCounterMax - 1);
  EXPECT_EQ(*c->Add(1), kCounterMax);
  EXPECT_THAT(c->Add(1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(c->Add(std::numeric_limits<int64_t>::max()),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*c->Get(), kCounterMax);
  ASSERT_TRUE(c->Set(kCounterMin).ok());
  EXPECT_THAT(c->Sub(1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(c->Sub(std::numeric_limits<int64_t>::min()),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(c->Set(kCounterMax + 1), StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_THAT(c->CompareAndSet(kCounterMin, kCounterMin - 1),
              StatusIs(absl::StatusCode::kOutOfRange));
  EXPECT_EQ(*c->Get(), kCounterMin);
  // The full width of the range, exactly (beyond 2^53, where a double
  // would round).
  ASSERT_TRUE(c->Set(0).ok());
  EXPECT_EQ(*c->Add(kCounterMax), kCounterMax);
  EXPECT_EQ(*c->Add(-1), kCounterMax - 1);
  EXPECT_EQ(*c->Add(std::numeric_limits<int64_t>::min() + 3),
            kCounterMax - 1 + std::numeric_limits<int64_t>::min() + 3);
}

TYPED_TEST(CounterConformance, WaitUntilTimesOut) {
  std::unique_ptr<Counter> c = this->Make();
  const absl::Time start = absl::Now();
  EXPECT_THAT(c->WaitUntilAtLeast(1, absl::Milliseconds(50)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(45));
  EXPECT_EQ(*c->WaitUntilAtLeast(0, absl::ZeroDuration()), 0);
}

TYPED_TEST(CounterConformance, WaitUntilIsWokenByAdd) {
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
}

TYPED_TEST(CounterConformance, WakeMakesWaitersRecheck) {
  std::unique_ptr<Counter> c = this->Make();
  std::atomic<int> checks{0};
  std::thread waiter([&] {
    EXPECT_THAT(c->WaitUntil(
                    [&](int64_t) {
                      ++checks;
                      return false;
                    },
                    absl::Seconds(5)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
  });
  // The waiter is registered before its first look, so a Wake after that
  // look makes it look again.
  const absl::Time start = absl::Now();
  while (checks.load() < 1 && absl::Now() - start < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  const int first = checks.load();
  ASSERT_GE(first, 1);
  ASSERT_TRUE(c->Wake().ok());
  while (checks.load() == first && absl::Now() - start < absl::Seconds(20)) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_GT(checks.load(), first);
  ASSERT_TRUE(c->Set(5).ok());  // not what it waits for: it times out
  waiter.join();
}

TYPED_TEST(CounterConformance, FourProcessesExactTotal) {
  std::unique_ptr<Counter> c = this->Make();
  constexpr int kProcs = 4, kEach = 500;
  std::vector<pid_t> kids;
  for (int p = 0; p < kProcs; ++p) {
    kids.push_back(ForkChild([&] {
      for (int i = 0; i < kEach; ++i) {
        if (!c->Add(1).ok()) return 1;
      }
      return 0;
    }));
  }
  for (pid_t k : kids) EXPECT_TRUE(ExitedWith(k, 0));
  EXPECT_EQ(*c->Get(), kProcs * kEach);
}

TYPED_TEST(CounterConformance, WaiterInAnotherProcessIsWoken) {
  std::unique_ptr<Counter> c = this->Make();
  SyncPipe ready;
  const pid_t child = ForkChild([&] {
    ready.Signal();
    absl::StatusOr<int64_t> v = c->WaitUntilAtLeast(3, absl::Seconds(30));
    return v.ok() && *v == 3 ? 0 : 1;
  });
  ASSERT_TRUE(ready.Wait().has_value());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(c->Add(1).ok());
  EXPECT_TRUE(ExitedWith(child, 0));
}

}  // namespace
}  // namespace shmkit
