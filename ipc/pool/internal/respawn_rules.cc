#include "shmkit/ipc/pool/internal/respawn_rules.h"

#include <algorithm>

namespace shmkit::internal {

RespawnRules::RespawnRules(const WorkerPoolOptions& options)
    : policy_(options.respawn),
      backoff_initial_(options.backoff_initial),
      backoff_max_(options.backoff_max),
      crash_loop_deaths_(options.crash_loop_deaths),
      window_ns_(absl::ToInt64Nanoseconds(options.crash_loop_window)),
      worker_deaths_(static_cast<size_t>(std::max(options.workers, 0))) {}

void RespawnRules::Prune(std::deque<int64_t>& deaths, int64_t now_ns) const {
  while (!deaths.empty() && now_ns - deaths.front() > window_ns_) {
    deaths.pop_front();
  }
}

absl::Duration RespawnRules::Backoff(int index) const {
  const std::deque<int64_t>& mine = worker_deaths_[static_cast<size_t>(index)];
  absl::Duration d = backoff_initial_;
  for (size_t k = 1; k < mine.size() && d < backoff_max_; ++k) d *= 2;
  return std::min(d, backoff_max_);
}

RespawnRules::Decision RespawnRules::AfterExit(int index, bool abnormal,
                                               bool stopping, bool crash_loop,
                                               int64_t now_ns) {
  Decision decision;
  if (abnormal && !stopping) {
    std::deque<int64_t>& mine = worker_deaths_[static_cast<size_t>(index)];
    mine.push_back(now_ns);
    Prune(mine, now_ns);
    deaths_.push_back(now_ns);
    Prune(deaths_, now_ns);
    decision.crash_loop_now =
        !crash_loop && crash_loop_deaths_ > 0 &&
        deaths_.size() >= static_cast<size_t>(crash_loop_deaths_);
  }
  const bool wants =
      !stopping && (policy_ == RespawnPolicy::kAlways ||
                    (policy_ == RespawnPolicy::kOnFailure && abnormal));
  if (!wants) {
    decision.state = WorkerState::kFinished;
  } else if (crash_loop || decision.crash_loop_now) {
    decision.state = WorkerState::kHeld;
  } else {
    decision.state = WorkerState::kRespawnPending;
    decision.respawn_in = abnormal ? Backoff(index) : absl::ZeroDuration();
  }
  return decision;
}

void RespawnRules::Forget() {
  deaths_.clear();
  for (std::deque<int64_t>& d : worker_deaths_) d.clear();
}

}  // namespace shmkit::internal
