// Uses the installed headers and libraries the way an application would.
// Includes every public backend header: the install carries what they
// include, and they include no internal header it leaves out.
#include <cstdio>

#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/event.h"
#include "shmkit/ipc/lock_arena.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/fifo_queue.h"
#include "shmkit/ipc/queue/pipe_queue.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/ipc/queue/socketpair_queue.h"
#include "shmkit/ipc/queue/stream_queue.h"
#include "shmkit/ipc/queue/sysv_queue.h"
#include "shmkit/ipc/sem_counter.h"
#include "shmkit/ipc/sysv_objects.h"
#include "shmkit/table/table.h"

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
