// Crash points inside the table's write paths, for the crash tests: a test
// process arms one point and the table raises SIGKILL on itself when it
// reaches it. Disarmed (the default) a hook is one relaxed load of a global
// and a predictable branch.
#ifndef SHMKIT_TABLE_INTERNAL_TEST_HOOKS_H_
#define SHMKIT_TABLE_INTERNAL_TEST_HOOKS_H_

#include <atomic>
#include <cstdint>

#include "absl/base/attributes.h"

namespace shmkit::internal {

enum class CrashPoint : int {
  kNone = 0,
  // A writer (table_core.h, "Writes").
  kLockedBeforeRecord,    // holds the bucket lock, nothing recorded
  kRecordedBeforeWrite,   // record live (slot pinned), nothing changed
  kMidRowWrite,           // update: seq odd, row half written
  kWrittenBeforeSeqEven,  // update: row fully written, seq still odd
  kAfterSeqEvenPinned,    // any change published, record still live
  kAfterSingleStore,      // a one-word change stored, lock still held
  kClaimedBeforeFill,     // insert: row claimed (state = slot), not written
  kAllocatedBeforeLink,   // insert: row written, not linked
  kLinkedBeforeSeqEven,   // insert: linked, seq odd
  kLinkedBeforeLive,      // insert: linked, seq even, state still in flight
  kMarkedBeforeUnlink,    // delete: state in flight, still linked
  kUnlinkedBeforeFree,    // delete: unlinked, not freed
  kFreedBeforeHint,       // delete: state free, hint bit not yet set
  kFullBeforeFlag,        // insert: scanned, no row free, flag not yet set
  // A recoverer (table_core.h, "Recovery"), holding the dead writer's bucket.
  kRecoveryStarted,       // took the lock over, nothing repaired
  kRecoveryRestored,      // update: image copied back, seq still odd
  kRecoveryFreed,         // insert or delete: row freed, hint not yet set
  kRecoveryBeforeRetire,  // everything repaired, dead record still live
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

// The armed point was reached: counts the hit down, CrashNow() at zero. Out
// of line, so the disarmed hook below stays a load and a branch wherever it
// is inlined.
void ArmedPointReached();

ABSL_ATTRIBUTE_ALWAYS_INLINE inline void MaybeCrash(CrashPoint point) {
  if (armed_crash_point.load(std::memory_order_relaxed) ==
      static_cast<int>(point)) [[unlikely]] {
    ArmedPointReached();
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
