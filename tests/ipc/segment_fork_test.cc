#include <signal.h>
#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::ExitedWith;
using ::shmkit::testing::ForkChild;
using ::shmkit::testing::StatusIs;
using ::shmkit::testing::SyncPipe;
using ::shmkit::testing::WaitChild;

TEST(SegmentFork, PrivateSegmentIsSharedWithChildren) {
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 4096});
  ASSERT_TRUE(s.ok()) << s.status();
  auto* words = static_cast<volatile int*>(s->data());
  words[0] = 7;  // written before fork: the child must see it
  const pid_t child = ForkChild([&] {
    words[1] = 42;  // written by the child: the parent must see it
    return words[0] == 7 ? 0 : 1;
  });
  EXPECT_TRUE(ExitedWith(child, 0));
  EXPECT_EQ(words[1], 42);
}

TEST(SegmentFork, ReadOnlyAttachFaultsOnWrite) {
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 4096});
  ASSERT_TRUE(s.ok()) << s.status();
  const int id = s->id();
  const pid_t child = ForkChild([&] {
    absl::StatusOr<Segment> ro = Segment::AttachId(id, {.read_only = true});
    if (!ro.ok()) return 2;
    if (!ro->read_only()) return 3;
    // Sanitizer builds install their own SIGSEGV handler (which aborts with
    // abort_on_error=1); restore the default so the fault is seen as itself.
    signal(SIGSEGV, SIG_DFL);
    static_cast<volatile char*>(ro->data())[0] = 1;  // must fault
    return 0;
  });
  std::optional<::shmkit::testing::ChildExit> e = WaitChild(child);
  ASSERT_TRUE(e.has_value());
  EXPECT_TRUE(e->signaled) << "exit code " << e->code;
  EXPECT_EQ(e->signal, SIGSEGV);
}

TEST(SegmentFork, AnonymousSegmentDoesNotLeakWhenItsProcessesAreKilled) {
  SyncPipe ready;
  int id_pipe[2];
  ASSERT_EQ(pipe(id_pipe), 0);
  const pid_t child = ForkChild([&] {
    absl::StatusOr<Segment> s = Segment::Create({.bytes = 1 << 20});
    if (!s.ok()) return 2;
    const int id = s->id();
    if (write(id_pipe[1], &id, sizeof(id)) != sizeof(id)) return 3;
    pause();  // killed here, never detaching by itself
    return 0;
  });
  int id = -1;
  ASSERT_EQ(read(id_pipe[0], &id, sizeof(id)),
            static_cast<ssize_t>(sizeof(id)));
  close(id_pipe[0]);
  close(id_pipe[1]);
  absl::StatusOr<SegmentInfo> info = Segment::StatId(id);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->marked_for_removal);
  EXPECT_EQ(info->attach_count, 1u);
  kill(child, SIGKILL);
  std::optional<::shmkit::testing::ChildExit> e = WaitChild(child);
  ASSERT_TRUE(e.has_value() && e->signaled);
  EXPECT_THAT(Segment::StatId(id), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace shmkit
