// What each backend promises beyond the common interface: sysv limits,
// stats and lifetime; keyed rings; FIFO path safety; pipe framing.
#include <fcntl.h>
#include <linux/capability.h>
#include <sys/msg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "queue_test_util.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/kernel_limits.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/fifo_queue.h"
#include "shmkit/ipc/queue/pipe_queue.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/ipc/queue/socketpair_queue.h"
#include "shmkit/ipc/queue/sysv_queue.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::Pattern;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::UniqueKey;

constexpr size_t kBig = size_t{1} << 30;

// ---- sysv -------------------------------------------------------------

TEST(SysvQueue, MaxMessageIsReadFromTheKernel) {
  absl::StatusOr<uint64_t> msgmax = ReadKernelLimit("msgmax");
  absl::StatusOr<uint64_t> msgmnb = ReadKernelLimit("msgmnb");
  ASSERT_TRUE(msgmax.ok() && msgmnb.ok());
  absl::StatusOr<std::unique_ptr<SysvQueue>> q = SysvQueue::Open();
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->Capabilities().max_message_bytes, std::min(*msgmax, *msgmnb));
  absl::StatusOr<QueueStats> stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->capacity_bytes, *msgmnb);
  // Too long: the error names the kernel limit and its value.
  if (*msgmax <= *msgmnb) {
    EXPECT_THAT((*q)->Send(std::string(*msgmax + 1, 'x')),
                StatusIsWith(absl::StatusCode::kInvalidArgument,
                             absl::StrCat("kernel.msgmax = ", *msgmax)));
  }
}

TEST(SysvQueue, QueueBytesBoundsTheLargestMessage) {
  absl::StatusOr<std::unique_ptr<SysvQueue>> q =
      SysvQueue::Open({.queue_bytes = 1000});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->Capabilities().max_message_bytes, 1000u);
  EXPECT_THAT(
      (*q)->Send(std::string(1001, 'x')),
      StatusIsWith(absl::StatusCode::kInvalidArgument, "msg_qbytes is 1000"));
  EXPECT_TRUE((*q)->Send(std::string(1000, 'x')).ok());
  // Raised later (by anyone): the next larger message re-reads the limit.
  absl::StatusOr<std::unique_ptr<SysvQueue>> other =
      SysvQueue::OpenId((*q)->id());
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->SetQueueBytes(4000).ok());
  EXPECT_TRUE((*q)->Send(std::string(2000, 'y')).ok());
  EXPECT_EQ((*q)->Capabilities().max_message_bytes, 4000u);
}

bool HaveCapSysResource() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2] = {};
  if (syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_SYS_RESOURCE / 32].effective &
          (1u << (CAP_SYS_RESOURCE % 32))) != 0;
}

TEST(SysvQueue, RaisingTheByteLimitAboveMsgmnbNeedsTheCapability) {
  absl::StatusOr<uint64_t> msgmnb = ReadKernelLimit("msgmnb");
  ASSERT_TRUE(msgmnb.ok());
  absl::StatusOr<std::unique_ptr<Queue>> q =
      OpenQueue(absl::StrCat("sysv:private,queue_bytes=", *msgmnb * 4));
  if (!HaveCapSysResource()) {
    EXPECT_THAT(q, StatusIsWith(absl::StatusCode::kPermissionDenied,
                                absl::StrCat("kernel.msgmnb = ", *msgmnb)));
    return;
  }
  ASSERT_TRUE(q.ok()) << q.status();
  absl::StatusOr<QueueStats> stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->capacity_bytes, *msgmnb * 4);
}

TEST(SysvQueue, KeyedQueuesCreateAttachAndNeverCollide) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<std::unique_ptr<SysvQueue>> created =
      SysvQueue::Open({.key = key, .open = OpenMode::kCreate});
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_TRUE((*created)->created());
  EXPECT_TRUE((*created)->Capabilities().attachable);
  EXPECT_THAT(SysvQueue::Open({.key = key, .open = OpenMode::kCreate}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(SysvQueue::Open({.key = key, .mode = 0640}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "mode"));
  absl::StatusOr<std::unique_ptr<Queue>> attached =
      OpenQueue(absl::StrCat("sysv:key=", key.ToString(), ",open=attach"));
  ASSERT_TRUE(attached.ok()) << attached.status();
  ASSERT_TRUE((*created)->Send("via key", 5).ok());
  absl::StatusOr<Message> m = (*attached)->TryReceive(kBig);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "via key");
  // Closing a keyed queue does not remove it.
  ASSERT_TRUE((*attached)->Close().ok());
  ASSERT_TRUE((*created)->Close().ok());
  attached =
      OpenQueue(absl::StrCat("sysv:key=", key.ToString(), ",open=attach"));
  ASSERT_TRUE(attached.ok()) << attached.status();
  ASSERT_TRUE((*attached)->Remove().ok());
  EXPECT_THAT(SysvQueue::Open({.key = key, .open = OpenMode::kAttach}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(SysvQueue, StatsComeFromIpcStat) {
  absl::StatusOr<std::unique_ptr<SysvQueue>> q = SysvQueue::Open();
  ASSERT_TRUE(q.ok());
  ASSERT_TRUE((*q)->Send("abc").ok());
  ASSERT_TRUE((*q)->Send("defgh").ok());
  absl::StatusOr<QueueStats> stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->messages, 2u);
  EXPECT_EQ(stats->bytes, 8u);
  EXPECT_EQ(stats->last_sender_pid, getpid());
  EXPECT_EQ(stats->last_receiver_pid, 0);
  EXPECT_NE(stats->last_send, absl::InfinitePast());
  ASSERT_TRUE((*q)->Receive(kBig).ok());
  stats = (*q)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->last_receiver_pid, getpid());
}

TEST(SysvQueue, ClosingThePrivateQueueInItsCreatorRemovesIt) {
  absl::StatusOr<std::unique_ptr<SysvQueue>> q = SysvQueue::Open();
  ASSERT_TRUE(q.ok());
  const int id = (*q)->id();
  msqid_ds ds;
  ASSERT_EQ(msgctl(id, IPC_STAT, &ds), 0);
  ASSERT_TRUE((*q)->Close().ok());
  EXPECT_EQ(msgctl(id, IPC_STAT, &ds), -1);
  // A handle that did not create it (here: by id) only lets go.
  q = SysvQueue::Open();
  ASSERT_TRUE(q.ok());
  absl::StatusOr<std::unique_ptr<SysvQueue>> other =
      SysvQueue::OpenId((*q)->id());
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE((*other)->Close().ok());
  EXPECT_EQ(msgctl((*q)->id(), IPC_STAT, &ds), 0);
}

// ---- ring -------------------------------------------------------------

TEST(RingQueue, GeometryIsCheckedAndKeptByAttachers) {
  EXPECT_THAT(RingQueue::Open({.slots = 12}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RingQueue::Open({.slots = 1}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RingQueue::Open({.registry_slots = 70000}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(RingQueue::Open({.open = OpenMode::kAttach}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  const IpcKey key = UniqueKey();
  absl::StatusOr<std::unique_ptr<RingQueue>> created = RingQueue::Open(
      {.slots = 16, .slot_bytes = 100, .key = key, .open = OpenMode::kCreate});
  ASSERT_TRUE(created.ok()) << created.status();
  // An attacher's own geometry is ignored: the creator's holds.
  absl::StatusOr<std::unique_ptr<RingQueue>> attached =
      RingQueue::Open({.slots = 4, .slot_bytes = 8, .key = key});
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_FALSE((*attached)->created());
  EXPECT_EQ((*attached)->slots(), 16u);
  EXPECT_EQ((*attached)->Capabilities().max_message_bytes, 100u);
  ASSERT_TRUE((*attached)->Send(std::string(100, 'a')).ok());
  absl::StatusOr<Message> m = (*created)->TryReceive(kBig);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->data.size(), 100u);
  EXPECT_THAT(RingQueue::Open({.key = key, .open = OpenMode::kCreate}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  EXPECT_THAT(RingQueue::Open({.key = key, .mode = 0640}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  ASSERT_TRUE((*created)->Remove().ok());
  // The other handle sees the removal.
  EXPECT_THAT((*attached)->TrySend("x"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(RingQueue::Open({.key = key, .open = OpenMode::kAttach}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(RingQueue, ACallbackThatThrowsLeavesNoClaimBehind) {
  absl::StatusOr<std::unique_ptr<RingQueue>> opened =
      RingQueue::Open({.slots = 2, .slot_bytes = 16});
  ASSERT_TRUE(opened.ok()) << opened.status();
  RingQueue& q = **opened;
  ASSERT_TRUE(q.Send("first").ok());
  Message m;
  auto throws = [](const Message&) -> absl::Status {
    throw std::runtime_error("the callback failed");
  };
  EXPECT_THROW(
      (void)q.ReceiveAndProcess(m, 16, WaitMode::None(), throws),
      std::runtime_error);
  EXPECT_EQ(m.data, "first");
  // Released and counted, as if the callback had returned an error: the
  // ring is empty, this process pins no registry slot, and the slot the
  // message held takes new messages (two rounds of a two-slot ring).
  absl::StatusOr<QueueStats> stats = q.Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->messages, 0u);
  EXPECT_EQ(stats->received, 1u);
  EXPECT_EQ(q.registry()->Stats().pinned, 0u);
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(q.TrySend(absl::StrCat("m", i)).ok()) << i;
    absl::StatusOr<Message> got = q.TryReceive(16);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->data, absl::StrCat("m", i));
  }
}

TEST(RingQueue, RefusesASegmentOfAnotherKind) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<AtomicCounter> counter = AtomicCounter::Create({.key = key});
  ASSERT_TRUE(counter.ok());
  EXPECT_THAT(
      RingQueue::Open({.key = key, .open = OpenMode::kAttach}),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "atomic-counter"));
  ASSERT_TRUE(counter->Remove().ok());
}

TEST(RingQueue, ClosingThePrivateRingInItsCreatorRemovesItForAll) {
  absl::StatusOr<std::unique_ptr<RingQueue>> q = RingQueue::Open({.slots = 4});
  ASSERT_TRUE(q.ok());
  EXPECT_FALSE((*q)->Capabilities().attachable);
  EXPECT_EQ((*q)->segment()->Stat()->marked_for_removal, true);
  ASSERT_TRUE((*q)->Close().ok());
  EXPECT_EQ((*q)->segment(), nullptr);
}

// ---- FIFO -------------------------------------------------------------

class FifoQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(mkdtemp(dir_), nullptr);
    path_ = absl::StrCat(dir_, "/q");
  }
  void TearDown() override {
    unlink(path_.c_str());
    unlink(absl::StrCat(dir_, "/link").c_str());
    rmdir(absl::StrCat(dir_, "/sub").c_str());
    rmdir(dir_);
  }
  char dir_[64] = "/tmp/shmkit-fifo-test-XXXXXX";
  std::string path_;
};

TEST_F(FifoQueueTest, NamedFifoPersistsUntilRemove) {
  absl::StatusOr<std::unique_ptr<FifoQueue>> q =
      FifoQueue::Open({.path = path_});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_TRUE((*q)->created());
  EXPECT_EQ((*q)->path(), path_);
  struct stat st;
  ASSERT_EQ(lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second handle by path (as an unrelated process would).
  absl::StatusOr<std::unique_ptr<Queue>> other =
      OpenQueue(absl::StrCat("fifo:path=", path_, ",open=attach"));
  ASSERT_TRUE(other.ok()) << other.status();
  ASSERT_TRUE((*other)->Send(Pattern(9000, 1), 4).ok());
  absl::StatusOr<Message> m = (*q)->TryReceive(kBig);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->data == Pattern(9000, 1));
  EXPECT_EQ(m->type, 4);
  ASSERT_TRUE((*other)->Close().ok());
  ASSERT_TRUE((*q)->Close().ok());
  EXPECT_EQ(lstat(path_.c_str(), &st), 0) << "Close() removed a named FIFO";
  EXPECT_THAT(FifoQueue::Open({.path = path_, .open = OpenMode::kCreate}),
              StatusIs(absl::StatusCode::kAlreadyExists));
  q = FifoQueue::Open({.path = path_, .open = OpenMode::kAttach});
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_TRUE((*q)->Remove().ok());
  EXPECT_NE(lstat(path_.c_str(), &st), 0);
  EXPECT_THAT(FifoQueue::Open({.path = path_, .open = OpenMode::kAttach}),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(FifoQueueTest, RefusesADirectoryOthersCanWrite) {
  ASSERT_EQ(chmod(dir_, 0755), 0);
  EXPECT_THAT(FifoQueue::Open({.path = path_}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "0755"));
  ASSERT_EQ(chmod(dir_, 0700), 0);
  // A missing directory is created private.
  const std::string sub = absl::StrCat(dir_, "/sub");
  absl::StatusOr<std::unique_ptr<FifoQueue>> q =
      FifoQueue::Open({.path = absl::StrCat(sub, "/q")});
  ASSERT_TRUE(q.ok()) << q.status();
  struct stat st;
  ASSERT_EQ(lstat(sub.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE((*q)->Remove().ok());
}

TEST_F(FifoQueueTest, RefusesSymlinksAndNonFifos) {
  ASSERT_EQ(mkfifo(path_.c_str(), 0600), 0);
  const std::string link = absl::StrCat(dir_, "/link");
  ASSERT_EQ(symlink(path_.c_str(), link.c_str()), 0);
  EXPECT_THAT(FifoQueue::Open({.path = link, .open = OpenMode::kAttach}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "symbolic"));
  unlink(path_.c_str());
  const int fd = open(path_.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  EXPECT_THAT(FifoQueue::Open({.path = path_, .open = OpenMode::kAttach}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(FifoQueueTest, AttachRefusesAnotherMode) {
  absl::StatusOr<std::unique_ptr<FifoQueue>> q =
      FifoQueue::Open({.path = path_, .mode = 0600});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_THAT(FifoQueue::Open({.path = path_, .mode = 0660}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "mode"));
  ASSERT_TRUE((*q)->Remove().ok());
}

TEST(PrivateFifo, LivesInAPrivateDirectoryThatCloseRemoves) {
  absl::StatusOr<std::unique_ptr<FifoQueue>> q = FifoQueue::Open({});
  ASSERT_TRUE(q.ok()) << q.status();
  const std::string path = (*q)->path();
  const std::string dir = path.substr(0, path.rfind('/'));
  struct stat st;
  ASSERT_EQ(lstat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  ASSERT_TRUE((*q)->Close().ok());
  EXPECT_NE(lstat(path.c_str(), &st), 0);
  EXPECT_NE(lstat(dir.c_str(), &st), 0);
}

// ---- pipe -------------------------------------------------------------

TEST(PipeQueue, FramesOfEverySizeRoundTrip) {
  absl::StatusOr<std::unique_ptr<PipeQueue>> q =
      PipeQueue::Create({.max_message_bytes = 200'000});
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ((*q)->Capabilities().max_message_bytes, 200'000u);
  const std::vector<size_t> sizes = {0,    1,     4079,    4080,   4081,
                                     4096, 65536, 100'000, 200'000};
  std::thread sender([&] {
    for (size_t i = 0; i < sizes.size(); ++i) {
      EXPECT_TRUE((*q)->Send(Pattern(sizes[i], i), i + 1).ok());
    }
  });
  for (size_t i = 0; i < sizes.size(); ++i) {
    absl::StatusOr<Message> m = (*q)->ReceiveFor(kBig, absl::Seconds(10));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data.size(), sizes[i]);
    EXPECT_TRUE(m->data == Pattern(sizes[i], i));
    EXPECT_EQ(m->type, static_cast<int64_t>(i + 1));
  }
  sender.join();
}

TEST(PipeQueue, ForeignBytesBreakTheQueueLoudly) {
  absl::StatusOr<std::unique_ptr<PipeQueue>> q = PipeQueue::Create();
  ASSERT_TRUE(q.ok());
  // Someone writes to the pipe behind the queue's back.
  ASSERT_EQ(write((*q)->SendFd(), "garbage-garbage!", 16), 16);
  EXPECT_THAT((*q)->TryReceive(kBig), StatusIs(absl::StatusCode::kDataLoss));
  EXPECT_THAT((*q)->TrySend("x"), StatusIs(absl::StatusCode::kDataLoss));
}

TEST(SocketPairQueue, MaxMessageComesFromTheSendBuffer) {
  absl::StatusOr<std::unique_ptr<SocketPairQueue>> q =
      SocketPairQueue::Create();
  ASSERT_TRUE(q.ok());
  int sndbuf = 0;
  socklen_t len = sizeof(sndbuf);
  ASSERT_EQ(getsockopt((*q)->SendFd(), SOL_SOCKET, SO_SNDBUF, &sndbuf, &len),
            0);
  EXPECT_EQ((*q)->Capabilities().max_message_bytes,
            static_cast<size_t>(sndbuf) - 32 - 8);
}

}  // namespace
}  // namespace shmkit
