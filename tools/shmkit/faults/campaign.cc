// The supervisor of a fault campaign (campaign.h): creates the objects,
// forks, kills, reaps and respawns the workers, and checks the end state
// against the ledger (ledger.h).
#include "tools/shmkit/faults/campaign.h"

#include <signal.h>
#include <sys/sem.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/internal/test_hooks.h"
#include "tools/shmkit/faults/ledger.h"
#include "tools/shmkit/faults/worker.h"

namespace shmkit::faults {

const char* OpName(int op) {
  static constexpr const char* kNames[kOpKinds] = {
      "incr",         "set",        "update",  "get",  "add",     "del",
      "getanddelete", "atomic_add", "sem_add", "send", "receive", "count"};
  return op >= 0 && op < kOpKinds ? kNames[op] : "?";
}

namespace {

using internal::CrashPoint;

constexpr CrashPoint kRecoveryPoints[] = {
    CrashPoint::kRecoveryStarted, CrashPoint::kRecoveryRestored,
    CrashPoint::kRecoveryFreed, CrashPoint::kRecoveryBeforeRetire};

absl::Status Validate(const CampaignOptions& o) {
  if (o.workers < 2 || o.workers > kMaxWorkers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--workers ", o.workers, ": expected 2..", kMaxWorkers,
        " (even slots produce ring messages, odd slots consume them)"));
  }
  if (o.kills == 0 && o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "--duration must be positive when --kills is 0");
  }
  if (o.kill_every <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--kill_every must be positive");
  }
  if (o.capacity < 2 * (o.hot_keys + o.versioned_keys) ||
      o.capacity > (uint64_t{1} << 24)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--capacity ", o.capacity, ": expected ",
        2 * (o.hot_keys + o.versioned_keys),
        " (twice the hot and versioned rows, so churn rows fit) .. 2^24"));
  }
  if (o.hot_keys < 1 || o.hot_keys > kMaxHotKeys) {
    return absl::InvalidArgumentError(
        absl::StrCat("--hot_keys ", o.hot_keys, ": expected 1..", kMaxHotKeys));
  }
  if (o.versioned_keys < 1) {
    return absl::InvalidArgumentError("versioned keys must be positive");
  }
  if (o.recovery_point_percent + o.writer_point_percent > 100 ||
      o.mark_dead_percent > 100) {
    return absl::InvalidArgumentError(
        "percentages must be 0..100 (recovery and writer crash points "
        "together too)");
  }
  return absl::OkStatus();
}

// Reaps every child as soon as it dies, on its own thread, so each death and
// its status are known while the supervisor's main thread is inside
// MarkDeadInAllOpen (the table's recovery runs there), which may wait for a
// bucket whose owner just died at a crash point (a short wait: an exited
// process counts as dead, reaped or not).
class Reaper {
 public:
  Reaper() : thread_([this] { Loop(); }) {}
  ~Reaper() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    thread_.join();
  }
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // Waits until `pid` has been reaped; its wait status.
  int WaitFor(pid_t pid) {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      for (size_t i = 0; i < reaped_.size(); ++i) {
        if (reaped_[i].first == pid) {
          const int status = reaped_[i].second;
          reaped_.erase(reaped_.begin() + static_cast<ptrdiff_t>(i));
          return status;
        }
      }
      cv_.wait(lock);
    }
  }
  // Children reaped and not yet claimed by WaitFor.
  std::vector<std::pair<pid_t, int>> Take() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(reaped_, {});
  }

 private:
  void Loop() {
    while (true) {
      int status = 0;
      const pid_t pid = waitpid(-1, &status, 0);
      if (pid > 0) {
        std::lock_guard<std::mutex> lock(mu_);
        reaped_.emplace_back(pid, status);
        cv_.notify_all();
        continue;
      }
      if (errno == EINTR) continue;
      // ECHILD: no child right now (before the first fork, or at the end).
      std::unique_lock<std::mutex> lock(mu_);
      if (stop_) return;
      cv_.wait_for(lock, std::chrono::milliseconds(1));
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<pid_t, int>> reaped_;
  bool stop_ = false;
  std::thread thread_;
};

// The campaign's processes and bookkeeping. Children are killed and reaped
// by the destructor whatever path leaves RunCampaign.
class Supervisor {
 public:
  Supervisor(Objects& o, const CampaignOptions& options)
      : o_(o),
        options_(options),
        rng_(options.seed),
        pids_(options.workers, 0),
        incarnations_(options.workers, 0) {}

  ~Supervisor() {
    for (pid_t& pid : pids_) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        reaper_.WaitFor(pid);
        pid = 0;
      }
    }
  }
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  absl::Status SpawnAll() {
    for (uint32_t slot = 0; slot < options_.workers; ++slot) {
      SHMKIT_RETURN_IF_ERROR(Spawn(slot, /*may_arm=*/false));
    }
    return absl::OkStatus();
  }

  // The kill loop.
  absl::Status Run(CampaignResult& r) {
    const absl::Time start = absl::Now();
    absl::Time next_report = start + absl::Seconds(5);
    while (true) {
      if (options_.kills > 0 ? r.kills >= options_.kills
                             : absl::Now() - start >= options_.duration) {
        break;
      }
      absl::SleepFor(options_.kill_every);
      SHMKIT_RETURN_IF_ERROR(SettleSelfDeaths(r, /*respawn=*/true));
      const auto slot = static_cast<uint32_t>(rng_() % options_.workers);
      const pid_t pid = pids_[slot];
      if (kill(pid, SIGKILL) != 0) {
        if (errno != ESRCH) {
          return absl::ErrnoToStatus(errno, absl::StrCat("kill ", pid));
        }
        // It died at a crash point since SettleSelfDeaths looked, and the
        // reaper has it (or is about to): settle it as such.
        const int status = reaper_.WaitFor(pid);
        SHMKIT_RETURN_IF_ERROR(SettleOne(pid, status, r, /*respawn=*/true));
        continue;
      }
      reaper_.WaitFor(pid);
      ++r.kills;
      if (LoadWord(o_.ledger.workers[slot].phase) == kPhaseInReceive) {
        ++r.kills_in_receive;
      }
      SHMKIT_RETURN_IF_ERROR(AfterDeath(slot, pid, r, /*respawn=*/true));
      if (options_.verbose && absl::Now() >= next_report) {
        std::fprintf(stderr, "faults: %llu kills, %llu crash-point deaths\n",
                     static_cast<unsigned long long>(r.kills),
                     static_cast<unsigned long long>(r.crash_point_deaths));
        next_report += absl::Seconds(5);
      }
    }
    return absl::OkStatus();
  }

  // Asks every worker to stop and waits for them; false if some exited
  // before being asked or with a code, or had to be killed after `bound`.
  absl::StatusOr<bool> StopAll(CampaignResult& r, absl::Duration bound) {
    SHMKIT_RETURN_IF_ERROR(SettleSelfDeaths(r, /*respawn=*/false));
    StoreWord(o_.ledger.header->stop, 1u);
    const absl::Time deadline = absl::Now() + bound;
    while (Live() > 0 && absl::Now() < deadline) {
      absl::SleepFor(absl::Milliseconds(1));
      SHMKIT_RETURN_IF_ERROR(SettleSelfDeaths(r, /*respawn=*/false));
    }
    return Live() == 0 && bad_exits_ == 0;
  }

  uint64_t unacked_hot(uint32_t k) const { return unacked_hot_[k]; }
  uint64_t unacked_atomic() const { return unacked_atomic_; }
  uint64_t unacked_sem() const { return unacked_sem_; }
  int bad_exits() const { return bad_exits_; }
  // Messages a consumer died with inside the ReceiveAndProcess callback
  // (producer << 40 | seq): each may have been recorded twice.
  bool MayRepeat(uint32_t producer, uint64_t seq) const {
    const uint64_t id = uint64_t{producer} << 40 | seq;
    return std::find(may_repeat_.begin(), may_repeat_.end(), id) !=
           may_repeat_.end();
  }

 private:
  int Live() const {
    int n = 0;
    for (pid_t p : pids_) n += p > 0;
    return n;
  }

  absl::Status Spawn(uint32_t slot, bool may_arm) {
    WorkerSpec spec;
    spec.slot = slot;
    spec.incarnation = incarnations_[slot]++;
    spec.seed = options_.seed ^ (uint64_t{slot} << 48) ^
                (spec.incarnation * 0x9e3779b97f4a7c15ull);
    const uint64_t dice = rng_() % 100;
    if (may_arm && dice < options_.recovery_point_percent +
                              options_.writer_point_percent) {
      if (dice < options_.recovery_point_percent) {
        spec.crash_point = static_cast<int>(
            kRecoveryPoints[rng_() % std::size(kRecoveryPoints)]);
      } else {
        // A writer point: kLockedBeforeRecord .. kFreedBeforeHint.
        const int first = static_cast<int>(CrashPoint::kLockedBeforeRecord);
        const int last = static_cast<int>(CrashPoint::kFreedBeforeHint);
        spec.crash_point =
            first + static_cast<int>(rng_() % (last - first + 1));
      }
    }
    std::fflush(nullptr);
    const pid_t pid = fork();
    if (pid < 0) return absl::ErrnoToStatus(errno, "fork");
    if (pid == 0) RunWorker(o_, options_, spec);  // never returns
    pids_[slot] = pid;
    return absl::OkStatus();
  }

  // Workers that died without being killed (at an armed crash point), or
  // exited.
  absl::Status SettleSelfDeaths(CampaignResult& r, bool respawn) {
    for (const auto& [pid, status] : reaper_.Take()) {
      SHMKIT_RETURN_IF_ERROR(SettleOne(pid, status, r, respawn));
    }
    return absl::OkStatus();
  }

  absl::Status SettleOne(pid_t pid, int status, CampaignResult& r,
                         bool respawn) {
    uint32_t slot = 0;
    while (slot < pids_.size() && pids_[slot] != pid) ++slot;
    if (slot == pids_.size()) return absl::OkStatus();  // not a worker
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) {
      ++r.crash_point_deaths;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
               LoadWord(o_.ledger.header->stop) == 0) {
      ++bad_exits_;  // a worker only exits, with 0, when asked to stop
    }
    return AfterDeath(slot, pid, r, respawn);
  }

  // What the supervisor does for a reaped worker: settles the ledger words
  // the worker left "in flight", maybe runs the table's recovery at once,
  // and respawns the slot.
  absl::Status AfterDeath(uint32_t slot, pid_t pid, CampaignResult& r,
                          bool respawn) {
    pids_[slot] = 0;
    WorkerLedger& w = o_.ledger.workers[slot];
    if (const uint32_t k = LoadWord(w.pending_hot); k != 0) {
      ++unacked_hot_[k - 1];
      StoreWord(w.pending_hot, 0u);
    }
    if (LoadWord(w.pending_atomic) != 0) {
      ++unacked_atomic_;
      StoreWord(w.pending_atomic, 0u);
    }
    if (LoadWord(w.pending_sem) != 0) {
      ++unacked_sem_;
      StoreWord(w.pending_sem, 0u);
    }
    StoreWord(w.phase, kPhaseIdle);
    if (const uint64_t id = LoadWord(w.in_callback); id != 0) {
      may_repeat_.push_back(id - 1);
      StoreWord(w.in_callback, uint64_t{0});
    }
    if (slot % 2 == 0) {
      // A producer killed inside Send leaves that message in doubt (status
      // stays "in flight"); one killed after the ack but before moving on
      // has it acknowledged. Either way the slot continues after it.
      const uint64_t seq = LoadWord(w.next_seq);
      if (seq < o_.ledger.header->max_seq &&
          LoadWord(o_.ledger.StatusOf(slot / 2, seq)) != kMsgUnsent) {
        StoreWord(w.next_seq, seq + 1);
      }
    }
    if (rng_() % 100 < options_.mark_dead_percent) {
      // Runs the table's (and the ring's) recovery of `pid` here, now.
      r.slots_marked_dead += ProcessRegistry::MarkDeadInAllOpen(pid, 0);
      ++r.mark_dead_calls;
    }
    if (!respawn) return absl::OkStatus();
    ++r.respawns;
    return Spawn(slot, /*may_arm=*/true);
  }

  Objects& o_;
  const CampaignOptions& options_;
  std::mt19937_64 rng_;
  std::vector<pid_t> pids_;
  std::vector<uint64_t> incarnations_;
  uint64_t unacked_hot_[kMaxHotKeys] = {};
  uint64_t unacked_atomic_ = 0;
  uint64_t unacked_sem_ = 0;
  int bad_exits_ = 0;
  std::vector<uint64_t> may_repeat_;
  // Destroyed (joined) first among the members, after ~Supervisor has
  // reaped every worker through it.
  Reaper reaper_;
};

void Add(CampaignResult& r, std::string name, bool ok, std::string detail) {
  r.checks.push_back({std::move(name), ok, std::move(detail)});
}

// `acknowledged <= value <= acknowledged + in flight at a death`.
void CheckBound(CampaignResult& r, std::string name, int64_t value,
                uint64_t acked, uint64_t unacked) {
  const bool ok = value >= 0 && static_cast<uint64_t>(value) >= acked &&
                  static_cast<uint64_t>(value) <= acked + unacked;
  Add(r, std::move(name), ok,
      absl::StrCat(
          "value ", value, ", acknowledged ", acked,
          ", in flight when a worker died ", unacked,
          ok ? "" : ": outside [acknowledged, acknowledged + in flight]"));
}

void CheckTable(Objects& o, const CampaignOptions& opt, const Supervisor& sup,
                CampaignResult& r) {
  const Ledger& l = o.ledger;
  uint64_t torn = 0, over = 0, max_count = 0;
  for (uint32_t w = 0; w < opt.workers; ++w) {
    torn += LoadWord(l.workers[w].torn_rows);
    over += LoadWord(l.workers[w].over_capacity);
    max_count = std::max(max_count, LoadWord(l.workers[w].max_count));
  }
  // Hot keys.
  uint64_t acked_all = 0, value_all = 0, unacked_all = 0;
  std::string first_bad;
  for (uint32_t k = 0; k < opt.hot_keys; ++k) {
    uint64_t acked = 0;
    for (uint32_t w = 0; w < opt.workers; ++w) {
      acked += LoadWord(l.workers[w].hot_acked[k]);
    }
    absl::StatusOr<Value> v = o.table.GetColumn(HotKey(k), o.n);
    const int64_t value = v.ok() ? v->int_value() : -1;
    const uint64_t unacked = sup.unacked_hot(k);
    if (first_bad.empty() &&
        (value < 0 || static_cast<uint64_t>(value) < acked ||
         static_cast<uint64_t>(value) > acked + unacked)) {
      first_bad = absl::StrCat(
          HotKey(k), ": value ",
          v.ok() ? absl::StrCat(value) : v.status().ToString(),
          ", acknowledged ", acked, ", in flight when a worker died ", unacked);
    }
    acked_all += acked;
    value_all += value > 0 ? value : 0;
    unacked_all += unacked;
  }
  Add(r, "hot keys: acknowledged <= value <= acknowledged + in flight",
      first_bad.empty(),
      first_bad.empty()
          ? absl::StrCat(opt.hot_keys, " keys: values ", value_all,
                         ", acknowledged ", acked_all,
                         ", in flight when a worker died ", unacked_all,
                         " (kills ", r.kills + r.crash_point_deaths, ")")
          : first_bad);

  // Torn rows: seen by workers, and in a final scan. The scan also counts
  // rows for the Count check, before anything runs Recover().
  uint64_t scanned = 0, torn_final = 0;
  absl::Status scan = o.table.ForEach([&](const Row& row) {
    ++scanned;
    if (!RowIsWhole(o, row, IsHotKey(row.key()))) ++torn_final;
    return true;
  });
  Add(r, "no torn row (workers' reads, final scan)",
      torn == 0 && torn_final == 0 && scan.ok(),
      absl::StrCat("seen by workers ", torn, ", in the final scan ", torn_final,
                   scan.ok() ? "" : absl::StrCat(", scan: ", scan.ToString())));
  const uint64_t count = o.table.Count();
  Add(r, "Count() equals the rows iteration finds (no Recover() first)",
      count == scanned && scan.ok(),
      absl::StrCat("Count() ", count, ", iteration ", scanned));
  Add(r, "Count() never above capacity", over == 0 && count <= opt.capacity,
      absl::StrCat("largest Count() a worker saw ", max_count, ", capacity ",
                   opt.capacity, ", answers above it ", over));
  const absl::Status consistent = o.table.CheckConsistency();
  Add(r, "CheckConsistency", consistent.ok(),
      consistent.ok() ? "OK" : consistent.ToString());

  // Fill to exactly capacity; the next insert is ResourceExhausted.
  std::string fill_error;
  uint64_t added = 0;
  for (uint64_t i = 0; o.table.Count() < opt.capacity && fill_error.empty();
       ++i) {
    if (i > 4 * opt.capacity) {
      fill_error = "the fill did not reach capacity";
      break;
    }
    const std::string text = DerivedText(0);
    absl::Status st =
        o.table.Add(absl::StrCat("f:", i), {{o.n, 0}, {o.x, 0.0}, {o.s, text}});
    if (st.ok()) {
      ++added;
    } else {
      fill_error = absl::StrCat("Add f:", i, " with Count() ", o.table.Count(),
                                " of ", opt.capacity, ": ", st.ToString());
    }
  }
  const absl::Status one_more =
      o.table.Add("f:extra", {{o.n, 0}, {o.x, 0.0}, {o.s, DerivedText(0)}});
  const absl::Status after_fill = o.table.CheckConsistency();
  const bool fill_ok = fill_error.empty() && o.table.Count() == opt.capacity &&
                       absl::IsResourceExhausted(one_more) && after_fill.ok();
  Add(r, "fill to capacity, then one more insert is ResourceExhausted", fill_ok,
      fill_error.empty()
          ? absl::StrCat("added ", added, ", Count() ", o.table.Count(),
                         ", capacity ", opt.capacity, ", next insert: ",
                         one_more.ok() ? "OK" : one_more.ToString(),
                         after_fill.ok()
                             ? ""
                             : absl::StrCat(", then ", after_fill.ToString()))
          : fill_error);
  r.table_recoveries = o.table.Stats().recoveries;
}

void CheckCounters(Objects& o, const CampaignOptions& opt,
                   const Supervisor& sup, CampaignResult& r) {
  uint64_t atomic_acked = 0, sem_acked = 0;
  for (uint32_t w = 0; w < opt.workers; ++w) {
    atomic_acked += LoadWord(o.ledger.workers[w].atomic_acked);
    sem_acked += LoadWord(o.ledger.workers[w].sem_acked);
  }
  absl::StatusOr<int64_t> a = o.atomic->Get();
  absl::StatusOr<int64_t> s = o.sem->Get();
  CheckBound(r,
             "AtomicCounter: acknowledged <= value <= acknowledged + in flight",
             a.ok() ? *a : -1, atomic_acked, sup.unacked_atomic());
  CheckBound(r, "SemCounter: acknowledged <= value <= acknowledged + in flight",
             s.ok() ? *s : -1, sem_acked, sup.unacked_sem());
}

// Drains the ring (marking what it gets as received) and checks every
// message against the ledger.
void CheckQueue(Objects& o, const CampaignOptions& opt, const Supervisor& sup,
                CampaignResult& r) {
  const Ledger& l = o.ledger;
  Message m;
  uint64_t drained = 0, bad = 0;
  std::string drain_error;
  while (true) {
    absl::Status st = o.ring->ReceiveInto(
        m, kMessageBytes, WaitMode::For(absl::Milliseconds(200)));
    if (absl::IsDeadlineExceeded(st)) break;
    if (!st.ok()) {
      drain_error = st.ToString();
      break;
    }
    uint32_t producer = 0;
    uint64_t seq = 0;
    if (DecodeMessage(m.data, &producer, &seq) &&
        producer < l.header->producers && seq < l.header->max_seq) {
      AddWord(l.ReceivedOf(producer, seq), uint8_t{1});
      ++drained;
    } else {
      ++bad;
    }
  }
  for (uint32_t w = 0; w < opt.workers; ++w) {
    bad += LoadWord(l.workers[w].bad_messages);
  }
  absl::StatusOr<QueueStats> stats = o.ring->Stats();
  const uint64_t queued =
      stats.ok() && stats->messages.has_value() ? *stats->messages : 0;
  const uint64_t abandoned = stats.ok() ? stats->abandoned_messages : 0;

  uint64_t acked = 0, in_doubt = 0, in_doubt_received = 0, received = 0;
  uint64_t lost = 0, duplicated = 0, phantom = 0, repeated_legitimately = 0;
  for (uint32_t p = 0; p < l.header->producers; ++p) {
    const uint64_t end = LoadWord(l.workers[2 * p].next_seq) + 1;
    for (uint64_t seq = 0; seq < std::min(end, l.header->max_seq); ++seq) {
      const uint8_t status = LoadWord(l.StatusOf(p, seq));
      const uint8_t got = LoadWord(l.ReceivedOf(p, seq));
      received += got > 0;
      duplicated += got > 2 || (got == 2 && !sup.MayRepeat(p, seq));
      repeated_legitimately += got == 2 && sup.MayRepeat(p, seq);
      if (status == kMsgAcked) {
        ++acked;
        lost += got == 0;
      } else if (status == kMsgInFlight) {
        ++in_doubt;
        in_doubt_received += got > 0;
      } else {
        phantom += got > 0;
      }
    }
  }
  r.messages_acked = acked;
  r.messages_in_doubt = in_doubt;
  r.messages_received = received;
  r.messages_abandoned = abandoned;
  const bool delivered_ok = drain_error.empty() && stats.ok() &&
                            lost <= abandoned && duplicated == 0 &&
                            phantom == 0 && bad == 0;
  Add(r, "ring: every acknowledged message received once or counted abandoned",
      delivered_ok,
      absl::StrCat(
          "acknowledged ", acked, ", never received ", lost,
          ", abandoned (Stats) ", abandoned, ", received twice ", duplicated,
          " (and ", repeated_legitimately,
          " recorded twice by a consumer killed inside the ReceiveAndProcess "
          "callback, then redelivered)",
          ", received but never sent ", phantom, ", bad bodies ", bad,
          ", consumer kills inside Receive ", r.kills_in_receive,
          drain_error.empty() ? "" : absl::StrCat(", drain: ", drain_error),
          stats.ok() ? ""
                     : absl::StrCat(", Stats: ", stats.status().ToString())));
  // sent is known up to the messages whose Send was cut by a kill and that
  // nobody received: each was either never published or abandoned.
  const uint64_t sent_low = acked + in_doubt_received;
  const uint64_t sent_high = acked + in_doubt;
  const uint64_t rhs = received + abandoned + queued;
  Add(r, "ring: sent == received + abandoned + queued",
      queued == 0 && rhs >= sent_low && rhs <= sent_high,
      absl::StrCat("sent ", sent_low,
                   sent_high == sent_low ? "" : absl::StrCat("..", sent_high),
                   " (", in_doubt, " cut by a kill inside Send), received ",
                   received, " (", drained, " drained at the end), abandoned ",
                   abandoned, ", queued ", queued));
}

// Whether the kernel still knows a segment / semaphore set id.
bool SegmentExists(int id) { return Segment::StatId(id).ok(); }
bool SemaphoreSetExists(int id) {
  struct semid_ds ds = {};
  return semctl(id, 0, IPC_STAT, &ds) == 0;
}

}  // namespace

absl::StatusOr<CampaignResult> RunCampaign(const CampaignOptions& opt) {
  SHMKIT_RETURN_IF_ERROR(Validate(opt));
  const absl::Time start = absl::Now();
  CampaignResult r;
  std::vector<int> segment_ids;
  int sem_id = -1;
  {
    Objects o;
    SHMKIT_ASSIGN_OR_RETURN(Schema schema, Schema::Builder()
                                               .Int("n")
                                               .Float("x")
                                               .String("s", kMaxStringBytes)
                                               .MaxKeyBytes(kMaxKeyBytes)
                                               .Build());
    SHMKIT_ASSIGN_OR_RETURN(o.n, schema.Int("n"));
    SHMKIT_ASSIGN_OR_RETURN(o.x, schema.Float("x"));
    SHMKIT_ASSIGN_OR_RETURN(o.s, schema.String("s"));
    SHMKIT_ASSIGN_OR_RETURN(o.table,
                            Table::Create(schema, {.capacity = opt.capacity}));
    segment_ids.push_back(o.table.segment().id());
    SHMKIT_ASSIGN_OR_RETURN(AtomicCounter atomic, AtomicCounter::Create());
    o.atomic = std::make_unique<AtomicCounter>(std::move(atomic));
    segment_ids.push_back(o.atomic->segment().id());
    SHMKIT_ASSIGN_OR_RETURN(SemCounter sem, SemCounter::Create());
    o.sem = std::make_unique<SemCounter>(std::move(sem));
    segment_ids.push_back(o.sem->segment().id());
    sem_id = o.sem->semaphores().id();
    SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<RingQueue> ring,
                            RingQueue::Open({.slots = opt.ring_slots,
                                             .slot_bytes = kMessageBytes}));
    segment_ids.push_back(ring->segment()->id());
    o.ring = std::move(ring);
    const uint32_t producers = (opt.workers + 1) / 2;
    SHMKIT_ASSIGN_OR_RETURN(
        Segment ledger_segment,
        Segment::Create(
            {.bytes = Ledger::BytesFor(opt.workers, producers,
                                       opt.max_messages_per_producer)}));
    segment_ids.push_back(ledger_segment.id());
    o.ledger = Ledger::Over(ledger_segment.bytes().data(), opt.workers,
                            producers, opt.max_messages_per_producer);
    o.ledger.header->workers = opt.workers;
    o.ledger.header->producers = producers;
    o.ledger.header->hot_keys = opt.hot_keys;
    o.ledger.header->max_seq = opt.max_messages_per_producer;

    // Rows that are never deleted: hot counters and versioned rows.
    for (uint32_t k = 0; k < opt.hot_keys; ++k) {
      SHMKIT_RETURN_IF_ERROR(
          o.table.Set(HotKey(k), {{o.n, 0}, {o.x, kHotX}, {o.s, kHotText}}));
    }
    for (uint32_t i = 0; i < opt.versioned_keys; ++i) {
      SHMKIT_RETURN_IF_ERROR(o.table.Set(
          VersionedKey(i), {{o.n, 0}, {o.x, 0.0}, {o.s, DerivedText(0)}}));
    }

    bool stopped_clean = false;
    {
      Supervisor sup(o, opt);
      SHMKIT_RETURN_IF_ERROR(sup.SpawnAll());
      SHMKIT_RETURN_IF_ERROR(sup.Run(r));
      SHMKIT_ASSIGN_OR_RETURN(stopped_clean, sup.StopAll(r, absl::Seconds(30)));
      Add(r, "workers ran until asked to stop and then exited 0", stopped_clean,
          stopped_clean ? "yes"
                        : absl::StrCat(sup.bad_exits(),
                                       " exited early or with a code; the "
                                       "others were killed after 30 s"));
      // Everything below runs with no worker left.
      uint64_t errors = 0;
      std::string first_error;
      for (uint32_t w = 0; w < opt.workers; ++w) {
        const WorkerLedger& wl = o.ledger.workers[w];
        errors += LoadWord(wl.errors);
        if (first_error.empty() && wl.first_error[0] != '\0') {
          first_error = absl::StrCat(
              "worker ", w, ": ",
              std::string(wl.first_error,
                          strnlen(wl.first_error, kErrorTextBytes)));
        }
        for (int op = 0; op < kOpKinds; ++op) {
          r.ops_by_kind[op] += LoadWord(wl.ops[op]);
          r.ops += LoadWord(wl.ops[op]);
        }
        r.table_full_answers += LoadWord(wl.table_full);
      }
      Add(r, "no unexpected status from any call", errors == 0,
          errors == 0
              ? absl::StrCat(r.ops, " calls")
              : absl::StrCat(errors, " unexpected; first: ", first_error));
      CheckCounters(o, opt, sup, r);
      CheckTable(o, opt, sup, r);
      CheckQueue(o, opt, sup, r);
    }
    // Remove what was created. The table, counters, ring and ledger are
    // anonymous segments, already marked for removal: they go with the last
    // detach below. The semaphore set must be removed explicitly.
    (void)o.sem->Remove();
    (void)o.ring->Close();
  }
  // Every object gone?
  std::vector<std::string> left;
  for (int id : segment_ids) {
    if (SegmentExists(id)) left.push_back(absl::StrCat("segment ", id));
  }
  if (sem_id >= 0 && SemaphoreSetExists(sem_id)) {
    left.push_back(absl::StrCat("semaphore set ", sem_id));
  }
  Add(r, "no IPC object left", left.empty(),
      left.empty() ? absl::StrCat(segment_ids.size(),
                                  " segments and 1 semaphore set removed")
                   : absl::StrCat("left: ", left.front(),
                                  left.size() > 1 ? " and more" : ""));
  r.wall = absl::Now() - start;
  return r;
}

}  // namespace shmkit::faults
