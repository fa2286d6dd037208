// The ring kill scenarios, shared by ring_kill_test (100 kills, default
// suite) and ring_kill_stress_test (more, label "stress").
#ifndef SHMKIT_TESTS_QUEUE_RING_KILL_UTIL_H_
#define SHMKIT_TESTS_QUEUE_RING_KILL_UTIL_H_

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <optional>
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

// Producers killed between reserving a slot and publishing it, `kills`
// times, while `steady` live producers keep sending and `consumers` consume:
// every message of a live producer arrives once and in order, nothing of a
// killed one's last send arrives, and the ring counts exactly `kills`
// reclaimed slots.
inline void RunProducerKills(int kills, int steady, int consumers) {
  // A small ring wraps often, so killed reservations are met at every
  // position; check_us low so the test spends little time waiting.
  absl::StatusOr<std::unique_ptr<RingQueue>> opened =
      RingQueue::Open({.slots = 16,
                       .slot_bytes = 64,
                       .dead_owner_check = absl::Microseconds(200)});
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
}

// A consumer killed between claiming a slot and releasing it: the others
// go on, the producer reclaims that slot when it comes round to it, and
// exactly one message is lost (counted as abandoned).
inline void RunConsumerKill(int survivors) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened =
      RingQueue::Open({.slots = 8,
                       .slot_bytes = 64,
                       .dead_owner_check = absl::Microseconds(200)});
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  constexpr uint32_t kMinMessages = 10'000;
  constexpr uint32_t kMaxMessages = 1u << 20;
  constexpr uint32_t kVictimTakes = 50;
  // One mark per message, then the producer's count and the stop flag.
  absl::StatusOr<Segment> shared =
      Segment::Create({.bytes = kMaxMessages + 2 * sizeof(uint64_t)});
  ASSERT_TRUE(shared.ok());
  auto* marks = static_cast<uint8_t*>(shared->data());
  auto* sent = reinterpret_cast<uint64_t*>(marks + kMaxMessages);
  uint64_t* stop_flag = sent + 1;
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
      if (item.seq >= kMaxMessages || static_cast<int64_t>(item.seq) <= last) {
        return 12;
      }
      last = item.seq;
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
  EXPECT_EQ(stats->abandoned_messages, 1u);
  EXPECT_EQ(stats->reclaimed_slots, 0u);
  EXPECT_GE(*sent, kMinMessages);
  EXPECT_EQ(delivered + stats->abandoned_messages, *sent);
}

}  // namespace shmkit::testing

#endif  // SHMKIT_TESTS_QUEUE_RING_KILL_UTIL_H_
