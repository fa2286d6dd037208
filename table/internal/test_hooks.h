// Crash points inside the table's write paths, for the crash tests: a test
// process arms one point and the table raises SIGKILL on itself when it
// reaches it. Disarmed (the default) a hook is one relaxed load of a global
// and a predictable branch.
#ifndef SHMKIT_TABLE_INTERNAL_TEST_HOOKS_H_
#define SHMKIT_TABLE_INTERNAL_TEST_HOOKS_H_

#include <atomic>
#include <cstdint>

namespace shmkit::internal {

enum class CrashPoint : int {
  kNone = 0,
  kLockedBeforeRecord,     // holds the bucket lock, nothing recorded
  kRecordedBeforeWrite,    // undo image saved and pinned, seq still even
  kMidRowWrite,            // seq odd, row half written
  kWrittenBeforeSeqEven,   // row fully written, seq still odd
  kAfterSeqEvenPinned,     // change published, record still pinned
  kShardLockedBeforePop,   // insert: holds the free shard lock
  kRowClaimedBeforePop,    // insert: row state set, shard head not moved
  kAllocatedBeforeLink,    // insert: row allocated and filled, not linked
  kLinkedBeforeSeqEven,    // insert: linked, seq odd
  kUnlinkedBeforeFree,     // delete: unlinked, not yet in a free shard
  kFreePushedBeforeState,  // delete: pushed on the shard, state not cleared
  kCount
};

enum class CrashAction : int { kKill = 0, kStop = 1 };

inline std::atomic<int> armed_crash_point{0};
inline std::atomic<int> armed_crash_action{0};
// Hits of the armed point to let pass before acting.
inline std::atomic<int64_t> crash_countdown{0};

// SIGKILL (or, for kStop, SIGSTOP) to the calling process. A stopped process
// continues after SIGCONT; the point is disarmed by then.
void CrashNow();

inline void MaybeCrash(CrashPoint point) {
  if (armed_crash_point.load(std::memory_order_relaxed) ==
      static_cast<int>(point)) [[unlikely]] {
    if (crash_countdown.fetch_sub(1, std::memory_order_relaxed) <= 0) {
      CrashNow();
    }
  }
}

// Arms `point`: the (skip + 1)-th time a write reaches it, the process
// SIGKILLs itself (or stops itself, for kStop).
inline void ArmCrashPoint(CrashPoint point, int64_t skip = 0,
                          CrashAction action = CrashAction::kKill) {
  crash_countdown.store(skip, std::memory_order_relaxed);
  armed_crash_action.store(static_cast<int>(action), std::memory_order_relaxed);
  armed_crash_point.store(static_cast<int>(point), std::memory_order_relaxed);
}

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_TEST_HOOKS_H_
