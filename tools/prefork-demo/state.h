// The demo server's shared state: every shmkit object the workers use,
// created by the master before it forks them.
//
//   object        kind           key (--key=K)  holds
//   workers       Table          K+0    worker index -> pid, incarnation,
//                                       requests, connections, unsent
//   tasks         Table, TTL     K+1    task id -> status, input, result
//   task_ids      AtomicCounter  K+2    last task id handed out
//   deaths        AtomicCounter  K+3    workers that died abnormally
//   unconfirmed   AtomicCounter  K+4    /hit answers counted but perhaps
//                                       never sent (see server.cc)
//   sessions      Table, TTL     K+5    session id -> user, hits
//   rate_limits   Table, TTL     K+6    client address -> requests in the
//                                       current one-second window
//   hits          AtomicCounter  K+7    200 answers to GET /hit
//   the queue     Queue          (its spec) task ids from request workers to
//                                       task workers
//
// Without --key every object is anonymous (IPC_PRIVATE): the kernel frees it
// when the last process that has it exits, whatever happens. With --key the
// objects can be inspected by unrelated processes (`shmkit stat 0x...`) and
// the master removes them on exit (RemoveKeyed).
//
// The last three (HitState) are what GET /hit touches. With --shared=false
// each request worker creates its own anonymous copy after fork instead, so
// the same code runs with nothing shared: the benchmark's baseline.
#ifndef SHMKIT_TOOLS_PREFORK_DEMO_STATE_H_
#define SHMKIT_TOOLS_PREFORK_DEMO_STATE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/table/table.h"

namespace shmkit::demo {

// Longest task input (and result), in bytes.
inline constexpr uint32_t kMaxTaskBytes = 256;
// A queued task: "<id> <input>" (an id has at most 19 digits).
inline constexpr size_t kMaxTaskMessageBytes = 20 + kMaxTaskBytes;
// Longest user name.
inline constexpr uint32_t kMaxUserBytes = 32;

struct StateOptions {
  IpcKey key = IpcKey::Private();  // base key; private: all anonymous
  int workers = 1;                 // rows of the workers table
  uint64_t sessions = 65536;       // capacity of the sessions table
  uint64_t tasks = 16384;          // capacity of the tasks table
  uint64_t clients = 4096;         // capacity of the rate-limit table
  std::string queue_spec = "ring:slots=1024,slot_bytes=320";
};

struct HitState {
  Table sessions;
  Table rate_limits;
  AtomicCounter hits;
};

struct SharedState {
  Table workers;
  Table tasks;
  AtomicCounter task_ids;
  AtomicCounter deaths;
  AtomicCounter unconfirmed;
  std::unique_ptr<Queue> queue;
  std::optional<HitState> hit;  // set unless --shared=false
};

// Creates the objects /hit uses; `key` is the base key (private: anonymous).
absl::StatusOr<HitState> CreateHitState(const StateOptions& options,
                                        IpcKey key);
// Creates everything, including the HitState when `shared_hits`.
absl::StatusOr<SharedState> CreateSharedState(const StateOptions& options,
                                              bool shared_hits);
// Removes the queue and, when the objects are keyed, every object. Call in
// the master once every worker has exited. Returns the first error.
absl::Status RemoveAll(SharedState& state, const StateOptions& options);

// The key of the object at `offset` from `base` (private stays private).
IpcKey KeyAt(IpcKey base, int offset);

}  // namespace shmkit::demo

#endif  // SHMKIT_TOOLS_PREFORK_DEMO_STATE_H_
