// Stream-socket queues (unix, tcp) across processes: several peers at once,
// a sender killed in the middle of a frame, a listening handle inherited by
// a child, Remove() seen by blocked calls of other processes, and no
// SIGPIPE death. Each test runs on a unix path (or a private name) and on a
// free tcp loopback port.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "queue_test_util.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/stream_queue.h"
#include "stream_queue_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::Listener;
using ::shmkit::testing::Pattern;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::TempDir;
using ::shmkit::testing::WaitChild;

constexpr size_t kBig = size_t{1} << 30;

class StreamFork : public ::testing::TestWithParam<std::string> {
 protected:
  // A listener for the parameter: "unix" on a path in a fresh directory,
  // "tcp" on a free loopback port.
  std::unique_ptr<StreamQueue> Listen(StreamQueueOptions options = {}) {
    absl::StatusOr<std::unique_ptr<StreamQueue>> q =
        GetParam() == "tcp"
            ? StreamQueue::OpenTcp("127.0.0.1", 0, options)
            : StreamQueue::OpenUnix(absl::StrCat(dir_.path(), "/q.sock"),
                                    options);
    EXPECT_TRUE(q.ok()) << q.status();
    return q.ok() ? *std::move(q) : nullptr;
  }

  TempDir dir_;
};

// The payload of message `seq` of sender `sender`: both, then a pattern
// keyed by them, of a size that varies with seq.
std::string PeerMessage(uint32_t sender, uint32_t seq) {
  std::string s = Pattern(8 + (seq * 7919u) % 3000, sender * 100'003u + seq);
  std::memcpy(s.data(), &sender, 4);
  std::memcpy(s.data() + 4, &seq, 4);
  return s;
}

TEST_P(StreamFork, FivePeersInterleaveEveryMessageOnceInOrder) {
  std::unique_ptr<StreamQueue> q = Listen();
  ASSERT_NE(q, nullptr);
  constexpr uint32_t kPeers = 5;
  constexpr uint32_t kSenders = kPeers + 1;  // and the parent
  constexpr uint32_t kEach = 3000;
  // The parent has a connection before it forks; it keeps writing on it
  // while the children write on theirs (a child that wrote on the
  // inherited one would splice frames).
  ASSERT_TRUE(q->Send(PeerMessage(kPeers, 0), kPeers + 1).ok());
  const std::string connect = q->ConnectSpec();
  std::vector<pid_t> peers;
  for (uint32_t p = 0; p < kPeers; ++p) {
    peers.push_back(ForkChild([&, p] {
      Queue* out = q.get();
      std::unique_ptr<Queue> own;
      if (p + 1 < kPeers) {
        // As an unrelated process: drop what was inherited, open by name.
        if (!q->Close().ok()) return 1;
        absl::StatusOr<std::unique_ptr<Queue>> opened = OpenQueue(connect);
        if (!opened.ok()) return 2;
        own = *std::move(opened);
        out = own.get();
      }  // the last peer sends through the inherited listening handle
      for (uint32_t i = 0; i < kEach; ++i) {
        if (!out->Send(PeerMessage(p, i), p + 1).ok()) return 3;
      }
      return 0;
    }));
  }
  std::thread parent_sender([&] {
    for (uint32_t i = 1; i < kEach; ++i) {
      ASSERT_TRUE(q->Send(PeerMessage(kPeers, i), kPeers + 1).ok());
    }
  });
  std::vector<int64_t> last(kSenders, -1);
  for (uint32_t n = 0; n < kSenders * kEach; ++n) {
    absl::StatusOr<Message> m = q->ReceiveFor(kBig, absl::Seconds(60));
    ASSERT_TRUE(m.ok()) << n << ": " << m.status();
    ASSERT_GE(m->data.size(), 8u);
    uint32_t sender, seq;
    std::memcpy(&sender, m->data.data(), 4);
    std::memcpy(&seq, m->data.data() + 4, 4);
    ASSERT_LT(sender, kSenders);
    ASSERT_EQ(m->type, sender + 1);
    ASSERT_EQ(static_cast<int64_t>(seq), last[sender] + 1)
        << "sender " << sender << " out of order";
    ASSERT_TRUE(m->data == PeerMessage(sender, seq))
        << "message " << seq << " of sender " << sender << " is not intact";
    last[sender] = seq;
  }
  parent_sender.join();
  for (pid_t p : peers) EXPECT_TRUE(ExitedWith(p, 0));
  // The peers are gone; nothing else arrives.
  EXPECT_THAT(q->ReceiveFor(kBig, absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::StatusOr<QueueStats> stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->connections, 1u);  // the parent's own
  EXPECT_EQ(stats->partial_frames_discarded, 0u);
  EXPECT_EQ(stats->dropped_connections, 0u);
  EXPECT_EQ(stats->received, uint64_t{kSenders} * kEach);
  ASSERT_TRUE(q->Remove().ok());
}

TEST_P(StreamFork, ASenderKilledMidFrameNeverYieldsATornMessage) {
  std::unique_ptr<StreamQueue> q = Listen({.max_message_bytes = 64 << 20});
  ASSERT_NE(q, nullptr);
  const std::string connect = q->ConnectSpec();
  // The victim starts a message larger than every buffer on the way and
  // blocks in the middle of it.
  SyncPipe started;
  const pid_t victim = ForkChild([&] {
    if (!q->Close().ok()) return 1;
    absl::StatusOr<std::unique_ptr<Queue>> mine = OpenQueue(connect);
    if (!mine.ok()) return 2;
    const std::string huge = Pattern(32 << 20, 5);
    started.Signal();
    (void)(*mine)->Send(huge, 99);
    return 3;  // not reached: killed first
  });
  ASSERT_TRUE(started.Wait().has_value());
  absl::SleepFor(absl::Milliseconds(100));
  // The listener takes in what is there: part of the frame.
  EXPECT_THAT(q->TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
  kill(victim, SIGKILL);
  std::optional<::shmkit::testing::ChildExit> end = WaitChild(victim);
  ASSERT_TRUE(end.has_value() && end->signaled) << "the victim finished";

  // Another peer is not disturbed.
  const pid_t good = ForkChild([&] {
    if (!q->Close().ok()) return 1;
    absl::StatusOr<std::unique_ptr<Queue>> mine = OpenQueue(connect);
    if (!mine.ok()) return 2;
    for (int i = 0; i < 200; ++i) {
      if (!(*mine)->Send(absl::StrCat("good ", i), 1).ok()) return 3;
    }
    return 0;
  });
  for (int i = 0; i < 200; ++i) {
    absl::StatusOr<Message> m = q->ReceiveFor(kBig, absl::Seconds(30));
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_EQ(m->type, 1) << "a piece of the killed sender's message";
    EXPECT_EQ(m->data, absl::StrCat("good ", i));
  }
  EXPECT_TRUE(ExitedWith(good, 0));
  EXPECT_THAT(q->ReceiveFor(kBig, absl::Milliseconds(200)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::StatusOr<QueueStats> stats = q->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->partial_frames_discarded, 1u);
  EXPECT_EQ(stats->connections, 0u);
  ASSERT_TRUE(q->Remove().ok());
}

TEST_P(StreamFork, AChildThatInheritsTheListenerReceivesWhatItAccepts) {
  std::unique_ptr<StreamQueue> q = Listen();
  ASSERT_NE(q, nullptr);
  // The parent's own connection, accepted by the parent, with a message
  // still unread.
  ASSERT_TRUE(q->Send("pre 1").ok());
  ASSERT_TRUE(q->Send("pre 2").ok());
  absl::StatusOr<Message> m = q->ReceiveFor(kBig, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->data, "pre 1");
  const std::string connect = q->ConnectSpec();
  SyncPipe receiving;
  const pid_t receiver = ForkChild([&] {
    receiving.Signal();
    for (int i = 0; i < 50; ++i) {
      absl::StatusOr<Message> got = q->ReceiveFor(kBig, absl::Seconds(30));
      if (!got.ok()) return 1;
      if (got->data != absl::StrCat("s ", i)) return 2;  // never "pre 2"
    }
    return 0;
  });
  ASSERT_TRUE(receiving.Wait().has_value());
  const pid_t sender = ForkChild([&] {
    if (!q->Close().ok()) return 1;
    absl::StatusOr<std::unique_ptr<Queue>> mine = OpenQueue(connect);
    if (!mine.ok()) return 2;
    for (int i = 0; i < 50; ++i) {
      if (!(*mine)->Send(absl::StrCat("s ", i)).ok()) return 3;
    }
    return 0;
  });
  EXPECT_TRUE(ExitedWith(sender, 0));
  EXPECT_TRUE(ExitedWith(receiver, 0));
  // The parent's connection stayed the parent's, and still works.
  m = q->ReceiveFor(kBig, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "pre 2");
  ASSERT_TRUE(q->Send("post").ok());
  m = q->ReceiveFor(kBig, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "post");
  ASSERT_TRUE(q->Remove().ok());
}

TEST_P(StreamFork, RemoveWakesABlockedSenderInAnotherProcess) {
  std::unique_ptr<StreamQueue> q = Listen({.window_bytes = 4096});
  ASSERT_NE(q, nullptr);
  SyncPipe full;
  const pid_t sender = ForkChild([&] {
    if (!q->SetRole(QueueRole::kSender).ok()) return 1;
    const std::string payload(500, 'p');
    while (q->TrySend(payload).ok()) {
    }
    full.Signal();
    const absl::Status st = q->Send(payload);  // blocks: nobody reads
    return st.code() == absl::StatusCode::kFailedPrecondition ? 0 : 2;
  });
  ASSERT_TRUE(full.Wait().has_value());
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(q->Remove().ok());
  EXPECT_TRUE(ExitedWith(sender, 0, absl::Seconds(10)));
}

TEST_P(StreamFork, RemoveWakesABlockedReceiverInAnotherProcess) {
  std::unique_ptr<StreamQueue> q = Listen();
  ASSERT_NE(q, nullptr);
  SyncPipe waiting;
  const pid_t receiver = ForkChild([&] {
    waiting.Signal();
    const absl::Status st = q->Receive(kBig).status();  // nothing comes
    return st.code() == absl::StatusCode::kFailedPrecondition ? 0 : 1;
  });
  ASSERT_TRUE(waiting.Wait().has_value());
  absl::SleepFor(absl::Milliseconds(50));
  ASSERT_TRUE(q->Remove().ok());
  EXPECT_TRUE(ExitedWith(receiver, 0, absl::Seconds(10)));
  struct stat st;
  EXPECT_NE(lstat(absl::StrCat(dir_.path(), "/q.sock").c_str(), &st), 0);
}

TEST_P(StreamFork, AListenerGoneIsAnErrorNotASigpipeDeath) {
  const pid_t child = ForkChild([&] {
    signal(SIGPIPE, SIG_DFL);  // the default action would kill us
    std::unique_ptr<StreamQueue> q = Listen();
    if (q == nullptr) return 1;
    absl::StatusOr<std::unique_ptr<Queue>> sender = OpenQueue(q->ConnectSpec());
    if (!sender.ok()) return 2;
    if (!(*sender)->Send("one").ok()) return 3;
    if (!q->ReceiveFor(kBig, absl::Seconds(10)).ok()) return 4;
    if (!q->Remove().ok() || !q->Close().ok()) return 5;
    for (int i = 0; i < 3; ++i) {
      const absl::Status st = (*sender)->Send(std::string(100'000, 'x'));
      if (st.code() != absl::StatusCode::kFailedPrecondition) return 6;
    }
    return 0;
  });
  EXPECT_TRUE(ExitedWith(child, 0));
}

INSTANTIATE_TEST_SUITE_P(Schemes, StreamFork, ::testing::Values("unix", "tcp"),
                         [](const ::testing::TestParamInfo<std::string>& p) {
                           return p.param;
                         });

}  // namespace
}  // namespace shmkit
