// The ring kill scenarios, shared by ring_kill_test (100 kills, default
// suite) and ring_kill_stress_test (more, label "stress").
#ifndef SHMKIT_TESTS_QUEUE_RING_KILL_UTIL_H_
#define SHMKIT_TESTS_QUEUE_RING_KILL_UTIL_H_

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/queue/internal/ring_layout.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit::testing {

inline constexpr size_t kRingKillBig = size_t{1} << 20;

// Message body: who sent it and its number in that sender's sequence.
struct RingItem {
  uint32_t sender;
  uint32_t seq;
};
inline std::string RingItemBytes(uint32_t sender, uint32_t seq) {
  const RingItem item{sender, seq};
  return std::string(reinterpret_cast<const char*>(&item), sizeof(item));
}

inline internal::RingHookPoint g_die_at =
    internal::RingHookPoint::kAfterReserve;
inline void DieAtHook(internal::RingHookPoint point) {
  if (point == g_die_at) raise(SIGKILL);
}

// Forks a consumer whose ReceiveAndProcess callback SIGKILLs it on the
// first message it gets (so it dies holding the claim).
inline pid_t ForkConsumerKilledInCallback(RingQueue& q) {
  return ForkChild([&q] {
    Message m;
    (void)q.ReceiveAndProcess(m, q.slot_bytes(),
                              WaitMode::For(absl::Seconds(30)),
                              [](const Message&) {
                                raise(SIGKILL);
                                return absl::OkStatus();
                              });
    return 1;  // not reached
  });
}

// Reaps `pid`: true when SIGKILL ended it.
inline bool DiedOfSigkill(pid_t pid) {
  const std::optional<ChildExit> e = WaitChild(pid);
  return e.has_value() && e->signaled && e->signal == SIGKILL;
}

// A small ring (it wraps often, so dead owners are met at every position)
// whose waiters check an owner's liveness every 200 us (so the tests spend
// little time waiting on the dead).
inline absl::StatusOr<std::unique_ptr<RingQueue>> OpenKillRing(
    uint32_t slots) {
  return RingQueue::Open({.slots = slots,
                          .slot_bytes = 64,
                          .dead_owner_check = absl::Microseconds(200)});
}

// Producers killed between reserving a slot and publishing it, `kills`
// times, while `steady` live producers keep sending and `consumers` consume:
// every message of a live producer arrives once and in order, nothing of a
// killed one's last send arrives, and the ring counts exactly `kills`
// reclaimed slots.
inline void RunProducerKills(int kills, int steady, int consumers) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened = OpenKillRing(16);
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  constexpr uint32_t kVictimMessages = 3;
  const uint32_t senders = static_cast<uint32_t>(steady + kills);
  // Shared bookkeeping: per sender, messages received (by anyone); per
  // steady producer, messages sent; and the flag that stops them.
  absl::StatusOr<Segment> shared =
      Segment::Create({.bytes = sizeof(uint64_t) *
                                (senders + static_cast<uint32_t>(steady) + 1)});
  ASSERT_TRUE(shared.ok());
  auto* received = static_cast<uint64_t*>(shared->data());
  uint64_t* sent = received + senders;
  uint64_t* stop_flag = sent + steady;
  constexpr int64_t kStop = 999;

  std::vector<pid_t> consumer_pids;
  for (int c = 0; c < consumers; ++c) {
    consumer_pids.push_back(ForkChild([&] {
      std::vector<int64_t> last(senders, -1);
      Message m;
      while (true) {
        if (!q.ReceiveInto(m, kRingKillBig, WaitMode::For(absl::Seconds(60)))
                 .ok()) {
          return 10;
        }
        if (m.type == kStop) return 0;
        RingItem item;
        if (m.data.size() != sizeof(item)) return 11;
        std::memcpy(&item, m.data.data(), sizeof(item));
        if (item.sender >= senders) return 11;
        if (static_cast<int64_t>(item.seq) <= last[item.sender]) return 12;
        last[item.sender] = item.seq;
        std::atomic_ref<uint64_t>(received[item.sender]).fetch_add(1);
      }
    }));
  }
  // Live producers send for as long as the kills go on.
  std::vector<pid_t> steady_pids;
  for (int s = 0; s < steady; ++s) {
    steady_pids.push_back(ForkChild([&, s] {
      uint32_t i = 0;
      while (std::atomic_ref<uint64_t>(*stop_flag).load() == 0) {
        if (!q.Send(RingItemBytes(s, i), 1).ok()) return 1;
        ++i;
      }
      std::atomic_ref<uint64_t>(sent[s]).store(i);
      return 0;
    }));
  }
  int died_at_hook = 0;
  for (int k = 0; k < kills; ++k) {
    const uint32_t sender = static_cast<uint32_t>(steady + k);
    const pid_t victim = ForkChild([&] {
      for (uint32_t i = 0; i < kVictimMessages; ++i) {
        if (!q.Send(RingItemBytes(sender, i), 1).ok()) return 1;
      }
      // Die with the next slot reserved: before tail moves, or after.
      g_die_at = k % 2 == 0 ? internal::RingHookPoint::kAfterReserve
                            : internal::RingHookPoint::kBeforePublish;
      internal::ring_test_hook.store(&DieAtHook);
      (void)q.Send(RingItemBytes(sender, kVictimMessages), 1);
      return 2;  // the hook did not fire
    });
    const std::optional<ChildExit> exit = WaitChild(victim);
    ASSERT_TRUE(exit.has_value());
    if (exit->signaled && exit->signal == SIGKILL) ++died_at_hook;
  }
  EXPECT_EQ(died_at_hook, kills);
  std::atomic_ref<uint64_t>(*stop_flag).store(1);
  for (pid_t p : steady_pids) EXPECT_TRUE(ExitedWith(p, 0));
  for (int c = 0; c < consumers; ++c) {
    ASSERT_TRUE(q.SendFor("stop", absl::Seconds(30), kStop).ok());
  }
  for (pid_t c : consumer_pids) EXPECT_TRUE(ExitedWith(c, 0));
  for (int s = 0; s < steady; ++s) {
    EXPECT_GT(sent[s], 0u);
    EXPECT_EQ(received[s], sent[s]) << "steady producer " << s;
  }
  for (uint32_t v = static_cast<uint32_t>(steady); v < senders; ++v) {
    EXPECT_EQ(received[v], kVictimMessages) << "victim " << v;
  }
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->reclaimed_slots, static_cast<uint64_t>(kills));
  EXPECT_EQ(stats->abandoned_messages, 0u);
  EXPECT_EQ(*stats->messages, 0u);
  // Each victim's registry slot was given back with its tombstone.
  EXPECT_EQ(q.registry()->Stats().pinned, 0u);
}

// A consumer killed between claiming a slot and releasing it: the others
// go on, and its message is redelivered (by the producer when it comes round
// to the slot, or by a consumer that finds the ring empty): every message
// arrives exactly once, none is abandoned, one is redelivered (and may come
// after later ones).
inline void RunConsumerKill(int survivors) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened = OpenKillRing(8);
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  constexpr uint32_t kMinMessages = 10'000;
  constexpr uint32_t kMaxMessages = 1u << 20;
  constexpr uint32_t kVictimTakes = 50;
  // One mark per message, then the producer's count, the stop flag and the
  // number of messages a consumer got after a later one.
  absl::StatusOr<Segment> shared =
      Segment::Create({.bytes = kMaxMessages + 3 * sizeof(uint64_t)});
  ASSERT_TRUE(shared.ok());
  auto* marks = static_cast<uint8_t*>(shared->data());
  auto* sent = reinterpret_cast<uint64_t*>(marks + kMaxMessages);
  uint64_t* stop_flag = sent + 1;
  uint64_t* out_of_order = sent + 2;
  constexpr int64_t kStop = 999;

  auto consume = [&](bool victim) {
    Message m;
    int64_t last = -1;
    for (uint32_t n = 0;; ++n) {
      if (victim && n == kVictimTakes) {
        internal::ring_test_hook.store(&DieAtHook);
      }
      if (!q.ReceiveInto(m, kRingKillBig, WaitMode::For(absl::Seconds(60)))
               .ok()) {
        return 10;
      }
      if (m.type == kStop) return victim ? 14 : 0;
      RingItem item;
      std::memcpy(&item, m.data.data(), sizeof(item));
      if (item.seq >= kMaxMessages) return 12;
      if (static_cast<int64_t>(item.seq) <= last) {
        std::atomic_ref<uint64_t>(*out_of_order).fetch_add(1);
      }
      last = std::max<int64_t>(last, item.seq);
      if (std::atomic_ref<uint8_t>(marks[item.seq]).exchange(1) != 0) {
        return 13;
      }
    }
  };
  g_die_at = internal::RingHookPoint::kAfterClaim;
  std::vector<pid_t> others;
  for (int c = 0; c < survivors; ++c) {
    others.push_back(ForkChild([&] { return consume(false); }));
  }
  const pid_t victim = ForkChild([&] { return consume(true); });
  // The producer keeps going until the victim is dead and then for 4 more
  // rounds of the ring, so that it surely comes round to the victim's slot
  // (where it finds the dead claim and counts the abandoned message).
  constexpr uint32_t kRoundsAfterStop = 4 * 8;  // 4 x slots
  const pid_t producer = ForkChild([&] {
    uint32_t i = 0;
    std::optional<uint32_t> stop_at;
    for (; i < kMaxMessages && (!stop_at || i < *stop_at); ++i) {
      if (!stop_at && i >= kMinMessages &&
          std::atomic_ref<uint64_t>(*stop_flag).load() != 0) {
        stop_at = std::min(i + kRoundsAfterStop, kMaxMessages);
      }
      if (!q.Send(RingItemBytes(0, i), 1).ok()) return 1;
    }
    std::atomic_ref<uint64_t>(*sent).store(i);
    return 0;
  });
  const std::optional<ChildExit> exit = WaitChild(victim);
  ASSERT_TRUE(exit.has_value());
  EXPECT_TRUE(exit->signaled && exit->signal == SIGKILL)
      << "the victim consumer did not die at its hook";
  std::atomic_ref<uint64_t>(*stop_flag).store(1);
  EXPECT_TRUE(ExitedWith(producer, 0));
  for (int c = 0; c < survivors; ++c) {
    ASSERT_TRUE(q.SendFor("stop", absl::Seconds(30), kStop).ok());
  }
  for (pid_t c : others) EXPECT_TRUE(ExitedWith(c, 0));
  uint64_t delivered = 0;
  for (uint32_t i = 0; i < kMaxMessages; ++i) delivered += marks[i];
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->abandoned_messages, 0u);
  EXPECT_EQ(stats->redelivered_messages, 1u);
  EXPECT_EQ(stats->reclaimed_slots, 0u);
  EXPECT_GE(*sent, kMinMessages);
  EXPECT_EQ(delivered, *sent);
  EXPECT_EQ(*stats->messages, 0u);
  // Only the redelivered message can arrive after a later one.
  EXPECT_LE(*out_of_order, stats->redelivered_messages);
  // The victim's registry slot was given back with its redelivery.
  EXPECT_EQ(q.registry()->Stats().pinned, 0u);
}

// How a consumer of the kill storm dies.
enum class StormDeath {
  kExternal,      // SIGKILL from the parent, at whatever point it is
  kAfterClaim,    // at the hook: slot claimed, nothing copied
  kInCallback,    // inside the ReceiveAndProcess callback, after recording
  kBeforeRelease  // at the hook: processed, slot not yet released
};

// The consumer kill storm: 2 producers send without pause and record every
// acknowledged send; 2 consumers take messages with ReceiveAndProcess and
// record each processing in a shared ledger; `kills` times, one consumer is
// killed (by the parent at a random moment, or by itself at a point inside
// the receive) and replaced. Then the producers stop, the last consumers are
// killed, and with nothing running:
//   sent == released + abandoned + queued (Stats().messages)
// is checked exactly: a drain must deliver exactly `queued` messages, each
// either never processed or processed by a consumer killed before releasing
// it; afterwards every acknowledged message was processed at least once and
// nothing is left or abandoned.
inline void RunConsumerKillStorm(int kills, uint32_t seed) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened = OpenKillRing(16);
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  constexpr uint32_t kProducers = 2;
  constexpr uint32_t kPerProducer = 1u << 22;
  constexpr int64_t kStop = 999;
  // Ledger: a processing count per message, then per producer the number of
  // acknowledged sends, then the total of processings and the stop flag.
  struct Tail {
    uint64_t acked[kProducers];
    uint64_t processed;
    uint64_t stop;
  };
  const size_t marks_bytes = size_t{kProducers} * kPerProducer;
  absl::StatusOr<Segment> shared =
      Segment::Create({.bytes = marks_bytes + sizeof(Tail)});
  ASSERT_TRUE(shared.ok()) << shared.status();
  auto* marks = static_cast<uint8_t*>(shared->data());
  auto* tail = reinterpret_cast<Tail*>(marks + marks_bytes);
  auto count = [](uint64_t& word) { return std::atomic_ref<uint64_t>(word); };

  // A consumer: processes until told to stop; `death` and `after` say where
  // it dies (after `after` messages), if it does by itself.
  auto consumer = [&](StormDeath death, uint32_t after) {
    return ForkChild([&, death, after] {
      Message m;
      for (uint32_t n = 0;; ++n) {
        const bool armed = n >= after;
        if (armed && death == StormDeath::kAfterClaim) {
          g_die_at = internal::RingHookPoint::kAfterClaim;
          internal::ring_test_hook.store(&DieAtHook);
        } else if (armed && death == StormDeath::kBeforeRelease) {
          g_die_at = internal::RingHookPoint::kBeforeRelease;
          internal::ring_test_hook.store(&DieAtHook);
        }
        bool stop = false;
        absl::Status st = q.ReceiveAndProcess(
            m, 64, WaitMode::For(absl::Seconds(60)),
            [&](const Message& msg) -> absl::Status {
              if (msg.type == kStop) {
                stop = true;
                return absl::OkStatus();
              }
              RingItem item;
              if (msg.data.size() != sizeof(item)) {
                return absl::DataLossError("bad size");
              }
              std::memcpy(&item, msg.data.data(), sizeof(item));
              if (item.sender >= kProducers || item.seq >= kPerProducer) {
                return absl::DataLossError("bad item");
              }
              std::atomic_ref<uint8_t>(
                  marks[size_t{item.sender} * kPerProducer + item.seq])
                  .fetch_add(1);
              count(tail->processed).fetch_add(1);
              if (armed && death == StormDeath::kInCallback) raise(SIGKILL);
              return absl::OkStatus();
            });
        if (!st.ok()) return 10;
        if (stop) return 0;
      }
    });
  };
  std::vector<pid_t> producers;
  for (uint32_t p = 0; p < kProducers; ++p) {
    producers.push_back(ForkChild([&, p] {
      for (uint32_t i = 0; i < kPerProducer && count(tail->stop).load() == 0;
           ++i) {
        if (!q.SendFor(RingItemBytes(p, i), absl::Seconds(60), 1).ok()) {
          return 1;
        }
        count(tail->acked[p]).store(i + 1);  // acknowledged
      }
      return 0;
    }));
  }
  std::mt19937 random(seed);
  // Each consumer is spawned knowing how it will die; the parent kills the
  // kExternal ones itself and waits for the others to die at their point.
  std::vector<pid_t> consumers;
  std::vector<StormDeath> deaths;
  // Consumers are reaped as soon as they die, to check how each one died
  // (its claim is taken over whether it is reaped or not: an exited process
  // counts as dead).
  std::vector<std::optional<ChildExit>> reaped;
  auto reap_dead = [&] {
    for (size_t i = 0; i < consumers.size(); ++i) {
      int status = 0;
      if (!reaped[i].has_value() &&
          waitpid(consumers[i], &status, WNOHANG) == consumers[i]) {
        ChildExit e;
        e.exited = WIFEXITED(status);
        e.code = e.exited ? WEXITSTATUS(status) : -1;
        e.signaled = WIFSIGNALED(status);
        e.signal = e.signaled ? WTERMSIG(status) : 0;
        reaped[i] = e;
      }
    }
  };
  auto spawn = [&](size_t index) {
    const auto death = static_cast<StormDeath>(random() % 4);
    const pid_t pid = consumer(death, 1 + random() % 16);
    if (index == consumers.size()) {
      consumers.push_back(pid);
      deaths.push_back(death);
      reaped.emplace_back();
    } else {
      consumers[index] = pid;
      deaths[index] = death;
      reaped[index].reset();
    }
  };
  spawn(0);
  spawn(1);
  int external = 0;
  for (int k = 0; k < kills; ++k) {
    const size_t victim = static_cast<size_t>(k) % consumers.size();
    if (deaths[victim] == StormDeath::kExternal) {
      // Let it process a few more messages (waiting for that event, not for
      // time), then kill it wherever it is.
      const uint64_t until =
          count(tail->processed).load() + 1 + random() % 32;
      const absl::Time deadline = absl::Now() + absl::Seconds(60);
      while (count(tail->processed).load() < until &&
             absl::Now() < deadline) {
        reap_dead();
        sched_yield();
      }
      ASSERT_LT(absl::Now(), deadline) << "no progress before kill " << k;
      ASSERT_EQ(kill(consumers[victim], SIGKILL), 0);
      ++external;
    }
    // Wait for it to die, reaping the other one too if it dies meanwhile.
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (!reaped[victim].has_value() && absl::Now() < deadline) {
      reap_dead();
      sched_yield();
    }
    if (!reaped[victim].has_value()) kill(consumers[victim], SIGKILL);
    const std::optional<ChildExit> exit =
        reaped[victim].has_value() ? reaped[victim]
                                   : WaitChild(consumers[victim]);
    ASSERT_LT(absl::Now(), deadline) << "consumer " << k << " hung";
    ASSERT_TRUE(exit.has_value());
    ASSERT_TRUE(exit->signaled && exit->signal == SIGKILL)
        << "consumer " << k << " exited with " << exit->code;
    spawn(victim);
  }
  // Stop the producers; then kill the last consumers wherever they are (a
  // self-dying one may be dead already).
  count(tail->stop).store(1);
  // The producers may be blocked on a full ring: keep consumers running
  // (replacing any that dies by itself) until both producers are done.
  {
    std::vector<bool> done(producers.size(), false);
    const absl::Time deadline = absl::Now() + absl::Seconds(60);
    while (std::count(done.begin(), done.end(), true) <
               static_cast<long>(done.size()) &&
           absl::Now() < deadline) {
      reap_dead();
      for (size_t i = 0; i < consumers.size(); ++i) {
        if (!reaped[i].has_value()) continue;
        ASSERT_TRUE(reaped[i]->signaled) << "a consumer exited with "
                                          << reaped[i]->code;
        consumers[i] = consumer(StormDeath::kExternal, ~0u);
        reaped[i].reset();
      }
      for (size_t p = 0; p < producers.size(); ++p) {
        int status = 0;
        if (!done[p] && waitpid(producers[p], &status, WNOHANG) ==
                            producers[p]) {
          ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
              << "producer " << p << " failed";
          done[p] = true;
        }
      }
      sched_yield();
    }
    ASSERT_LT(absl::Now(), deadline) << "the producers did not finish";
  }
  for (size_t i = 0; i < consumers.size(); ++i) {
    if (reaped[i].has_value()) continue;
    kill(consumers[i], SIGKILL);
    const std::optional<ChildExit> exit = WaitChild(consumers[i]);
    ASSERT_TRUE(exit.has_value());
    EXPECT_TRUE(exit->signaled) << "a consumer exited with " << exit->code;
  }
  uint64_t sent = 0;
  for (uint32_t p = 0; p < kProducers; ++p) sent += tail->acked[p];
  ASSERT_GT(sent, 0u);
  // Nothing runs now. queued = what the ring still holds, dead consumers'
  // claims included.
  absl::StatusOr<QueueStats> before = q.Stats();
  ASSERT_TRUE(before.ok());
  const uint64_t queued = *before->messages;
  std::vector<uint8_t> processed_before(marks, marks + marks_bytes);
  uint64_t drained = 0;
  uint64_t drained_new = 0;  // never processed before the drain
  std::vector<uint8_t> drained_mark(marks_bytes, 0);
  Message m;
  while (drained < queued) {
    RingItem item{};
    absl::Status st = q.ReceiveAndProcess(
        m, 64, WaitMode::For(absl::Seconds(30)),
        [&](const Message& msg) -> absl::Status {
          if (msg.data.size() != sizeof(item)) {
            return absl::DataLossError("bad size");
          }
          std::memcpy(&item, msg.data.data(), sizeof(item));
          return absl::OkStatus();
        });
    ASSERT_TRUE(st.ok()) << st << " after draining " << drained << " of "
                         << queued;
    ASSERT_LT(item.sender, kProducers);
    ASSERT_LT(item.seq, tail->acked[item.sender]) << "never acknowledged";
    const size_t id = size_t{item.sender} * kPerProducer + item.seq;
    ASSERT_EQ(drained_mark[id], 0) << "drained twice";
    drained_mark[id] = 1;
    if (processed_before[id] == 0) ++drained_new;
    ++drained;
  }
  // The drain emptied it: nothing more to take.
  absl::StatusOr<QueueStats> after = q.Stats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after->messages, 0u);
  EXPECT_THAT(q.TryReceive(64), StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_EQ(after->abandoned_messages, 0u);
  EXPECT_EQ(after->reclaimed_slots, 0u);
  // released: processed before the drain and not handed out again by it.
  uint64_t released = 0;
  uint64_t lost = 0;
  uint64_t extra_processings = 0;
  for (uint32_t p = 0; p < kProducers; ++p) {
    for (uint64_t i = 0; i < kPerProducer; ++i) {
      const size_t id = size_t{p} * kPerProducer + i;
      if (i >= tail->acked[p]) {
        ASSERT_EQ(processed_before[id], 0) << "processed but never acked";
        continue;
      }
      if (processed_before[id] != 0 && drained_mark[id] == 0) ++released;
      if (processed_before[id] == 0 && drained_mark[id] == 0) ++lost;
      if (processed_before[id] > 1) extra_processings += processed_before[id] - 1;
      // Processed before and drained again: its consumer died holding it.
      if (processed_before[id] != 0 && drained_mark[id] != 0) {
        ++extra_processings;
      }
    }
  }
  EXPECT_EQ(lost, 0u) << "acknowledged messages never delivered";
  EXPECT_EQ(sent, released + before->abandoned_messages + queued)
      << "released " << released << " abandoned "
      << before->abandoned_messages << " queued " << queued;
  // Every processing beyond the first is a redelivery.
  EXPECT_LE(extra_processings, after->redelivered_messages);
  EXPECT_GT(after->redelivered_messages, 0u);
  EXPECT_GT(external, 0);
  ::testing::Test::RecordProperty("sent", static_cast<int>(sent));
  ::testing::Test::RecordProperty(
      "redelivered", static_cast<int>(after->redelivered_messages));
  (void)drained_new;
}

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_QUEUE_RING_KILL_UTIL_H_
