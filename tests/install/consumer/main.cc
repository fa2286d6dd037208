// Uses the installed headers and libraries the way an application would.
#include <cstdio>

#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/lock_arena.h"

int main() {
  absl::StatusOr<shmkit::AtomicCounter> counter =
      shmkit::AtomicCounter::Create();
  if (!counter.ok()) {
    std::fprintf(stderr, "%s\n", counter.status().ToString().c_str());
    return 1;
  }
  absl::StatusOr<int64_t> v = counter->Add(41);
  absl::StatusOr<shmkit::LockArena> arena = shmkit::LockArena::Create({});
  if (!v.ok() || *v != 41 || !arena.ok() ||
      !arena->Acquire(0, absl::Seconds(1)).ok()) {
    return 2;
  }
  std::printf("consumer ok\n");
  return 0;
}
