// The respawn policy of WorkerPool as pure logic: what follows a worker's
// exit (respawn now, respawn after a backoff, hold, or finish), and when the
// crash-loop rule fires. It forks nothing and reads no clock: the pool
// passes the time of each exit (CLOCK_MONOTONIC nanoseconds), so the rules
// are tested without processes (tests/pool/respawn_rules_test.cc).
//
//   - Whether a worker comes back follows WorkerPoolOptions::respawn
//     (kOnFailure: abnormal exits only; kAlways: every exit; kNever).
//     Nothing comes back while the pool stops.
//   - An abnormal exit waits backoff_initial * 2^(k-1), capped at
//     backoff_max, where k counts the worker's abnormal exits within
//     crash_loop_window (this one included); a clean exit comes back at once.
//   - crash_loop_deaths abnormal exits of all workers within
//     crash_loop_window fire the crash-loop rule (0 disables it): from then
//     on every worker that would come back is held until Forget().
#ifndef SHMKIT_IPC_POOL_INTERNAL_RESPAWN_RULES_H_
#define SHMKIT_IPC_POOL_INTERNAL_RESPAWN_RULES_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "shmkit/ipc/pool/worker_pool.h"

namespace shmkit::internal {

class RespawnRules {
 public:
  // `options` must have passed the pool's validation.
  explicit RespawnRules(const WorkerPoolOptions& options);

  struct Decision {
    // kRespawnPending, kHeld or kFinished.
    WorkerState state = WorkerState::kFinished;
    // With kRespawnPending: after how long.
    std::optional<absl::Duration> respawn_in;
    // This exit fired the crash-loop rule (it was not in force before).
    bool crash_loop_now = false;
  };

  // What follows an exit (or a failed spawn, which counts as abnormal) of
  // worker `index` at `now_ns`. `stopping`: the pool is stopping;
  // `crash_loop`: the crash-loop rule already holds respawns.
  Decision AfterExit(int index, bool abnormal, bool stopping, bool crash_loop,
                     int64_t now_ns);

  // Abnormal exits of all workers within the window, as of the last exit.
  size_t recent_deaths() const { return deaths_.size(); }

  // Forgets every recorded death (ResumeRespawning()).
  void Forget();

 private:
  // Drops death times older than the window.
  void Prune(std::deque<int64_t>& deaths, int64_t now_ns) const;
  absl::Duration Backoff(int index) const;

  const RespawnPolicy policy_;
  const absl::Duration backoff_initial_;
  const absl::Duration backoff_max_;
  const int crash_loop_deaths_;
  const int64_t window_ns_;
  std::vector<std::deque<int64_t>> worker_deaths_;  // per worker index
  std::deque<int64_t> deaths_;                      // all workers
};

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_POOL_INTERNAL_RESPAWN_RULES_H_
