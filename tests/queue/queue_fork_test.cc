// Queue tests that fork: many producers and consumers in separate
// processes, peers that go away, orphaned anonymous objects, FIFOs opened
// by processes that did not inherit them.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/msg.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "queue_test_util.h"
#include "shmkit/ipc/kernel_limits.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/fifo_queue.h"
#include "shmkit/ipc/queue/pipe_queue.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/queue/socketpair_queue.h"
#include "shmkit/ipc/queue/sysv_queue.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::Pattern;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::WaitChild;

constexpr size_t kBig = size_t{1} << 30;

// ---- 4 producers x 4 consumers ------------------------------------------

constexpr int kProducers = 4;
constexpr int kConsumers = 4;
constexpr uint32_t kPerProducer = 100'000;
constexpr int64_t kStopType = 1000;

struct Item {
  uint32_t producer;
  uint32_t seq;
};

// Consumer exit codes.
enum : int {
  kOk = 0,
  kReceiveFailed = 10,
  kBadMessage = 11,
  kOutOfOrder = 12,
  kDuplicate = 13,
};

template <typename Backend>
class QueueFork : public ::testing::Test {};
TYPED_TEST_SUITE(QueueFork, ::shmkit::testing::AllBackends,
                 ::shmkit::testing::BackendNames);

TYPED_TEST(QueueFork, FourProducersFourConsumersLoseAndDuplicateNothing) {
  absl::StatusOr<std::unique_ptr<Queue>> opened = OpenQueue(TypeParam::kSpec);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Queue& q = **opened;
  // One byte per message: set by whoever received it.
  absl::StatusOr<Segment> seen =
      Segment::Create({.bytes = size_t{kProducers} * kPerProducer});
  ASSERT_TRUE(seen.ok()) << seen.status();
  auto* marks = static_cast<uint8_t*>(seen->data());

  // A consumer's loop: until a stop message, or `count` messages when
  // `count` is not 0. Returns a consumer exit code.
  auto consume = [&](uint64_t count) {
    std::vector<int64_t> last(kProducers, -1);
    Message m;
    for (uint64_t n = 0; count == 0 || n < count; ++n) {
      if (!q.ReceiveInto(m, kBig, WaitMode::For(absl::Seconds(60))).ok()) {
        return kReceiveFailed;
      }
      if (m.type == kStopType) return kOk;
      Item item;
      if (m.data.size() != sizeof(item)) return kBadMessage;
      std::memcpy(&item, m.data.data(), sizeof(item));
      if (item.producer >= kProducers || item.seq >= kPerProducer ||
          m.type != item.producer + 1) {
        return kBadMessage;
      }
      // Per producer, what one consumer sees is in send order.
      if (static_cast<int64_t>(item.seq) <= last[item.producer]) {
        return kOutOfOrder;
      }
      last[item.producer] = item.seq;
      std::atomic_ref<uint8_t> mark(
          marks[size_t{item.producer} * kPerProducer + item.seq]);
      if (mark.exchange(1) != 0) return kDuplicate;
    }
    return kOk;
  };
  // Connection-based backends (unix, tcp; shared_channel false) give each
  // producer its own connection, read by the one process that accepted it,
  // with no order between producers: a stop message sent once the
  // producers are done could overtake their last messages, and could not
  // reach consumers that did not accept the parent's connection. There the
  // listening parent is the one consumer and counts the messages instead.
  const bool shared = q.Capabilities().shared_channel;
  std::vector<pid_t> consumers;
  for (int c = 0; shared && c < kConsumers; ++c) {
    consumers.push_back(ForkChild([&] {
      if (!q.SetRole(QueueRole::kReceiver).ok()) return kReceiveFailed;
      return consume(0);
    }));
  }
  std::vector<pid_t> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.push_back(ForkChild([&, p] {
      if (!q.SetRole(QueueRole::kSender).ok()) return 1;
      for (uint32_t i = 0; i < kPerProducer; ++i) {
        const Item item{static_cast<uint32_t>(p), i};
        absl::Status st =
            q.Send(absl::string_view(reinterpret_cast<const char*>(&item),
                                     sizeof(item)),
                   p + 1);
        if (!st.ok()) return 2;
      }
      return 0;
    }));
  }
  if (!shared) {
    EXPECT_EQ(consume(uint64_t{kProducers} * kPerProducer), kOk);
  }
  for (pid_t p : producers) {
    EXPECT_TRUE(ExitedWith(p, 0, absl::Seconds(120)));
  }
  for (int c = 0; shared && c < kConsumers; ++c) {
    ASSERT_TRUE(q.Send("stop", kStopType).ok());
  }
  for (pid_t c : consumers) {
    EXPECT_TRUE(ExitedWith(c, kOk, absl::Seconds(120)));
  }
  size_t missing = 0;
  for (size_t i = 0; i < size_t{kProducers} * kPerProducer; ++i) {
    if (marks[i] != 1) ++missing;
  }
  EXPECT_EQ(missing, 0u) << "messages never received";
  EXPECT_THAT(q.TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

// ---- pipe: writers of frames larger than PIPE_BUF -------------------------

// A frame: writer, seq, size, then a pattern keyed by all three.
std::string LargeFrame(uint32_t writer, uint32_t seq, size_t size) {
  std::string s = Pattern(size, writer * 100'003u + seq);
  const uint32_t head[3] = {writer, seq, static_cast<uint32_t>(size)};
  std::memcpy(s.data(), head, sizeof(head));
  return s;
}

TEST(PipeFork, EightWritersOfLargeFramesNeverInterleave) {
  absl::StatusOr<std::unique_ptr<PipeQueue>> q = PipeQueue::Create();
  ASSERT_TRUE(q.ok()) << q.status();
  const size_t pipe_buf =
      static_cast<size_t>(fpathconf((*q)->SendFd(), _PC_PIPE_BUF));
  constexpr int kWriters = 8;
  constexpr uint32_t kFrames = 60;
  const size_t max = (*q)->Capabilities().max_message_bytes;
  std::vector<pid_t> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.push_back(ForkChild([&, w] {
      if (!(*q)->SetRole(QueueRole::kSender).ok()) return 1;
      for (uint32_t i = 0; i < kFrames; ++i) {
        // Sizes from just above PIPE_BUF up to the maximum.
        const size_t size =
            pipe_buf + 1 +
            (size_t{i} * 7919 + size_t(w) * 104729) % (max - pipe_buf - 1);
        if (!(*q)->Send(LargeFrame(w, i, size), w + 1).ok()) return 2;
      }
      return 0;
    }));
  }
  ASSERT_TRUE((*q)->SetRole(QueueRole::kReceiver).ok());
  std::vector<int64_t> last(kWriters, -1);
  for (uint32_t n = 0; n < kWriters * kFrames; ++n) {
    absl::StatusOr<Message> m = (*q)->ReceiveFor(kBig, absl::Seconds(60));
    ASSERT_TRUE(m.ok()) << m.status();
    ASSERT_GT(m->data.size(), pipe_buf);
    uint32_t head[3];
    std::memcpy(head, m->data.data(), sizeof(head));
    ASSERT_LT(head[0], static_cast<uint32_t>(kWriters));
    ASSERT_EQ(head[2], m->data.size());
    ASSERT_EQ(m->type, head[0] + 1);
    ASSERT_TRUE(m->data == LargeFrame(head[0], head[1], head[2]))
        << "frame " << head[1] << " of writer " << head[0] << " is not intact";
    ASSERT_EQ(static_cast<int64_t>(head[1]), last[head[0]] + 1);
    last[head[0]] = head[1];
  }
  for (pid_t w : writers) EXPECT_TRUE(ExitedWith(w, 0));
  // Every writer is gone: end of stream.
  EXPECT_THAT((*q)->Receive(kBig),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST(PipeFork, AWriterKilledMidFrameBreaksTheQueueInsteadOfSplicing) {
  absl::StatusOr<std::unique_ptr<PipeQueue>> q =
      PipeQueue::Create({.max_message_bytes = 256 * 1024});
  ASSERT_TRUE(q.ok()) << q.status();
  // Larger than the pipe holds: with nobody reading, the writer blocks in
  // the middle of the frame, holding the writer lock.
  const pid_t writer = ForkChild([&] {
    (void)(*q)->Send(Pattern(200'000, 1));
    return 1;
  });
  // Blocked writing: the pipe is full, the frame half written.
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(writer));
  kill(writer, SIGKILL);
  ASSERT_TRUE(WaitChild(writer).has_value());
  // A reader gets the start of the frame, then learns the writer died.
  EXPECT_THAT((*q)->ReceiveFor(kBig, absl::Seconds(5)),
              StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT((*q)->TrySend("x"), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT((*q)->TryReceive(kBig), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(PipeFork, AWriterKilledMidFrameIsNoticedByTheNextWriter) {
  absl::StatusOr<std::unique_ptr<PipeQueue>> q =
      PipeQueue::Create({.max_message_bytes = 256 * 1024});
  ASSERT_TRUE(q.ok()) << q.status();
  const pid_t writer = ForkChild([&] {
    (void)(*q)->Send(Pattern(200'000, 1));
    return 1;
  });
  // Blocked writing: the pipe is full, the frame half written.
  ASSERT_TRUE(::shmkit::testing::WaitUntilAsleep(writer));
  kill(writer, SIGKILL);
  ASSERT_TRUE(WaitChild(writer).has_value());
  // The next writer takes the lock over from the dead one and refuses to
  // append to a torn frame.
  EXPECT_THAT((*q)->SendFor("after", absl::Seconds(5)),
              StatusIs(absl::StatusCode::kDataLoss));
}

// ---- peers that go away ---------------------------------------------------

TEST(PipeFork, ReaderGoneIsAnErrorNotASigpipeDeath) {
  for (const char* spec : {"pipe", "fifo", "socketpair"}) {
    const pid_t child = ForkChild([&] {
      signal(SIGPIPE, SIG_DFL);  // the default action would kill us
      absl::StatusOr<std::unique_ptr<Queue>> q = OpenQueue(spec);
      if (!q.ok()) return 1;
      SyncPipe reader_left;
      const pid_t reader = ForkChild([&] {
        if (!(*q)->SetRole(QueueRole::kReceiver).ok()) return 1;
        absl::StatusOr<Message> m = (*q)->Receive(kBig);
        return m.ok() && m->data == "one" ? 0 : 2;
      });
      if (!(*q)->SetRole(QueueRole::kSender).ok()) return 3;
      if (!(*q)->Send("one").ok()) return 4;
      if (!ExitedWith(reader, 0)) return 5;
      const absl::Status st = (*q)->Send("two");
      return st.code() == absl::StatusCode::kFailedPrecondition ? 0 : 6;
    });
    EXPECT_TRUE(ExitedWith(child, 0)) << spec;
  }
}

TEST(PipeFork, WithoutIgnoreSigpipeCreateRefusesADefaultSigpipe) {
  const pid_t child = ForkChild([] {
    signal(SIGPIPE, SIG_DFL);
    PipeQueueOptions options;
    options.ignore_sigpipe = false;
    absl::StatusOr<std::unique_ptr<PipeQueue>> q = PipeQueue::Create(options);
    if (q.status().code() != absl::StatusCode::kFailedPrecondition) return 1;
    signal(SIGPIPE, SIG_IGN);
    q = PipeQueue::Create(options);
    return q.ok() ? 0 : 2;
  });
  EXPECT_TRUE(ExitedWith(child, 0));
}

TEST(SocketPairFork, PeersTalkBothWays) {
  absl::StatusOr<std::unique_ptr<SocketPairQueue>> q =
      SocketPairQueue::Create();
  ASSERT_TRUE(q.ok()) << q.status();
  const pid_t child = ForkChild([&] {
    if (!(*q)->SetRole(QueueRole::kPeerB).ok()) return 1;
    for (int i = 0; i < 100; ++i) {
      absl::StatusOr<Message> m = (*q)->Receive(kBig);
      if (!m.ok() || m->data != absl::StrCat("ping ", i)) return 2;
      if (!(*q)->Send(absl::StrCat("pong ", i), 2).ok()) return 3;
    }
    return 0;
  });
  ASSERT_TRUE((*q)->SetRole(QueueRole::kPeerA).ok());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE((*q)->Send(absl::StrCat("ping ", i), 1).ok());
    absl::StatusOr<Message> m = (*q)->ReceiveFor(kBig, absl::Seconds(10));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, absl::StrCat("pong ", i));
    EXPECT_EQ(m->type, 2);
  }
  EXPECT_TRUE(ExitedWith(child, 0));
  // The other peer is gone.
  EXPECT_THAT((*q)->Receive(kBig),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*q)->Send("anyone?"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

// ---- unrelated processes --------------------------------------------------

TEST(FifoFork, AProcessThatOpensThePathTalksToTheCreator) {
  char dir_template[] = "/tmp/shmkit-fifo-test-XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = absl::StrCat(dir_template, "/q");
  absl::StatusOr<std::unique_ptr<FifoQueue>> q =
      FifoQueue::Open({.path = path, .open = OpenMode::kCreate});
  ASSERT_TRUE(q.ok()) << q.status();
  // The child opens the FIFO by path, as an unrelated process would; the
  // inherited handle is closed first so that it holds nothing of ours.
  const pid_t child = ForkChild([&] {
    if (!(*q)->Close().ok()) return 1;
    absl::StatusOr<std::unique_ptr<Queue>> mine =
        OpenQueue(absl::StrCat("fifo:path=", path, ",open=attach,role=sender"));
    if (!mine.ok()) return 2;
    for (int i = 0; i < 50; ++i) {
      if (!(*mine)->Send(Pattern(5000, i), i + 1).ok()) return 3;
    }
    return 0;
  });
  for (int i = 0; i < 50; ++i) {
    absl::StatusOr<Message> m = (*q)->ReceiveFor(kBig, absl::Seconds(10));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_TRUE(m->data == Pattern(5000, i));
  }
  EXPECT_TRUE(ExitedWith(child, 0));
  ASSERT_TRUE((*q)->Remove().ok());
  struct stat st;
  EXPECT_NE(lstat(path.c_str(), &st), 0) << "Remove() left the FIFO";
  ASSERT_TRUE((*q)->Close().ok());
  EXPECT_EQ(rmdir(dir_template), 0);
}

TEST(RingFork, AProcessThatAttachesTheKeyTalksToTheCreator) {
  const IpcKey key = ::shmkit::testing::UniqueKey();
  const std::string spec =
      absl::StrCat("ring:key=", key.value(), ",slots=8,slot_bytes=64");
  absl::StatusOr<std::unique_ptr<Queue>> q =
      OpenQueue(absl::StrCat(spec, ",open=create"));
  ASSERT_TRUE(q.ok()) << q.status();
  const pid_t child = ForkChild([&] {
    if (!(*q)->Close().ok()) return 1;
    absl::StatusOr<std::unique_ptr<Queue>> mine =
        OpenQueue(absl::StrCat("ring:key=", key.value(), ",open=attach"));
    if (!mine.ok()) return 2;
    if ((*mine)->Capabilities().max_message_bytes != 64) return 3;
    for (int i = 0; i < 1000; ++i) {
      if (!(*mine)->Send(absl::StrCat(i)).ok()) return 4;
    }
    return 0;
  });
  for (int i = 0; i < 1000; ++i) {
    absl::StatusOr<Message> m = (*q)->ReceiveFor(kBig, absl::Seconds(10));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, absl::StrCat(i));
  }
  EXPECT_TRUE(ExitedWith(child, 0));
  ASSERT_TRUE((*q)->Remove().ok());
}

// ---- nothing leaks when every process is killed ---------------------------

TEST(OrphanFork, KilledHoldersLeaveNoPrivateQueueOrFifoBehind) {
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const pid_t holder = ForkChild([&] {
    absl::StatusOr<std::unique_ptr<SysvQueue>> sysv = SysvQueue::Open();
    absl::StatusOr<std::unique_ptr<FifoQueue>> fifo = FifoQueue::Open({});
    if (!sysv.ok() || !fifo.ok()) return 1;
    // A grandchild holds them too: both must die before the cleanup.
    const pid_t grandchild = ForkChild([] {
      pause();
      return 0;
    });
    const int id = (*sysv)->id();
    std::string line = absl::StrCat(id, " ", grandchild, " ", (*fifo)->path());
    line.resize(512, '\0');
    if (write(report[1], line.data(), line.size()) != 512) return 2;
    pause();
    return 0;
  });
  char buffer[512];
  ASSERT_EQ(read(report[0], buffer, sizeof(buffer)), 512);
  close(report[0]);
  close(report[1]);
  int id = -1, grandchild = -1;
  char path[400] = {0};
  ASSERT_EQ(sscanf(buffer, "%d %d %399s", &id, &grandchild, path), 3);
  kill(holder, SIGKILL);
  ASSERT_TRUE(WaitChild(holder).has_value());
  // The grandchild still holds them: nothing is removed yet.
  absl::SleepFor(absl::Milliseconds(100));
  msqid_ds ds;
  EXPECT_EQ(msgctl(id, IPC_STAT, &ds), 0) << "removed while still held";
  kill(grandchild, SIGKILL);  // reparented to init, which reaps it
  const absl::Time start = absl::Now();
  bool gone = false;
  struct stat st;
  while (absl::Now() - start < absl::Seconds(10)) {
    const bool queue_gone = msgctl(id, IPC_STAT, &ds) == -1;
    const bool fifo_gone = lstat(path, &st) == -1;
    if (queue_gone && fifo_gone) {
      gone = true;
      break;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_TRUE(gone) << "queue id " << id << " or FIFO " << path
                    << " survived every holder";
  const std::string dir(path, strrchr(path, '/') - path);
  EXPECT_NE(lstat(dir.c_str(), &st), 0) << dir << " survived";
}

// ---- sysv: raising msg_qbytes without the capability ----------------------

TEST(SysvFork, RaisingTheByteLimitWithoutCapabilityNamesMsgmnb) {
  absl::StatusOr<uint64_t> msgmnb = ReadKernelLimit("msgmnb");
  ASSERT_TRUE(msgmnb.ok());
  const pid_t child = ForkChild([&] {
    // Drop CAP_SYS_RESOURCE from the effective set.
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (syscall(SYS_capget, &header, data) != 0) return 1;
    data[CAP_SYS_RESOURCE / 32].effective &= ~(1u << (CAP_SYS_RESOURCE % 32));
    if (syscall(SYS_capset, &header, data) != 0) return 2;
    absl::StatusOr<std::unique_ptr<SysvQueue>> q =
        SysvQueue::Open({.queue_bytes = *msgmnb * 2});
    if (q.status().code() != absl::StatusCode::kPermissionDenied) return 3;
    if (q.status().message().find("msgmnb") == absl::string_view::npos) {
      return 4;
    }
    // At or below msgmnb the owner may set it.
    q = SysvQueue::Open({.queue_bytes = *msgmnb / 2});
    if (!q.ok()) return 5;
    absl::StatusOr<QueueStats> stats = (*q)->Stats();
    if (!stats.ok() || stats->capacity_bytes != *msgmnb / 2) return 6;
    return 0;
  });
  EXPECT_TRUE(ExitedWith(child, 0));
}

}  // namespace
}  // namespace shmkit
