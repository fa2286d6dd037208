// Event, in one process: semantics of each notification kind, timeouts,
// attach checks. (The layout golden is in layout_golden_test.cc.)
#include "shmkit/ipc/event.h"

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/atomic_counter.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::UniqueKey;

TEST(Event, WaitForTimesOutWhenNothingIsPending) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok()) << ev.status();
  const absl::Time t0 = absl::Now();
  EXPECT_THAT(ev->WaitFor(absl::Milliseconds(50)),
              StatusIsWith(absl::StatusCode::kDeadlineExceeded, "50ms"));
  const absl::Duration took = absl::Now() - t0;
  EXPECT_GE(took, absl::Milliseconds(50));
  EXPECT_LT(took, absl::Seconds(2));
  EXPECT_THAT(ev->WaitFor(absl::ZeroDuration()),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  EXPECT_THAT(ev->WaitFor(-absl::Seconds(1)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
}

TEST(Event, NotifyOneCountsAndIsTakenOnceEach) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  EXPECT_THAT(ev->TryWait(), StatusIs(absl::StatusCode::kUnavailable));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  EXPECT_EQ(ev->Stats().pending_permits, 3u);
  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<NotifyMode> got = ev->WaitFor(absl::Seconds(1));
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, NotifyMode::kOne);
  }
  EXPECT_THAT(ev->TryWait(), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(ev->Stats().notify_one_calls, 3u);
  EXPECT_EQ(ev->Stats().pending_permits, 0u);
}

TEST(Event, BroadcastsCoalescePerHandleAndReachEveryHandle) {
  absl::StatusOr<Event> a = Event::Create();
  ASSERT_TRUE(a.ok());
  absl::StatusOr<Event> b = Event::AttachId(a->segment().id());
  ASSERT_TRUE(b.ok()) << b.status();
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(a->Notify(NotifyMode::kAll).ok());
  for (Event* ev : {&*a, &*b}) {
    absl::StatusOr<NotifyMode> got = ev->TryWait();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(*got, NotifyMode::kAll);
    // Three missed broadcasts are one pending notification, like a signal.
    EXPECT_THAT(ev->TryWait(), StatusIs(absl::StatusCode::kUnavailable));
  }
  EXPECT_EQ(a->Stats().broadcasts, 3u);
}

TEST(Event, AHandleAttachedLaterHasSeenEarlierBroadcasts) {
  absl::StatusOr<Event> a = Event::Create();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(a->Notify(NotifyMode::kAll).ok());
  absl::StatusOr<Event> late = Event::AttachId(a->segment().id());
  ASSERT_TRUE(late.ok());
  EXPECT_THAT(late->TryWait(), StatusIs(absl::StatusCode::kUnavailable));
  ASSERT_TRUE(a->Notify(NotifyMode::kAll).ok());
  EXPECT_TRUE(late->TryWait().ok());
}

TEST(Event, PendingBroadcastIsTakenBeforeAPermit) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  ASSERT_TRUE(ev->Notify(NotifyMode::kAll).ok());
  EXPECT_EQ(*ev->TryWait(), NotifyMode::kAll);
  EXPECT_EQ(*ev->TryWait(), NotifyMode::kOne);
  EXPECT_THAT(ev->TryWait(), StatusIs(absl::StatusCode::kUnavailable));
}

TEST(Event, ASleepingThreadIsWokenByANotify) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  absl::StatusOr<NotifyMode> got = absl::UnknownError("not run");
  std::atomic<pid_t> tid{0};
  std::thread waiter([&] {
    tid = gettid();
    got = ev->Wait();
  });
  while (tid.load() == 0) sched_yield();
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(tid.load()));
  ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  waiter.join();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, NotifyMode::kOne);
}

TEST(Event, KeyedEventIsAttachableAndRemovable) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<Event> ev = Event::Create({.key = key});
  ASSERT_TRUE(ev.ok()) << ev.status();
  EXPECT_THAT(Event::Create({.key = key}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<Event> other = Event::Attach(key);
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE(ev->Notify(NotifyMode::kOne).ok());
  EXPECT_EQ(*other->TryWait(), NotifyMode::kOne);
  ASSERT_TRUE(ev->Remove().ok());
  EXPECT_THAT(Event::Attach(key), StatusIs(absl::StatusCode::kNotFound));
}

TEST(Event, AttachRefusesASegmentOfAnotherKind) {
  absl::StatusOr<AtomicCounter> counter = AtomicCounter::Create();
  ASSERT_TRUE(counter.ok());
  EXPECT_THAT(Event::AttachId(counter->segment().id()),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "event"));
}

TEST(Event, MovedEventKeepsItsCursor) {
  absl::StatusOr<Event> ev = Event::Create();
  ASSERT_TRUE(ev.ok());
  ASSERT_TRUE(ev->Notify(NotifyMode::kAll).ok());
  ASSERT_TRUE(ev->TryWait().ok());
  Event moved = *std::move(ev);
  EXPECT_THAT(moved.TryWait(), StatusIs(absl::StatusCode::kUnavailable));
}

}  // namespace
}  // namespace shmkit
