// What the stream-socket queues (unix, tcp) promise beyond the conformance
// suite, in one process (the wire format's golden test is in
// layout_golden_test.cc): spec errors, tcp port 0, unix
// socket files (mode, Remove, stale files), a missing listener, peers that
// break the protocol or stop mid-frame, flow control and Close() with a
// message half written. The tests that fork are in stream_queue_fork_test.cc.
#include "shmkit/ipc/queue/stream_queue.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "queue_test_util.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/ipc/queue/internal/stream_endpoint.h"
#include "shmkit/ipc/queue/internal/stream_frame.h"
#include "stream_queue_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::Connector;
using ::shmkit::testing::Frame;
using ::shmkit::testing::Listener;
using ::shmkit::testing::Pattern;
using ::shmkit::testing::RawConnect;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::TempDir;
using ::shmkit::testing::WriteAll;

constexpr size_t kBig = size_t{1} << 30;

// ---- specs --------------------------------------------------------------

TEST(StreamQueueSpec, BadSpecsAreInvalidArgumentNamingTheKey) {
  const std::string too_long(internal::MaxUnixPathBytes() + 1, 'x');
  struct Case {
    std::string spec;
    std::string fragment;
  };
  const Case cases[] = {
      {"unix:path=relative/q", "\"path\""},
      {"unix:path=relative/q", "not absolute"},
      {absl::StrCat("unix:path=/", too_long), "\"path\""},
      {absl::StrCat("unix:path=/", too_long), "sun_path holds at most 107"},
      {absl::StrCat("unix:path=@", too_long), "sun_path holds at most 107"},
      {"unix:path=@", "\"path\""},
      {"unix:role=connect", "\"path\" is required"},
      {"unix:role=both", "\"role\""},
      {"unix:max_bytes=0", "\"max_bytes\""},
      {"unix:window=10", "\"window\""},
      {"unix:mode=0600", "\"mode\" applies only"},
      {"unix:path=/tmp/x,role=connect,backlog=4", "\"backlog\""},
      {"unix:connect_ms=5", "\"connect_ms\""},
      {"tcp:port=65536", "\"port\" value 65536 is outside"},
      {"tcp:port=http", "\"port\" value \"http\" is not an unsigned number"},
      {"tcp:port=-1", "\"port\""},
      {"tcp:role=connect", "\"port\" is required"},
      {"tcp:port=0,role=connect", "\"port\" is required"},
      {"tcp:mode=0600", "unknown parameter \"mode\""},
      {"tcp:path=/tmp/q", "unknown parameter \"path\""},
  };
  for (const Case& c : cases) {
    absl::StatusOr<std::unique_ptr<Queue>> q = OpenQueue(c.spec);
    EXPECT_THAT(q, StatusIsWith(absl::StatusCode::kInvalidArgument, c.fragment))
        << c.spec;
    EXPECT_THAT(q, StatusIsWith(absl::StatusCode::kInvalidArgument,
                                absl::StrCat("queue spec \"", c.spec, "\"")))
        << c.spec;
  }
}

TEST(StreamQueueSpec, AListenerTellsTheSpecThatReachesIt) {
  for (const char* spec : {"unix", "tcp", "tcp:host=127.0.0.1,port=0"}) {
    SCOPED_TRACE(spec);
    absl::StatusOr<std::unique_ptr<Queue>> opened = OpenQueue(absl::StrCat(
        spec,
        absl::string_view(spec).find(':') == absl::string_view::npos ? ":"
                                                                     : ",",
        "max_bytes=5000,window=8192"));
    ASSERT_TRUE(opened.ok()) << opened.status();
    auto* listener = dynamic_cast<StreamQueue*>(opened->get());
    ASSERT_NE(listener, nullptr);
    EXPECT_EQ(listener->side(), StreamSide::kListen);
    const std::string connect = listener->ConnectSpec();
    EXPECT_NE(connect.find("role=connect,max_bytes=5000,window=8192"),
              std::string::npos)
        << connect;
    absl::StatusOr<std::unique_ptr<Queue>> sender = OpenQueue(connect);
    ASSERT_TRUE(sender.ok()) << sender.status();
    EXPECT_EQ((*sender)->role(), QueueRole::kSender);
    EXPECT_EQ((*sender)->Capabilities().max_message_bytes, 5000u);
    EXPECT_THAT((*sender)->TryReceive(kBig),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    ASSERT_TRUE((*sender)->Send("hello", 7).ok());
    absl::StatusOr<Message> m = listener->ReceiveFor(kBig, absl::Seconds(10));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, "hello");
    EXPECT_EQ(m->type, 7);
    absl::StatusOr<QueueStats> stats = listener->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->connections, 1u);
    EXPECT_EQ(stats->capacity_bytes, 8192u);
    stats = (*sender)->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->connections, 1u);
  }
}

// ---- tcp port 0 ---------------------------------------------------------

TEST(StreamQueue, TcpPortZeroTakesAFreePortAndReportsIt) {
  absl::StatusOr<std::unique_ptr<StreamQueue>> a = Listener("tcp");
  absl::StatusOr<std::unique_ptr<StreamQueue>> b = Listener("tcp");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_NE((*a)->port(), 0);
  EXPECT_NE((*a)->port(), (*b)->port());
  EXPECT_EQ((*a)->host(), "127.0.0.1");
  EXPECT_NE((*a)->ToString().find(absl::StrCat("127.0.0.1:", (*a)->port())),
            std::string::npos)
      << (*a)->ToString();
  // The port is taken: a second listener on it is AlreadyExists.
  EXPECT_THAT(StreamQueue::OpenTcp("127.0.0.1", (*a)->port()),
              StatusIs(absl::StatusCode::kAlreadyExists));
  absl::StatusOr<std::unique_ptr<StreamQueue>> sender = Connector(**a);
  ASSERT_TRUE(sender.ok()) << sender.status();
  EXPECT_EQ((*sender)->port(), (*a)->port());
  ASSERT_TRUE((*sender)->Send("to a").ok());
  absl::StatusOr<Message> m = (*a)->ReceiveFor(kBig, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "to a");
  EXPECT_THAT((*b)->TryReceive(kBig), StatusIs(absl::StatusCode::kUnavailable));
}

// ---- unix socket files --------------------------------------------------

TEST(StreamQueue, UnixSocketFileModeRemoveAndStaleFiles) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = absl::StrCat(dir.path(), "/q.sock");
  absl::StatusOr<std::unique_ptr<Queue>> first =
      OpenQueue(absl::StrCat("unix:path=", path, ",mode=0640"));
  ASSERT_TRUE(first.ok()) << first.status();
  struct stat st;
  ASSERT_EQ(lstat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0640u);
  // A live listener keeps its path.
  EXPECT_THAT(OpenQueue(absl::StrCat("unix:path=", path)),
              StatusIsWith(absl::StatusCode::kAlreadyExists, path));
  // Close() leaves the file; nobody listens on it: the next listener
  // replaces it.
  ASSERT_TRUE((*first)->Close().ok());
  ASSERT_EQ(lstat(path.c_str(), &st), 0) << "Close() removed the socket file";
  absl::StatusOr<std::unique_ptr<Queue>> second =
      OpenQueue(absl::StrCat("unix:path=", path));
  ASSERT_TRUE(second.ok()) << second.status();
  absl::StatusOr<std::unique_ptr<Queue>> sender =
      OpenQueue(absl::StrCat("unix:path=", path, ",role=connect"));
  ASSERT_TRUE(sender.ok()) << sender.status();
  ASSERT_TRUE((*sender)->Send("fresh").ok());
  absl::StatusOr<Message> m = (*second)->ReceiveFor(kBig, absl::Seconds(10));
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->data, "fresh");
  // Remove() unlinks the file and fails the sender.
  ASSERT_TRUE((*second)->Remove().ok());
  EXPECT_NE(lstat(path.c_str(), &st), 0) << "Remove() left the socket file";
  EXPECT_THAT((*sender)->Send("late"),
              StatusIs(absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT((*second)->TryReceive(kBig),
              StatusIs(absl::StatusCode::kFailedPrecondition));

  // A file that is not a socket is never replaced.
  const std::string plain = absl::StrCat(dir.path(), "/plain");
  std::ofstream(plain) << "data";
  EXPECT_THAT(OpenQueue(absl::StrCat("unix:path=", plain)),
              StatusIsWith(absl::StatusCode::kAlreadyExists, "not a socket"));
  std::ifstream in(plain);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "data");
  // A directory that does not exist is NotFound, naming the path.
  EXPECT_THAT(OpenQueue(absl::StrCat("unix:path=", dir.path(), "/no/q")),
              StatusIsWith(absl::StatusCode::kNotFound, "bind("));
}

TEST(StreamQueue, RemoveDoesNotUnlinkAFileThatReplacedOurs) {
  TempDir dir;
  const std::string path = absl::StrCat(dir.path(), "/q.sock");
  absl::StatusOr<std::unique_ptr<StreamQueue>> q = StreamQueue::OpenUnix(path);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(unlink(path.c_str()), 0);
  std::ofstream(path) << "someone else's";
  ASSERT_TRUE((*q)->Remove().ok());
  struct stat st;
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << "Remove() unlinked a stranger";
}

// ---- a missing listener -------------------------------------------------

TEST(StreamQueue, ConnectingWithoutAListenerIsAClearError) {
  TempDir dir;
  const std::string missing = absl::StrCat(dir.path(), "/missing.sock");
  EXPECT_THAT(OpenQueue(absl::StrCat("unix:path=", missing, ",role=connect")),
              StatusIsWith(absl::StatusCode::kNotFound, missing));
  // A socket file nobody listens on (a listener's leftover).
  const std::string stale = absl::StrCat(dir.path(), "/stale.sock");
  {
    absl::StatusOr<std::unique_ptr<StreamQueue>> gone =
        StreamQueue::OpenUnix(stale);
    ASSERT_TRUE(gone.ok()) << gone.status();
  }
  EXPECT_THAT(OpenQueue(absl::StrCat("unix:path=", stale, ",role=connect")),
              StatusIsWith(absl::StatusCode::kUnavailable, "nobody listens"));
  // A tcp port nobody listens on (one that was free a moment ago).
  uint16_t port = 0;
  {
    absl::StatusOr<std::unique_ptr<StreamQueue>> gone = Listener("tcp");
    ASSERT_TRUE(gone.ok());
    port = (*gone)->port();
  }
  EXPECT_THAT(OpenQueue(absl::StrCat("tcp:port=", port, ",role=connect")),
              StatusIsWith(absl::StatusCode::kUnavailable,
                           absl::StrCat("127.0.0.1:", port,
                                        " (connect: Connection "
                                        "refused)")));
}

TEST(StreamQueue, ASenderWhoseListenerWentAwayFailsWithoutSigpipe) {
  for (const char* scheme : {"unix", "tcp"}) {
    SCOPED_TRACE(scheme);
    absl::StatusOr<std::unique_ptr<StreamQueue>> listener = Listener(scheme);
    ASSERT_TRUE(listener.ok());
    absl::StatusOr<std::unique_ptr<StreamQueue>> sender = Connector(**listener);
    ASSERT_TRUE(sender.ok()) << sender.status();
    ASSERT_TRUE((*sender)->Send("one").ok());
    ASSERT_TRUE((*listener)->ReceiveFor(kBig, absl::Seconds(10)).ok());
    ASSERT_TRUE((*listener)->Close().ok());
    // The connection is gone, then the listener: both FailedPrecondition.
    EXPECT_THAT((*sender)->Send("two"),
                StatusIs(absl::StatusCode::kFailedPrecondition));
    EXPECT_THAT(
        (*sender)->TrySend("three"),
        StatusIsWith(absl::StatusCode::kFailedPrecondition, "no listener"));
  }
}

// ---- peers that break the protocol or stop mid-frame --------------------

TEST(StreamQueue, AHostileFrameDropsOnlyThatConnection) {
  for (const char* scheme : {"unix", "tcp"}) {
    SCOPED_TRACE(scheme);
    absl::StatusOr<std::unique_ptr<StreamQueue>> listener =
        Listener(scheme, {.max_message_bytes = 1024});
    ASSERT_TRUE(listener.ok());
    absl::StatusOr<std::unique_ptr<StreamQueue>> good = Connector(**listener);
    ASSERT_TRUE(good.ok()) << good.status();
    // A length of 1 GiB - 1 (the receiver must not allocate it), a bad
    // magic, a type of 0.
    UniqueFd huge = RawConnect(**listener);
    UniqueFd magic = RawConnect(**listener);
    UniqueFd untyped = RawConnect(**listener);
    ASSERT_TRUE(huge.valid() && magic.valid() && untyped.valid());
    ASSERT_TRUE(WriteAll(huge.get(), Frame("xxxx", 1, (1u << 30) - 1)));
    ASSERT_TRUE(WriteAll(magic.get(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    ASSERT_TRUE(WriteAll(untyped.get(), Frame("x", 0)));
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE((*good)->Send(absl::StrCat(i)).ok());
    }
    for (int i = 0; i < 20; ++i) {
      absl::StatusOr<Message> m =
          (*listener)->ReceiveFor(kBig, absl::Seconds(10));
      ASSERT_TRUE(m.ok()) << m.status();
      EXPECT_EQ(m->data, absl::StrCat(i));
    }
    EXPECT_THAT((*listener)->TryReceive(kBig),
                StatusIs(absl::StatusCode::kUnavailable));
    absl::StatusOr<QueueStats> stats = (*listener)->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->dropped_connections, 3u);
    EXPECT_EQ(stats->connections, 1u);
    EXPECT_FALSE(stats->last_drop_reason.empty());
    // Each hostile peer sees its connection end.
    for (int fd : {huge.get(), magic.get(), untyped.get()}) {
      char byte;
      EXPECT_LE(recv(fd, &byte, 1, 0), 0);
    }
  }
}

TEST(StreamQueue, TheDropReasonNamesTheLengthAndTheLimit) {
  absl::StatusOr<std::unique_ptr<StreamQueue>> listener =
      Listener("unix", {.max_message_bytes = 1024});
  ASSERT_TRUE(listener.ok());
  UniqueFd raw = RawConnect(**listener);
  ASSERT_TRUE(WriteAll(raw.get(), Frame("", 1, 4000000000u)));
  EXPECT_THAT((*listener)->ReceiveFor(kBig, absl::Milliseconds(100)),
              StatusIs(absl::StatusCode::kDeadlineExceeded));
  absl::StatusOr<QueueStats> stats = (*listener)->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->dropped_connections, 1u);
  EXPECT_NE(stats->last_drop_reason.find(
                "announces 4000000000 bytes, more than max_bytes 1024"),
            std::string::npos)
      << stats->last_drop_reason;
  EXPECT_NE(stats->last_drop_reason.find(absl::StrCat("pid ", getpid())),
            std::string::npos)
      << stats->last_drop_reason;
}

TEST(StreamQueue, APartialFrameAtEndOfFileIsNeverDelivered) {
  for (const char* scheme : {"unix", "tcp"}) {
    SCOPED_TRACE(scheme);
    absl::StatusOr<std::unique_ptr<StreamQueue>> listener = Listener(scheme);
    ASSERT_TRUE(listener.ok());
    UniqueFd raw = RawConnect(**listener);
    ASSERT_TRUE(raw.valid());
    const std::string whole = Frame("whole", 3);
    const std::string torn = Frame(Pattern(1000, 1), 4);
    // One whole frame, then the header and half the body of another.
    ASSERT_TRUE(WriteAll(raw.get(), whole + torn.substr(0, 16 + 500)));
    absl::StatusOr<Message> m =
        (*listener)->ReceiveFor(kBig, absl::Seconds(10));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, "whole");
    // The listener holds half a frame: nothing to deliver, however long.
    EXPECT_THAT((*listener)->ReceiveFor(kBig, absl::Milliseconds(50)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
    raw.reset();  // the sender is gone mid-frame
    EXPECT_THAT((*listener)->ReceiveFor(kBig, absl::Milliseconds(100)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
    absl::StatusOr<QueueStats> stats = (*listener)->Stats();
    ASSERT_TRUE(stats.ok());
    EXPECT_EQ(stats->partial_frames_discarded, 1u);
    EXPECT_EQ(stats->connections, 0u);
    EXPECT_EQ(stats->dropped_connections, 0u);
  }
}

// ---- flow control and tails ---------------------------------------------

TEST(StreamQueue, TheWindowBoundsWhatASenderHasOutstanding) {
  for (const char* scheme : {"unix", "tcp"}) {
    SCOPED_TRACE(scheme);
    absl::StatusOr<std::unique_ptr<StreamQueue>> listener = Listener(scheme);
    ASSERT_TRUE(listener.ok());
    absl::StatusOr<std::unique_ptr<StreamQueue>> sender =
        Connector(**listener, {.window_bytes = 4096});
    ASSERT_TRUE(sender.ok());
    const std::string payload(100, 'w');
    int sent = 0;
    while ((*sender)->TrySend(payload).ok()) ++sent;
    // 116 bytes a frame in 4096; then a 16-byte credit query goes out.
    EXPECT_EQ(sent, 4096 / 116);
    EXPECT_THAT((*sender)->TrySend(payload),
                StatusIsWith(absl::StatusCode::kUnavailable, "window"));
    EXPECT_THAT((*sender)->SendFor(payload, absl::Milliseconds(30)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
    // A message larger than the window goes alone, once all is taken.
    std::thread big(
        [&] { EXPECT_TRUE((*sender)->Send(std::string(10000, 'B')).ok()); });
    for (int i = 0; i < sent; ++i) {
      absl::StatusOr<Message> m =
          (*listener)->ReceiveFor(kBig, absl::Seconds(10));
      ASSERT_TRUE(m.ok()) << m.status();
      EXPECT_EQ(m->data, payload);
    }
    absl::StatusOr<Message> m =
        (*listener)->ReceiveFor(kBig, absl::Seconds(10));
    big.join();
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data.size(), 10000u);
    // All taken, but the sender learns it only from the listener's next
    // receive, which answers its query.
    EXPECT_THAT((*sender)->TrySend(payload),
                StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_THAT((*listener)->TryReceive(kBig),
                StatusIs(absl::StatusCode::kUnavailable));
    EXPECT_TRUE((*sender)->SendFor(payload, absl::Seconds(10)).ok());
  }
}

TEST(StreamQueue, CloseReportsAMessageItCouldNotFinish) {
  absl::StatusOr<std::unique_ptr<StreamQueue>> listener =
      Listener("unix", {.max_message_bytes = 8 << 20});
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<std::unique_ptr<StreamQueue>> sender = Connector(
      **listener,
      {.window_bytes = 1 << 30, .close_linger = absl::Milliseconds(50)});
  ASSERT_TRUE(sender.ok());
  // Nobody reads: the kernel's buffers fill in the middle of a message,
  // which is committed (OK) and left half written.
  const std::string payload = Pattern(4 << 20, 9);
  ASSERT_TRUE((*sender)->TrySend(payload).ok());
  EXPECT_THAT((*sender)->TrySend("next"),
              StatusIs(absl::StatusCode::kUnavailable));
  EXPECT_THAT((*sender)->Close(),
              StatusIsWith(absl::StatusCode::kDataLoss, "linger_ms"));
  // The listener discards the partial frame at end of file: it receives
  // nothing, however long it reads, and counts the discard (waited for
  // through its own reads, for up to 20 s on a busy machine).
  absl::StatusOr<QueueStats> stats;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  do {
    EXPECT_THAT((*listener)->ReceiveFor(kBig, absl::Milliseconds(100)),
                StatusIs(absl::StatusCode::kDeadlineExceeded));
    stats = (*listener)->Stats();
    ASSERT_TRUE(stats.ok());
  } while (stats->partial_frames_discarded == 0 && absl::Now() < deadline);
  EXPECT_EQ(stats->partial_frames_discarded, 1u);
}

TEST(StreamQueue, ATimedSendFinishesItsMessageWhenTheListenerReads) {
  absl::StatusOr<std::unique_ptr<StreamQueue>> listener =
      Listener("unix", {.max_message_bytes = 8 << 20});
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<std::unique_ptr<StreamQueue>> sender =
      Connector(**listener, {.window_bytes = 1 << 30});
  ASSERT_TRUE(sender.ok());
  const std::string big = Pattern(4 << 20, 7);
  // Committed, its rest pending in the sender.
  ASSERT_TRUE((*sender)->SendFor(big, absl::Milliseconds(20), 5).ok());
  std::thread reader([&] {
    absl::StatusOr<Message> m =
        (*listener)->ReceiveFor(kBig, absl::Seconds(20));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_TRUE(m->data == big);
    EXPECT_EQ(m->type, 5);
    m = (*listener)->ReceiveFor(kBig, absl::Seconds(20));
    ASSERT_TRUE(m.ok()) << m.status();
    EXPECT_EQ(m->data, "after");
  });
  // The next send writes the rest first, then its own message.
  EXPECT_TRUE((*sender)->Send("after", 6).ok());
  reader.join();
}

TEST(StreamQueue, ReadyConnectionsTakeTurns) {
  absl::StatusOr<std::unique_ptr<StreamQueue>> listener = Listener("unix");
  ASSERT_TRUE(listener.ok());
  absl::StatusOr<std::unique_ptr<StreamQueue>> a = Connector(**listener);
  absl::StatusOr<std::unique_ptr<StreamQueue>> b = Connector(**listener);
  ASSERT_TRUE(a.ok() && b.ok());
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE((*a)->Send("a", 1).ok());
    ASSERT_TRUE((*b)->Send("b", 2).ok());
  }
  int from_a = 0;
  for (int i = 0; i < 10; ++i) {
    absl::StatusOr<Message> m = (*listener)->TryReceive(kBig);
    ASSERT_TRUE(m.ok()) << m.status();
    if (m->type == 1) ++from_a;
  }
  // Neither sender waits for the other's ten.
  EXPECT_GE(from_a, 3);
  EXPECT_LE(from_a, 7);
}

// ---- descriptors -----------------------------------------------------

// The descriptors open now that are sockets, eventfds or epoll sets.
std::set<int> SocketLikeFds() {
  std::set<int> out;
  for (const auto& entry :
       std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target =
        std::filesystem::read_symlink(entry.path(), ec).string();
    if (ec) continue;
    if (target.rfind("socket:", 0) == 0 ||
        target.rfind("anon_inode:", 0) == 0) {
      out.insert(std::stoi(entry.path().filename().string()));
    }
  }
  return out;
}

TEST(StreamQueue, EveryDescriptorIsCloseOnExec) {
  const std::set<int> before = SocketLikeFds();
  absl::StatusOr<std::unique_ptr<StreamQueue>> unix_listener = Listener("unix");
  absl::StatusOr<std::unique_ptr<StreamQueue>> tcp_listener = Listener("tcp");
  ASSERT_TRUE(unix_listener.ok() && tcp_listener.ok());
  absl::StatusOr<std::unique_ptr<StreamQueue>> sender =
      Connector(**tcp_listener);
  ASSERT_TRUE(sender.ok());
  ASSERT_TRUE((*sender)->Send("x").ok());
  ASSERT_TRUE((*tcp_listener)->ReceiveFor(kBig, absl::Seconds(10)).ok());
  ASSERT_TRUE((*unix_listener)->Send("self").ok());
  ASSERT_TRUE((*unix_listener)->ReceiveFor(kBig, absl::Seconds(10)).ok());
  size_t opened = 0;
  for (int fd : SocketLikeFds()) {
    if (before.count(fd) != 0) continue;
    ++opened;
    EXPECT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC) << "descriptor " << fd;
  }
  // 2 listening sockets, epoll sets and eventfds, 2 connections of 2 ends,
  // the connector's eventfd.
  EXPECT_GE(opened, 11u);
}

}  // namespace
}  // namespace shmkit
