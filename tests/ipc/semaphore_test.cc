#include "shmkit/ipc/semaphore.h"

#include <sys/sem.h>
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/kernel_limits.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::UniqueKey;

TEST(SemaphoreSet, AcquireReleaseTryAndValue) {
  absl::StatusOr<SemaphoreSet> s =
      SemaphoreSet::Create({.count = 2, .initial_values = {1, 0}});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s->Value(0), 1);
  EXPECT_EQ(*s->Value(1), 0);
  ASSERT_TRUE(s->TryAcquire(0).ok());
  EXPECT_EQ(*s->Value(0), 0);
  EXPECT_THAT(s->TryAcquire(0), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(s->Release(0).ok());
  ASSERT_TRUE(s->Acquire(0).ok());
  ASSERT_TRUE(s->Release(0).ok());
  EXPECT_EQ(*s->Value(0), 1);
  EXPECT_EQ(*s->LastPid(0), getpid());
}

TEST(SemaphoreSet, TimedAcquireTimesOut) {
  absl::StatusOr<SemaphoreSet> s = SemaphoreSet::Create({});
  ASSERT_TRUE(s.ok()) << s.status();
  const absl::Time start = absl::Now();
  EXPECT_THAT(s->AcquireFor(0, absl::Milliseconds(80)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  const absl::Duration took = absl::Now() - start;
  EXPECT_GE(took, absl::Milliseconds(70));
  EXPECT_LT(took, absl::Seconds(5));
}

TEST(SemaphoreSet, TimedAcquireGetsAReleaseFromAnotherThread) {
  absl::StatusOr<SemaphoreSet> s = SemaphoreSet::Create({});
  ASSERT_TRUE(s.ok()) << s.status();
  std::thread releaser([&] {
    absl::SleepFor(absl::Milliseconds(30));
    ASSERT_TRUE(s->Release(0).ok());
  });
  EXPECT_TRUE(s->AcquireFor(0, absl::Seconds(10)).ok());
  releaser.join();
}

TEST(SemaphoreSet, ReleaseAboveSemvmxIsAnError) {
  absl::StatusOr<SemaphoreSet> s =
      SemaphoreSet::Create({.initial_values = {kSemaphoreValueMax}});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(s->Release(0),
              StatusIsWith(absl::StatusCode::kResourceExhausted, "SEMVMX"));
  EXPECT_EQ(*s->Value(0), kSemaphoreValueMax);
}

TEST(SemaphoreSet, BadArguments) {
  EXPECT_THAT(SemaphoreSet::Create({.count = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SemaphoreSet::Create({.count = 2, .initial_values = {1, 2, 3}}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(SemaphoreSet::Create({.initial_values = {40000}}),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "40000"));
  absl::StatusOr<SemLimits> limits = ReadSemLimits();
  ASSERT_TRUE(limits.ok());
  EXPECT_THAT(
      SemaphoreSet::Create({.count = static_cast<int>(limits->semmsl) + 1}),
      StatusIsWith(absl::StatusCode::kResourceExhausted, "SEMMSL"));
  absl::StatusOr<SemaphoreSet> s = SemaphoreSet::Create({});
  ASSERT_TRUE(s.ok());
  EXPECT_THAT(s->Acquire(1),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "index 1"));
  EXPECT_THAT(s->SetValue(0, -1), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(SemaphoreSet, KeyedOpenAndRemove) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<SemaphoreSet> s =
      SemaphoreSet::Create({.key = key, .count = 3, .initial_values = {5}});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(SemaphoreSet::Create({.key = key}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<SemaphoreSet> o = SemaphoreSet::Open(key);
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->count(), 3);
  EXPECT_EQ(*o->Value(2), 5);
  EXPECT_THAT(SemaphoreSet::Open(key, {.expected_mode = 0640}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "0600"));
  ASSERT_TRUE(s->Remove().ok());
  EXPECT_THAT(SemaphoreSet::Open(key), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(o->Acquire(0), StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(SemaphoreSet, RemovedWhileWaitingIsFailedPreconditionNotAHang) {
  absl::StatusOr<SemaphoreSet> s = SemaphoreSet::Create({});
  ASSERT_TRUE(s.ok()) << s.status();
  const int id = s->id();
  absl::Status waited;
  std::atomic<pid_t> tid{0};
  std::atomic<bool> opened{false};
  std::thread waiter([&] {
    tid = gettid();
    absl::StatusOr<SemaphoreSet> o = SemaphoreSet::OpenId(id);
    ASSERT_TRUE(o.ok()) << o.status();
    opened = true;
    waited = o->Acquire(0);  // blocks: value 0
  });
  // Opened, then asleep in semop (not before it opened the set).
  while (!opened.load()) sched_yield();
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(tid.load()));
  ASSERT_TRUE(s->Remove().ok());
  waiter.join();
  EXPECT_THAT(waited,
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "removed"));
}

TEST(SemaphoreSet, AnonymousSetIsRemovedWithItsCreator) {
  int id;
  {
    absl::StatusOr<SemaphoreSet> s = SemaphoreSet::Create({});
    ASSERT_TRUE(s.ok());
    id = s->id();
    SemaphoreSet moved = std::move(*s);  // ownership moves, no removal yet
    EXPECT_TRUE(SemaphoreSet::OpenId(id).ok());
  }
  EXPECT_THAT(SemaphoreSet::OpenId(id), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace shmkit
