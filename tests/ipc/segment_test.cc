#include "shmkit/ipc/segment.h"

#include <sys/shm.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/kernel_limits.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::UniqueKey;

// Removes keyed segments a test created, whatever happened in the test.
class SegmentTest : public ::testing::Test {
 protected:
  void TearDown() override {
    for (IpcKey key : keys_) {
      const int id = shmget(key.value(), 0, 0);
      if (id >= 0) shmctl(id, IPC_RMID, nullptr);
    }
  }
  IpcKey NewKey() {
    keys_.push_back(UniqueKey());
    return keys_.back();
  }
  std::vector<IpcKey> keys_;
};

TEST_F(SegmentTest, PrivateSegmentIsMarkedForRemovalAtOnce) {
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 10000});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->size(), 10000u);
  EXPECT_TRUE(s->key().is_private());
  std::memset(s->data(), 0xab, s->size());
  absl::StatusOr<SegmentInfo> info = s->Stat();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_TRUE(info->marked_for_removal);
  EXPECT_EQ(info->mode, 0600u);
  EXPECT_EQ(info->owner_uid, geteuid());
  EXPECT_EQ(info->attach_count, 1u);
  const int id = s->id();
  *s = std::move(*Segment::Create({.bytes = 1}));  // detaches the first one
  EXPECT_THAT(Segment::StatId(id), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SegmentTest, KeyedSegmentPersistsUntilRemoved) {
  const IpcKey key = NewKey();
  int id;
  {
    absl::StatusOr<Segment> s = Segment::Create({.bytes = 4096, .key = key});
    ASSERT_TRUE(s.ok()) << s.status();
    id = s->id();
    std::strcpy(static_cast<char*>(s->data()), "hello");
  }
  // Nobody attached now; the segment is still there.
  absl::StatusOr<Segment> a = Segment::Attach(key);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->id(), id);
  EXPECT_EQ(a->size(), 4096u);
  EXPECT_STREQ(static_cast<const char*>(a->data()), "hello");
  EXPECT_FALSE(a->Stat()->marked_for_removal);
  ASSERT_TRUE(a->Remove().ok());
  EXPECT_THAT(Segment::Attach(key), StatusIs(absl::StatusCode::kNotFound));
  // Our attachment stays valid after removal.
  EXPECT_STREQ(static_cast<const char*>(a->data()), "hello");
  EXPECT_TRUE(a->Remove().ok());  // idempotent while attached
  const int id2 = a->id();
  *a = std::move(*Segment::Create({.bytes = 1}));  // last detach: gone
  EXPECT_THAT(Segment::RemoveId(id2),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

TEST_F(SegmentTest, CreateOfAnExistingKeyIsAlreadyExists) {
  const IpcKey key = NewKey();
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 64, .key = key});
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_THAT(Segment::Create({.bytes = 64, .key = key}),
              StatusIsWith(absl::StatusCode::kAlreadyExists, key.ToString()));
}

TEST_F(SegmentTest, BadArguments) {
  EXPECT_THAT(Segment::Create({.bytes = 0}),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Segment::Create({.bytes = 64, .mode = 01600}),
              StatusIsWith(absl::StatusCode::kInvalidArgument, "01600"));
  EXPECT_THAT(Segment::Attach(IpcKey::Private()),
              StatusIs(absl::StatusCode::kInvalidArgument));
  EXPECT_THAT(Segment::Attach(NewKey()), StatusIs(absl::StatusCode::kNotFound));
  EXPECT_THAT(Segment::AttachId(0x7ffffff0),
              StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(SegmentTest, SizeAboveShmmaxNamesTheLimitAndItsValue) {
  absl::StatusOr<uint64_t> shmmax = ReadKernelLimit("shmmax");
  ASSERT_TRUE(shmmax.ok()) << shmmax.status();
  ASSERT_LT(*shmmax, SIZE_MAX) << "shmmax is the largest size_t: cannot exceed";
  const size_t asked = static_cast<size_t>(*shmmax) + 1;
  absl::StatusOr<Segment> s = Segment::Create({.bytes = asked});
  EXPECT_THAT(s, StatusIsWith(absl::StatusCode::kResourceExhausted,
                              absl::StrCat("kernel.shmmax = ", *shmmax)));
  EXPECT_THAT(s, StatusIsWith(absl::StatusCode::kResourceExhausted,
                              absl::StrCat(asked, " bytes")));
}

TEST_F(SegmentTest, HugePagesUnavailableNamesTheSetting) {
  uint64_t free_pages = 0;
  {
    std::ifstream meminfo("/proc/meminfo");
    std::string name;
    uint64_t value;
    while (meminfo >> name >> value) {
      if (name == "HugePages_Free:") free_pages = value;
      meminfo.ignore(256, '\n');
    }
  }
  absl::StatusOr<Segment> required =
      Segment::Create({.bytes = 1 << 20, .huge_pages = HugePages::kRequire});
  absl::StatusOr<Segment> preferred =
      Segment::Create({.bytes = 1 << 20, .huge_pages = HugePages::kPreferred});
  ASSERT_TRUE(preferred.ok()) << preferred.status();
  if (free_pages == 0) {
    EXPECT_THAT(required, StatusIsWith(absl::StatusCode::kResourceExhausted,
                                       "vm.nr_hugepages"));
    EXPECT_FALSE(preferred->huge_pages());  // fell back, as asked
  } else {
    ASSERT_TRUE(required.ok()) << required.status();
    EXPECT_TRUE(required->huge_pages());
  }
  // Nothing asked: never huge.
  EXPECT_FALSE(Segment::Create({.bytes = 1 << 20})->huge_pages());
}

TEST_F(SegmentTest, AttachRefusesAnotherMode) {
  const IpcKey key = NewKey();
  absl::StatusOr<Segment> s =
      Segment::Create({.bytes = 64, .key = key, .mode = 0644});
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<Segment> a = Segment::Attach(key);
  EXPECT_THAT(a,
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "mode 0644"));
  EXPECT_THAT(a, StatusIsWith(absl::StatusCode::kFailedPrecondition,
                              "expected owner uid"));
  EXPECT_THAT(a, StatusIsWith(absl::StatusCode::kFailedPrecondition, "0600"));
  EXPECT_TRUE(Segment::Attach(key, {.expected_mode = 0644}).ok());
  EXPECT_TRUE(Segment::Attach(key, {.expected_mode = std::nullopt}).ok());
}

TEST_F(SegmentTest, AttachRefusesAnotherOwner) {
  const IpcKey key = NewKey();
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 64, .key = key});
  ASSERT_TRUE(s.ok()) << s.status();
  shmid_ds ds{};
  ASSERT_EQ(shmctl(s->id(), IPC_STAT, &ds), 0);
  const uid_t other = geteuid() == 65534 ? 65533 : 65534;
  ds.shm_perm.uid = other;
  ASSERT_EQ(shmctl(s->id(), IPC_SET, &ds), 0) << "IPC_SET: " << errno;
  EXPECT_THAT(Segment::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           absl::StrCat("owner uid ", other)));
  EXPECT_THAT(
      Segment::AttachId(s->id(), {.expected_mode = std::nullopt}),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "the owner differs"));
}

TEST_F(SegmentTest, MoveTransfersTheAttachment) {
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 128});
  ASSERT_TRUE(s.ok());
  void* data = s->data();
  Segment moved = std::move(*s);
  EXPECT_EQ(moved.data(), data);
  EXPECT_EQ(s->data(), nullptr);  // NOLINT(bugprone-use-after-move)
  EXPECT_THAT(s->Remove(), StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace shmkit
