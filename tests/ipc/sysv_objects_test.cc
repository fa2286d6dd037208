// ListSysv / ViewSegment: what a monitoring agent sees of the machine's
// System V objects, a shmkit object among them.
#include "shmkit/ipc/sysv_objects.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/segment.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::UniqueKey;

TEST(SysvObjects, ListsAndViewsAKeyedShmkitObject) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<AtomicCounter> c = AtomicCounter::Create({.key = key});
  ASSERT_TRUE(c.ok()) << c.status();
  const int id = c->segment().id();

  absl::StatusOr<std::vector<SysvEntry>> all = ListSysv(IpcSpace::kShm);
  ASSERT_TRUE(all.ok()) << all.status();
  const auto it = std::find_if(all->begin(), all->end(),
                               [id](const SysvEntry& e) { return e.id == id; });
  ASSERT_NE(it, all->end());
  EXPECT_EQ(it->key.value(), key.value());
  EXPECT_EQ(it->mode, 0600u);
  EXPECT_EQ(it->uid, getuid());
  EXPECT_EQ(it->creator_pid, getpid());
  EXPECT_GE(it->attached, 1u);

  absl::StatusOr<int> by_key = SysvIdOfKey(IpcSpace::kShm, key);
  ASSERT_TRUE(by_key.ok()) << by_key.status();
  EXPECT_EQ(*by_key, id);

  absl::StatusOr<SegmentView> view = ViewSegment(id);
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_TRUE(view->info.has_value()) << view->why_not;
  EXPECT_EQ(view->info->kind, ObjectKind::kAtomicCounter);
  EXPECT_EQ(view->info->creator_pid, getpid());
  EXPECT_TRUE(view->info->ready);
  EXPECT_TRUE(view->creator_alive);

  ASSERT_TRUE(c->Remove().ok());
  EXPECT_THAT(SysvIdOfKey(IpcSpace::kShm, key),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST(SysvObjects, ASegmentWithoutAHeaderIsViewedAsNotShmkits) {
  const IpcKey key = UniqueKey();
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 4096, .key = key});
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<SegmentView> view = ViewSegment(s->id());
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_FALSE(view->info.has_value());
  EXPECT_FALSE(view->why_not.empty());
  EXPECT_TRUE(view->creator_alive);  // the kernel's cpid: this process
  ASSERT_TRUE(s->Remove().ok());
}

TEST(SysvObjects, AnIdNobodyHasIsNotFound) {
  // Ids are non-negative; INT32_MAX is never handed out on a test machine.
  EXPECT_THAT(FindSysvEntry(IpcSpace::kMsg, 2147483647),
              StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(ViewSegment(2147483647), StatusIs(absl::StatusCode::kNotFound));
}

}  // namespace
}  // namespace shmkit
