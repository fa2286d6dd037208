#include "shmkit/ipc/owner_lock.h"

#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/lock_arena.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;

TEST(LockWord, BitLayout) {
  EXPECT_EQ(LockWordOf({0, 0}), 1u);
  EXPECT_EQ(LockWordOf({5, 3}), (uint64_t{3} << 32) | 6);
  EXPECT_EQ(OwnerOfLockWord(0), std::nullopt);
  EXPECT_EQ(OwnerOfLockWord(LockWordOf({5, 3}) | kLockWaitersBit),
            (OwnerToken{5, 3}));
  EXPECT_EQ(kLockWaitersBit, uint64_t{1} << 31);
}

TEST(OwnerLock, LockUnlockAndOwner) {
  absl::StatusOr<LockArena> arena = LockArena::Create({.locks = 2});
  ASSERT_TRUE(arena.ok()) << arena.status();
  OwnerLock lock = *arena->lock(0);
  const OwnerToken me = *arena->Self();
  absl::StatusOr<LockResult> r = lock.Lock(me, absl::Seconds(1));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->waited);
  EXPECT_FALSE(r->took_over);
  EXPECT_EQ(lock.Owner(), me);
  EXPECT_EQ(*lock.word(), LockWordOf(me));
  EXPECT_TRUE(lock.Unlock(me).ok());
  EXPECT_EQ(*lock.word(), 0u);  // unheld means zero
  EXPECT_EQ(lock.Owner(), std::nullopt);
  EXPECT_THAT(arena->lock(2), StatusIs(absl::StatusCode::kInvalidArgument));
}

TEST(OwnerLock, AMovedFromArenaHasNoLocks) {
  absl::StatusOr<LockArena> made = LockArena::Create({.locks = 2});
  ASSERT_TRUE(made.ok()) << made.status();
  LockArena a = *std::move(made);
  LockArena b = std::move(a);
  EXPECT_EQ(a.count(), 0u);  // NOLINT(bugprone-use-after-move)
  EXPECT_THAT(a.lock(0), StatusIsWith(absl::StatusCode::kFailedPrecondition,
                                      "moved from"));
  EXPECT_THAT(a.Acquire(0, absl::Seconds(1)),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(a.Remove(), StatusIs(absl::StatusCode::kFailedPrecondition));
  {
    absl::StatusOr<OwnerLockGuard> g = b.Acquire(1, absl::Seconds(1));
    ASSERT_TRUE(g.ok()) << g.status();
  }
  a = std::move(b);
  EXPECT_EQ(a.count(), 2u);
  EXPECT_THAT(b.lock(0),  // NOLINT(bugprone-use-after-move)
              StatusIs(absl::StatusCode::kFailedPrecondition));
  absl::StatusOr<OwnerLockGuard> g = a.Acquire(0, absl::Seconds(1));
  EXPECT_TRUE(g.ok()) << g.status();
}

TEST(OwnerLock, ReacquiringIsAnErrorNotADeadlock) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  OwnerLock lock = *arena->lock(0);
  const OwnerToken me = *arena->Self();
  ASSERT_TRUE(lock.Lock(me, absl::Seconds(1)).ok());
  EXPECT_THAT(lock.Lock(me, absl::Seconds(10)),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "already held by this thread"));
  EXPECT_FALSE(lock.TryLock(me));
  EXPECT_TRUE(lock.Unlock(me).ok());
}

TEST(OwnerLock, TryLockSpinningTakesAFreeLockAndGivesUpOnAHeldOne) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  OwnerLock lock = *arena->lock(0);
  const OwnerToken me = *arena->Self();
  ASSERT_TRUE(lock.TryLockSpinning(me, 0));  // free: no pause needed
  EXPECT_EQ(lock.Owner(), me);
  // Held (here by `me`; a spinning caller does not check who holds it):
  // it gives up after its pauses and leaves the word alone.
  EXPECT_FALSE(lock.TryLockSpinning(me, 1000));
  EXPECT_EQ(*lock.word(), LockWordOf(me));
  const OwnerToken other{me.slot + 1, 1};
  EXPECT_FALSE(lock.TryLockSpinning(other, 1000));
  EXPECT_EQ(lock.Owner(), me);
  EXPECT_TRUE(lock.Unlock(me).ok());
  EXPECT_TRUE(lock.TryLockSpinning(other, 1000));
  EXPECT_EQ(lock.Owner(), other);
  EXPECT_TRUE(lock.Unlock(other).ok());
  EXPECT_EQ(*lock.word(), 0u);
}

TEST(OwnerLock, UnlockByANonOwnerChangesNothing) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  OwnerLock lock = *arena->lock(0);
  const OwnerToken me = *arena->Self();
  EXPECT_THAT(lock.Unlock(me),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "not held"));
  ASSERT_TRUE(lock.TryLock(me));
  const OwnerToken stranger{me.slot + 1, 1};
  EXPECT_THAT(lock.Unlock(stranger),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(lock.Owner(), me);
  EXPECT_TRUE(lock.Unlock(me).ok());
}

TEST(OwnerLock, LiveOwnerIsNeverOverriddenWaiterGetsDeadlineExceeded) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  std::atomic<bool> locked{false}, release{false};
  std::thread holder([&] {
    absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Seconds(1));
    ASSERT_TRUE(g.ok());
    locked = true;
    while (!release) absl::SleepFor(absl::Milliseconds(1));
  });
  while (!locked) absl::SleepFor(absl::Milliseconds(1));
  const absl::Time start = absl::Now();
  absl::StatusOr<OwnerLockGuard> g = arena->Acquire(0, absl::Milliseconds(200));
  const absl::Duration took = absl::Now() - start;
  EXPECT_THAT(g, StatusIsWith(absl::StatusCode::kDeadlineExceeded,
                              absl::StrCat("live owner pid ", getpid())));
  EXPECT_GE(took, absl::Milliseconds(190));
  EXPECT_LT(took, absl::Seconds(5));
  release = true;
  holder.join();
  absl::StatusOr<OwnerLockGuard> after = arena->Acquire(0, absl::Seconds(1));
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_FALSE(after->result().took_over);  // it was released, not taken
}

TEST(OwnerLock, DeadOwnerIsTakenOverAndTheWaiterIsTold) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  OwnerLock lock = *arena->lock(0);
  const OwnerToken me = *arena->Self();
  // A token whose generation the registry has moved past: a dead owner.
  const OwnerToken ghost{me.slot, me.generation - 1};
  *lock.word() = LockWordOf(ghost);
  absl::StatusOr<LockResult> r = lock.Lock(me, absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->took_over);
  EXPECT_TRUE(r->waited);
  EXPECT_EQ(r->dead_owner, ghost);
  EXPECT_EQ(lock.Owner(), me);
  EXPECT_TRUE(lock.Unlock(me).ok());
}

TEST(OwnerLock, DeadHolderNamesOnlyADeadOwnerStillHoldingTheLock) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  OwnerLock lock = *arena->lock(0);
  const OwnerToken me = *arena->Self();
  EXPECT_EQ(lock.DeadHolder(), std::nullopt);  // free
  ASSERT_TRUE(lock.TryLock(me));
  EXPECT_EQ(lock.DeadHolder(), std::nullopt);  // held by a live owner
  ASSERT_TRUE(lock.Unlock(me).ok());
  const OwnerToken ghost{me.slot, me.generation - 1};  // a dead owner
  *lock.word() = LockWordOf(ghost);
  EXPECT_EQ(lock.DeadHolder(), ghost);
  // A waiter sleeping on the word does not change whose lock it is.
  *lock.word() = LockWordOf(ghost) | kLockWaitersBit;
  EXPECT_EQ(lock.DeadHolder(), ghost);
  absl::StatusOr<LockResult> r = lock.Lock(me, absl::Seconds(5));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->took_over);
  EXPECT_EQ(lock.DeadHolder(), std::nullopt);  // taken over: live owner
  *lock.word() = LockWordOf(me);  // drop the waiters bit (nobody sleeps)
  EXPECT_TRUE(lock.Unlock(me).ok());
}

TEST(OwnerLock, ThreadsContendingKeepAPlainCounterExact) {
  absl::StatusOr<LockArena> arena = LockArena::Create({});
  ASSERT_TRUE(arena.ok());
  int64_t counter = 0;  // protected by lock 0
  constexpr int kThreads = 4, kIters = 20000;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      OwnerLock lock = *arena->lock(0);
      const OwnerToken me = *arena->Self();
      for (int i = 0; i < kIters; ++i) {
        absl::StatusOr<LockResult> r = lock.Lock(me, absl::Seconds(30));
        if (!r.ok() || r->took_over) {
          ++failures;
          continue;
        }
        ++counter;
        if (!lock.Unlock(me).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(counter, int64_t{kThreads} * kIters);
  EXPECT_EQ(*arena->lock(0)->word(), 0u);
}

TEST(LockArena, AttachByKeySharesTheLocks) {
  const IpcKey key = ::shmkit::testing::UniqueKey();
  absl::StatusOr<LockArena> arena = LockArena::Create({.locks = 3, .key = key});
  ASSERT_TRUE(arena.ok()) << arena.status();
  absl::StatusOr<LockArena> other = LockArena::Attach(key);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->count(), 3u);
  absl::StatusOr<OwnerLockGuard> g = arena->Acquire(1, absl::Seconds(1));
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(other->lock(1)->Owner(), *arena->Self());
  EXPECT_TRUE(arena->Remove().ok());
  EXPECT_THAT(LockArena::Create({.locks = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
}

}  // namespace
}  // namespace shmkit
