#include "tools/shmkit/bench/harness.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <type_traits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shmkit/ipc/event.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/segment.h"
#include "tools/shmkit/cli.h"
#include "tools/shmkit/text.h"

namespace shmkit::cli::bench {

using shmkit::internal::Load;
using shmkit::internal::Ref;
using shmkit::internal::Store;

namespace internal_harness {

// The harness's own segment (IPC_PRIVATE, private to one run, never
// attached by anything else, so it carries no shmkit object header):
//
//   Control                  readiness counts, start time, stop word
//   WorkerShared[workers]    each worker's progress and results
//
// Plain fields accessed through std::atomic_ref where they race. The start
// signal is an Event of its own (Notify(kAll) once every worker is ready).
struct alignas(64) Control {
  uint32_t ready;           // workers prepared (fetch_add)
  uint32_t prepare_failed;  // workers whose prepare failed
  uint32_t reserved0[2];
  int64_t t0_ns;  // CLOCK_MONOTONIC at the start signal
  uint8_t pad0[40];
  // On a line of its own: every worker loads it once per operation, and it
  // is written once, so the line stays shared in every cache.
  uint32_t stop;
  uint8_t pad1[60];
};
static_assert(sizeof(Control) == 128 && std::is_trivially_copyable_v<Control>,
              "two cache lines of plain fields; `stop` alone on the second");

struct alignas(64) WorkerShared {
  uint64_t progress;  // ops done so far (relaxed), on its own line
  uint8_t pad0[56];
  uint32_t done;  // release-stored 1 once everything below is final
  uint32_t reserved0;
  uint64_t ops;
  uint64_t errors;
  int64_t end_ns;
  uint64_t extra[kExtraCounters];
  char first_error[512];
  LatencyHistogram hist[kMaxKinds];
};
static_assert(std::is_trivially_copyable_v<WorkerShared> &&
                  std::is_standard_layout_v<WorkerShared>,
              "results are copied in and out of shared memory as bytes");

struct Runner {
  static int Child(int index, const RunConfig& config, const WorkerHooks& hooks,
                   Control* control, WorkerShared* shared, Event& go,
                   pid_t master);
  static void Publish(WorkerContext& ctx, WorkerShared& out);
  static WorkerContext MakeContext(int index, const RunConfig& config,
                                   Control* control, WorkerShared* shared);
};

WorkerContext Runner::MakeContext(int index, const RunConfig& config,
                                  Control* control, WorkerShared* shared) {
  WorkerContext ctx;
  ctx.index_ = index;
  ctx.workers_ = config.workers;
  ctx.total_ops_ = config.total_ops;
  ctx.sample_every_ = config.sample_every;
  ctx.tsc_ = config.clock.tsc;
  ctx.ns_per_tick_ = config.clock.ns_per_tick;
  ctx.stop_ = &control->stop;
  ctx.progress_ = &shared[index].progress;
  return ctx;
}

void CopyMessage(absl::string_view message, char (&out)[512]) {
  const size_t n = std::min(message.size(), sizeof(out) - 1);
  std::memcpy(out, message.data(), n);
  out[n] = '\0';
  if (n < message.size()) std::memcpy(out + n - 3, "...", 3);
}

void Runner::Publish(WorkerContext& ctx, WorkerShared& out) {
  out.ops = ctx.ops_;
  out.errors = ctx.errors_;
  out.end_ns = ctx.end_ns_ != 0 ? ctx.end_ns_ : NowNs();
  for (int i = 0; i < kExtraCounters; ++i) out.extra[i] = ctx.extra_[i];
  CopyMessage(ctx.first_error_, out.first_error);
  for (int k = 0; k < kMaxKinds; ++k) {
    std::memcpy(static_cast<void*>(&out.hist[k]), &ctx.hist_[k],
                sizeof(LatencyHistogram));
  }
  Store(out.done, uint32_t{1}, std::memory_order_release);
}

int Runner::Child(int index, const RunConfig& config, const WorkerHooks& hooks,
                  Control* control, WorkerShared* shared, Event& go,
                  pid_t master) {
  // Die with the master: a worker must never outlive the run. Ctrl-C kills
  // the workers at once (the master may have a handler to clean up).
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  if (getppid() != master) return 4;
  WorkerContext ctx = MakeContext(index, config, control, shared);
  if (hooks.prepare) {
    absl::Status st = hooks.prepare(ctx);
    if (!st.ok()) {
      CopyMessage(st.ToString(), shared[index].first_error);
      Ref(control->prepare_failed).fetch_add(1);
      return 2;
    }
  }
  Ref(control->ready).fetch_add(1);
  if (!go.Wait().ok()) return 5;
  if (Load(control->stop) != 0 && Load(control->t0_ns) == 0) return 3;
  hooks.work(ctx);
  Publish(ctx, shared[index]);
  return 0;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status))
    return absl::StrCat("exited with code ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("ended with status ", status);
}

}  // namespace internal_harness

using internal_harness::Control;
using internal_harness::Runner;
using internal_harness::WorkerShared;

uint64_t WorkerContext::quota() const {
  if (total_ops_ == 0) return 0;
  const uint64_t n = static_cast<uint64_t>(workers_);
  const uint64_t i = static_cast<uint64_t>(index_);
  return total_ops_ / n + (i < total_ops_ % n ? 1 : 0);
}

void WorkerContext::Progress(uint64_t done) {
  Store(*progress_, done, std::memory_order_relaxed);
}

void WorkerContext::Error(const absl::Status& status) {
  if (errors_++ == 0) first_error_ = status.ToString();
}
void WorkerContext::Error(absl::string_view message) {
  if (errors_++ == 0) first_error_ = std::string(message);
}

absl::StatusOr<RunResult> RunWorkers(const RunConfig& config,
                                     const WorkerHooks& hooks) {
  if (config.workers < 1) {
    return absl::InvalidArgumentError("at least one worker is needed");
  }
  const int n = config.workers;
  auto interrupted = [&config]() {
    return config.interrupted != nullptr &&
           config.interrupted->load(std::memory_order_relaxed);
  };
  if (interrupted()) return absl::CancelledError("interrupted");
  const size_t bytes = sizeof(Control) + n * sizeof(WorkerShared);
  SHMKIT_ASSIGN_OR_RETURN(Segment segment, Segment::Create({.bytes = bytes}));
  SHMKIT_ASSIGN_OR_RETURN(Event go, Event::Create());
  auto* control = static_cast<Control*>(segment.data());
  auto* shared = reinterpret_cast<WorkerShared*>(
      static_cast<char*>(segment.data()) + sizeof(Control));

  // Buffered output would be written again by every child otherwise.
  std::fflush(nullptr);
  const pid_t master = getpid();
  std::vector<pid_t> pids;
  std::vector<std::optional<int>> exits(n);  // wait status once reaped
  auto kill_all = [&]() {
    for (int i = 0; i < static_cast<int>(pids.size()); ++i) {
      if (!exits[i].has_value()) kill(pids[i], SIGKILL);
    }
    for (int i = 0; i < static_cast<int>(pids.size()); ++i) {
      if (exits[i].has_value()) continue;
      int status = 0;
      while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
      }
      exits[i] = status;
    }
  };
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid < 0) {
      const int err = errno;
      kill_all();
      return shmkit::internal::ErrnoStatus(
          err, absl::StrCat("fork (worker ", i, " of ", n, ")"));
    }
    if (pid == 0) {
      _exit(Runner::Child(i, config, hooks, control, shared, go, master));
    }
    pids.push_back(pid);
  }
  auto reap_some = [&]() {
    for (int i = 0; i < n; ++i) {
      if (exits[i].has_value()) continue;
      int status = 0;
      if (waitpid(pids[i], &status, WNOHANG) == pids[i]) exits[i] = status;
    }
  };
  auto worker_failure = [&](int i, absl::string_view what) {
    return absl::InternalError(absl::StrCat(
        config.label, ": worker ", i, " (pid ", pids[i], ") ", what,
        shared[i].first_error[0] != '\0'
            ? absl::StrCat(": ", shared[i].first_error)
            : ""));
  };

  // Wait until every worker is prepared (or one failed or died).
  const int64_t prepare_deadline = NowNs() + int64_t{60} * 1'000'000'000;
  while (true) {
    reap_some();
    if (Load(control->prepare_failed) != 0) break;
    if (Load(control->ready) == static_cast<uint32_t>(n)) break;
    for (int i = 0; i < n; ++i) {
      if (exits[i].has_value()) {
        const int status = *exits[i];
        kill_all();
        return worker_failure(i, internal_harness::DescribeExit(status));
      }
    }
    if (NowNs() > prepare_deadline) {
      kill_all();
      return absl::DeadlineExceededError(
          absl::StrCat(config.label, ": workers not ready after 60 s"));
    }
    usleep(200);
  }
  if (Load(control->prepare_failed) != 0) {
    Store(control->stop, uint32_t{1});
    (void)go.Notify(NotifyMode::kAll);
    for (int i = 0; i < n; ++i) {
      int status = 0;
      if (!exits[i].has_value()) {
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
        exits[i] = status;
      }
    }
    for (int i = 0; i < n; ++i) {
      if (WIFEXITED(*exits[i]) && WEXITSTATUS(*exits[i]) == 2) {
        return absl::InternalError(
            absl::StrCat(config.label, ": worker ", i,
                         " could not start: ", shared[i].first_error));
      }
    }
    return absl::InternalError(
        absl::StrCat(config.label, ": a worker could not start"));
  }

  // Go.
  const int64_t t0 = NowNs();
  Store(control->t0_ns, t0);
  if (absl::Status st = go.Notify(NotifyMode::kAll); !st.ok()) {
    kill_all();
    return st;
  }

  const bool timed = config.total_ops == 0;
  const int64_t planned_end =
      timed ? t0 + absl::ToInt64Nanoseconds(config.duration) : t0;
  const int64_t kill_at = (timed ? planned_end : t0) +
                          absl::ToInt64Nanoseconds(config.grace) +
                          (timed ? 0 : int64_t{600} * 1'000'000'000);
  auto finished = [&](int i) {
    return Load(shared[i].done) != 0 || exits[i].has_value();
  };
  int64_t next_progress = t0 + 250'000'000;
  bool progress_shown = false;
  while (true) {
    const int64_t now = NowNs();
    if (timed && Load(control->stop) == 0 && now >= planned_end) {
      Store(control->stop, uint32_t{1});
    }
    reap_some();
    bool all = true;
    for (int i = 0; i < n; ++i) all = all && finished(i);
    if (all) break;
    for (int i = 0; i < n; ++i) {
      if (exits[i].has_value() && Load(shared[i].done) == 0) {
        const int status = *exits[i];
        Store(control->stop, uint32_t{1});
        kill_all();
        if (progress_shown) Print("\r\033[K");
        if (interrupted()) {
          return absl::CancelledError(
              absl::StrCat(config.label, ": interrupted"));
        }
        return worker_failure(i, internal_harness::DescribeExit(status));
      }
    }
    if (interrupted()) {
      Store(control->stop, uint32_t{1});
      kill_all();
      if (progress_shown) Print("\r\033[K");
      return absl::CancelledError(absl::StrCat(config.label, ": interrupted"));
    }
    if (now > kill_at) {
      Store(control->stop, uint32_t{1});
      kill_all();
      if (progress_shown) Print("\r\033[K");
      return absl::DeadlineExceededError(
          absl::StrCat(config.label, ": workers did not finish ",
                       absl::FormatDuration(config.grace),
                       " after the planned end; killed them"));
    }
    if (config.progress && now >= next_progress) {
      uint64_t done = 0;
      for (int i = 0; i < n; ++i) {
        done += Load(shared[i].progress, std::memory_order_relaxed);
      }
      const double secs = static_cast<double>(now - t0) / 1e9;
      std::string line =
          absl::StrFormat("\r\033[K  %-28s %5.1f s  %s ops/s", config.label,
                          secs, HumanCount(static_cast<double>(done) / secs));
      if (!timed) {
        absl::StrAppendFormat(
            &line, "  %3.0f%%",
            100.0 * static_cast<double>(done) / config.total_ops);
      }
      Print(line);
      std::fflush(stdout);
      progress_shown = true;
      next_progress = now + 250'000'000;
    }
    // Before the planned end the master has nothing to do but the progress
    // line: sleep long so it steals no CPU from the workers. Afterwards poll
    // every 2 ms for the workers' end (their own clocks time the run, so
    // this only bounds how soon the master notices).
    int64_t nap = 2'000'000;
    if (timed && Load(control->stop) == 0) {
      nap = std::min<int64_t>(20'000'000,
                              std::max<int64_t>(planned_end - now, 100'000));
    }
    timespec ts{0, static_cast<long>(nap)};
    nanosleep(&ts, nullptr);
  }
  if (progress_shown) {
    Print("\r\033[K");
    std::fflush(stdout);
  }
  for (int i = 0; i < n; ++i) {
    if (!exits[i].has_value()) {
      int status = 0;
      while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
      }
      exits[i] = status;
    }
    if (!WIFEXITED(*exits[i]) || WEXITSTATUS(*exits[i]) != 0) {
      return worker_failure(i, internal_harness::DescribeExit(*exits[i]));
    }
  }

  RunResult result;
  result.workers = n;
  result.extra_min.fill(UINT64_MAX);
  int64_t end = t0;
  for (int i = 0; i < n; ++i) {
    const WorkerShared& w = shared[i];
    if (Load(w.done) == 0) {
      return worker_failure(i, "exited without reporting");
    }
    result.ops += w.ops;
    result.errors += w.errors;
    end = std::max(end, w.end_ns);
    for (int e = 0; e < kExtraCounters; ++e) {
      result.extra_sum[e] += w.extra[e];
      result.extra_min[e] = std::min(result.extra_min[e], w.extra[e]);
    }
    if (result.first_error.empty() && w.first_error[0] != '\0') {
      result.first_error = w.first_error;
    }
    for (int k = 0; k < kMaxKinds; ++k) {
      LatencyHistogram h;
      std::memcpy(static_cast<void*>(&h), &w.hist[k], sizeof(h));
      result.per_kind[k].Merge(h);
    }
  }
  result.elapsed_s = std::max(1e-9, static_cast<double>(end - t0) / 1e9);
  return result;
}

namespace {

// The median cost of one call of `read`, in ns.
template <typename Read>
double CostNs(Read read) {
  constexpr int kBatches = 7;
  constexpr int kCalls = 50'000;
  std::vector<double> per_call;
  for (int b = 0; b < kBatches; ++b) {
    uint64_t sink = 0;
    const int64_t start = NowNs();
    for (int i = 0; i < kCalls; ++i) sink += read();
    const int64_t stop = NowNs();
    asm volatile("" : : "r"(sink));
    per_call.push_back(static_cast<double>(stop - start) / kCalls);
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[kBatches / 2];
}

// Whether the kernel times itself with the TSC: it does so only when the
// TSC is invariant and synchronized across CPUs.
bool KernelTrustsTsc() {
  std::FILE* f = std::fopen(
      "/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
  if (f == nullptr) return false;
  char name[32] = {};
  const bool read = std::fgets(name, sizeof(name), f) != nullptr;
  std::fclose(f);
  return read && std::strncmp(name, "tsc", 3) == 0 &&
         (name[3] == '\n' || name[3] == '\0');
}

}  // namespace

SampleClock CalibrateSampleClock() {
  SampleClock clock;
#if defined(__x86_64__)
  if (KernelTrustsTsc()) {
    // Ticks per ns over ~40 ms against CLOCK_MONOTONIC.
    const int64_t t0 = NowNs();
    const uint64_t c0 = __builtin_ia32_rdtsc();
    timespec nap{0, 40'000'000};
    nanosleep(&nap, nullptr);
    const int64_t t1 = NowNs();
    const uint64_t c1 = __builtin_ia32_rdtsc();
    if (c1 > c0 && t1 > t0) {
      clock.tsc = true;
      clock.name = "rdtsc";
      clock.ns_per_tick =
          static_cast<double>(t1 - t0) / static_cast<double>(c1 - c0);
      clock.call_ns = CostNs([] { return __builtin_ia32_rdtsc(); });
      return clock;
    }
  }
#endif
  clock.call_ns = CostNs([] { return static_cast<uint64_t>(NowNs()); });
  return clock;
}

int OnlineCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    return std::max(1, CPU_COUNT(&set));
  }
  const long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? static_cast<int>(n) : 1;
}

}  // namespace shmkit::cli::bench
