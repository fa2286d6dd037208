// Costs of the ipc/ primitives, each next to its raw baseline in this binary:
//
//   AtomicCounter::Add            vs  fetch_add on an int64 in a segment
//   SemCounter::Add               vs  semop(-1) ; plain add ; semop(+1)
//   OwnerLock lock+unlock         vs  test-and-set spinlock lock+unlock
//
// each uncontended and with a second process doing the same to the same
// object. Targets (issue 2): AtomicCounter <= 1.5x, SemCounter <= 1.2x,
// OwnerLock <= 2x, uncontended.
#include <sys/sem.h>

#include <atomic>
#include <cstdint>

#include "bench_util.h"
#include "benchmark/benchmark.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/internal/cpu_relax.h"
#include "shmkit/ipc/lock_arena.h"
#include "shmkit/ipc/sem_counter.h"
#include "shmkit/ipc/semaphore.h"

namespace shmkit::bench {
namespace {

// ---- raw baselines -------------------------------------------------------

struct RawWord {
  Segment segment = *Segment::Create({.bytes = 4096});
  int64_t* value() { return static_cast<int64_t*>(segment.data()); }
};

void RawFetchAdd(benchmark::State& state, bool contended) {
  RawWord w;
  std::atomic_ref<int64_t> v(*w.value());
  std::optional<Contender> other;
  if (contended) {
    other.emplace([&](const std::atomic<bool>& stop) {
      while (!stop.load(std::memory_order_relaxed)) v.fetch_add(1);
    });
  }
  for (auto _ : state) benchmark::DoNotOptimize(v.fetch_add(1) + 1);
}

struct RawSem {
  RawWord w;
  SemaphoreSet sem = *SemaphoreSet::Create({.initial_values = {1}});
  void AddOne() {
    sembuf down{0, -1, SEM_UNDO}, up{0, 1, SEM_UNDO};
    semop(sem.id(), &down, 1);
    volatile int64_t* v = w.value();
    *v = *v + 1;
    semop(sem.id(), &up, 1);
  }
};

void RawSemopPair(benchmark::State& state, bool contended) {
  RawSem raw;
  std::optional<Contender> other;
  if (contended) {
    other.emplace([&](const std::atomic<bool>& stop) {
      while (!stop.load(std::memory_order_relaxed)) raw.AddOne();
    });
  }
  for (auto _ : state) raw.AddOne();
}

struct TasLock {
  RawWord w;
  void Lock() {
    std::atomic_ref<int64_t> f(*w.value());
    while (f.exchange(1, std::memory_order_acquire) != 0) {
      while (f.load(std::memory_order_relaxed) != 0) internal::CpuRelax();
    }
  }
  void Unlock() {
    std::atomic_ref<int64_t>(*w.value()).store(0, std::memory_order_release);
  }
};

void RawTasLockUnlock(benchmark::State& state, bool contended) {
  TasLock lock;
  std::optional<Contender> other;
  if (contended) {
    other.emplace([&](const std::atomic<bool>& stop) {
      while (!stop.load(std::memory_order_relaxed)) {
        lock.Lock();
        lock.Unlock();
      }
    });
  }
  for (auto _ : state) {
    lock.Lock();
    lock.Unlock();
  }
}

// ---- shmkit --------------------------------------------------------------

void AtomicCounterAdd(benchmark::State& state, bool contended) {
  AtomicCounter counter = *AtomicCounter::Create({});
  std::optional<Contender> other;
  if (contended) {
    other.emplace([&](const std::atomic<bool>& stop) {
      while (!stop.load(std::memory_order_relaxed)) (void)counter.Add(1);
    });
  }
  for (auto _ : state) benchmark::DoNotOptimize(counter.Add(1));
}

void SemCounterAdd(benchmark::State& state, bool contended) {
  SemCounter counter = *SemCounter::Create({});
  std::optional<Contender> other;
  if (contended) {
    other.emplace([&](const std::atomic<bool>& stop) {
      while (!stop.load(std::memory_order_relaxed)) (void)counter.Add(1);
    });
  }
  for (auto _ : state) benchmark::DoNotOptimize(counter.Add(1));
}

void OwnerLockUnlock(benchmark::State& state, bool contended) {
  LockArena arena = *LockArena::Create({});
  std::optional<Contender> other;
  if (contended) {
    other.emplace([&](const std::atomic<bool>& stop) {
      OwnerLock lock = *arena.lock(0);
      while (!stop.load(std::memory_order_relaxed)) {
        const OwnerToken me = *arena.Self();
        (void)lock.Lock(me, absl::Seconds(10));
        (void)lock.Unlock(me);
      }
    });
  }
  OwnerLock lock = *arena.lock(0);
  for (auto _ : state) {
    // As the table will: look up the thread's token, lock, unlock.
    const OwnerToken me = *arena.Self();
    benchmark::DoNotOptimize(lock.Lock(me, absl::Seconds(10)));
    benchmark::DoNotOptimize(lock.Unlock(me));
  }
}

BENCHMARK_CAPTURE(RawFetchAdd, 1proc, false);
BENCHMARK_CAPTURE(AtomicCounterAdd, 1proc, false);
BENCHMARK_CAPTURE(RawSemopPair, 1proc, false);
BENCHMARK_CAPTURE(SemCounterAdd, 1proc, false);
BENCHMARK_CAPTURE(RawTasLockUnlock, 1proc, false);
BENCHMARK_CAPTURE(OwnerLockUnlock, 1proc, false);
BENCHMARK_CAPTURE(RawFetchAdd, 2proc, true);
BENCHMARK_CAPTURE(AtomicCounterAdd, 2proc, true);
BENCHMARK_CAPTURE(RawSemopPair, 2proc, true);
BENCHMARK_CAPTURE(SemCounterAdd, 2proc, true);
BENCHMARK_CAPTURE(RawTasLockUnlock, 2proc, true);
BENCHMARK_CAPTURE(OwnerLockUnlock, 2proc, true);

}  // namespace
}  // namespace shmkit::bench

int main(int argc, char** argv) {
  using shmkit::bench::Ratio;
  const shmkit::bench::LeakCheck leaks;  // everything made is removed
  const int rc = shmkit::bench::RunWithRatios(
      argc, argv,
      {
          {"AtomicCounterAdd/1proc", "RawFetchAdd/1proc", 1.5},
          {"SemCounterAdd/1proc", "RawSemopPair/1proc", 1.2},
          {"OwnerLockUnlock/1proc", "RawTasLockUnlock/1proc", 2.0},
          {"AtomicCounterAdd/2proc", "RawFetchAdd/2proc", 0},
          {"SemCounterAdd/2proc", "RawSemopPair/2proc", 0},
          {"OwnerLockUnlock/2proc", "RawTasLockUnlock/2proc", 0},
      });
  return leaks.Check() ? rc : 1;
}
