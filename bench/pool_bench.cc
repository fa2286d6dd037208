// Costs of the worker pool and the Event, each next to a raw baseline in this
// binary:
//
//   Event::Notify, nobody waiting     vs  fetch_add on a word in a segment
//   Event ping-pong between 2 procs   vs  raw futex ping-pong (two words)
//   WorkerPool::Collect of 64-byte    vs  read() of length-prefixed frames
//     results from a busy worker          from a socketpair (header, payload)
//   WorkerPool respawn of a worker    vs  fork(); child _exit(0); waitpid()
//     that exits at once
#include <linux/futex.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstring>
#include <string>

#include "bench_util.h"
#include "benchmark/benchmark.h"
#include "shmkit/ipc/event.h"
#include "shmkit/ipc/pool/worker_pool.h"
#include "shmkit/ipc/segment.h"

namespace shmkit::bench {
namespace {

// ---- Notify with nobody waiting ------------------------------------------

void RawFetchAdd(benchmark::State& state) {
  Segment segment = *Segment::Create({.bytes = 4096});
  std::atomic_ref<uint64_t> v(*static_cast<uint64_t*>(segment.data()));
  for (auto _ : state) benchmark::DoNotOptimize(v.fetch_add(1));
}

void EventNotifyNoWaiter(benchmark::State& state, NotifyMode mode) {
  Event ev = *Event::Create();
  for (auto _ : state) benchmark::DoNotOptimize(ev.Notify(mode));
}

// ---- ping-pong between two processes --------------------------------------

long Futex(uint32_t* addr, int op, uint32_t value, const timespec* timeout) {
  return syscall(SYS_futex, addr, op, value, timeout, nullptr, 0);
}

// Waits until *word != seen (or `stop`); the peer bumps the word and wakes.
bool RawWaitChange(uint32_t* word, uint32_t seen,
                   const std::atomic<bool>* stop) {
  std::atomic_ref<uint32_t> w(*word);
  const timespec slice{0, 10'000'000};
  while (w.load(std::memory_order_acquire) == seen) {
    if (stop != nullptr && stop->load(std::memory_order_relaxed)) return false;
    Futex(word, FUTEX_WAIT, seen, stop != nullptr ? &slice : nullptr);
  }
  return true;
}
void RawBump(uint32_t* word) {
  std::atomic_ref<uint32_t>(*word).fetch_add(1, std::memory_order_release);
  Futex(word, FUTEX_WAKE, INT_MAX, nullptr);
}

void RawFutexPingPong(benchmark::State& state) {
  Segment segment = *Segment::Create({.bytes = 4096});
  auto* words = static_cast<uint32_t*>(segment.data());
  uint32_t* ping = &words[0];
  uint32_t* pong = &words[16];  // another cache line
  Contender peer([&](const std::atomic<bool>& stop) {
    uint32_t seen = 0;
    while (RawWaitChange(ping, seen, &stop)) {
      ++seen;
      RawBump(pong);
    }
  });
  uint32_t seen = 0;
  for (auto _ : state) {
    RawBump(ping);
    RawWaitChange(pong, seen, nullptr);
    ++seen;
  }
}

void EventPingPong(benchmark::State& state, NotifyMode mode) {
  Event ping = *Event::Create();
  Event pong = *Event::Create();
  Contender peer([&](const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed)) {
      if (ping.WaitFor(absl::Milliseconds(10)).ok()) (void)pong.Notify(mode);
    }
  });
  for (auto _ : state) {
    (void)ping.Notify(mode);
    benchmark::DoNotOptimize(pong.Wait());
  }
}

// ---- results from a worker -------------------------------------------------

constexpr size_t kResultBytes = 64;

bool ReadFull(int fd, char* data, size_t n) {
  while (n > 0) {
    const ssize_t r = read(fd, data, n);
    if (r <= 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
  }
  return true;
}

void RawSocketpairFrames(benchmark::State& state) {
  int sv[2];
  socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
  Contender writer([&](const std::atomic<bool>& stop) {
    close(sv[0]);
    char frame[8 + kResultBytes] = {};
    const uint32_t len = kResultBytes;
    std::memcpy(frame, &len, sizeof(len));
    while (!stop.load(std::memory_order_relaxed)) {
      pollfd p{sv[1], POLLOUT, 0};
      if (poll(&p, 1, 10) != 1) continue;
      if (send(sv[1], frame, sizeof(frame), MSG_NOSIGNAL | MSG_DONTWAIT) < 0 &&
          errno != EAGAIN) {
        return;
      }
    }
  });
  close(sv[1]);
  std::string payload(kResultBytes, '\0');
  for (auto _ : state) {
    uint32_t header[2];
    ReadFull(sv[0], reinterpret_cast<char*>(header), sizeof(header));
    ReadFull(sv[0], payload.data(), header[0]);
    benchmark::DoNotOptimize(payload.data());
  }
  writer.Stop();
  close(sv[0]);
}

void PoolCollect(benchmark::State& state) {
  WorkerPool pool = *WorkerPool::Start({.workers = 1}, [](WorkerContext& ctx) {
    const std::string result(kResultBytes, 'r');
    while (ctx.Send(result).ok()) {
    }
    return 0;
  });
  for (auto _ : state) benchmark::DoNotOptimize(pool.Collect());
  (void)pool.Stop(absl::Seconds(1));
}

// ---- spawn and reap --------------------------------------------------------

void RawForkWaitpid(benchmark::State& state) {
  for (auto _ : state) {
    const pid_t pid = fork();
    if (pid == 0) _exit(0);
    int status;
    waitpid(pid, &status, 0);
  }
}

void PoolRespawn(benchmark::State& state) {
  // kAlways: each exit (code 0) is reaped and respawned at once.
  WorkerPool pool =
      *WorkerPool::Start({.workers = 1, .respawn = RespawnPolicy::kAlways},
                         [](WorkerContext&) { return 0; });
  for (auto _ : state) {
    while (true) {
      absl::StatusOr<PoolEvent> e = pool.NextEventFor(absl::Seconds(5));
      if (!e.ok()) {
        state.SkipWithError(std::string(e.status().message()).c_str());
        return;
      }
      if (e->kind == PoolEvent::Kind::kStarted && e->incarnation > 0) break;
    }
  }
  (void)pool.Stop(absl::Seconds(1));
}

BENCHMARK(RawFetchAdd);
BENCHMARK_CAPTURE(EventNotifyNoWaiter, kAll, NotifyMode::kAll);
BENCHMARK_CAPTURE(EventNotifyNoWaiter, kOne, NotifyMode::kOne);
BENCHMARK(RawFutexPingPong)->UseRealTime();
BENCHMARK_CAPTURE(EventPingPong, kAll, NotifyMode::kAll)->UseRealTime();
BENCHMARK_CAPTURE(EventPingPong, kOne, NotifyMode::kOne)->UseRealTime();
BENCHMARK(RawSocketpairFrames)->UseRealTime();
BENCHMARK(PoolCollect)->UseRealTime();
BENCHMARK(RawForkWaitpid)->UseRealTime();
BENCHMARK(PoolRespawn)->UseRealTime();

}  // namespace
}  // namespace shmkit::bench

int main(int argc, char** argv) {
  using shmkit::bench::Ratio;
  const shmkit::bench::LeakCheck leaks;  // everything made is removed
  const int rc = shmkit::bench::RunWithRatios(
      argc, argv,
      {
          {"EventNotifyNoWaiter/kAll", "RawFetchAdd", 0},
          {"EventNotifyNoWaiter/kOne", "RawFetchAdd", 0},
          {"EventPingPong/kAll/real_time", "RawFutexPingPong/real_time", 0},
          {"EventPingPong/kOne/real_time", "RawFutexPingPong/real_time", 0},
          {"PoolCollect/real_time", "RawSocketpairFrames/real_time", 0},
          {"PoolRespawn/real_time", "RawForkWaitpid/real_time", 0},
      });
  return leaks.Check() ? rc : 1;
}
