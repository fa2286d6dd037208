// Attach validates the segment before using anything in it, and refuses a
// mismatch with FailedPrecondition naming what differs.
#include <sys/shm.h>

#include <cstring>

#include "gtest/gtest.h"
#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"
#include "test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::StatusIs;
using ::shmkit::testing::StatusIsWith;
using ::shmkit::testing::UniqueKey;
using ::shmkit::testing::WSchema;

class AttachTest : public ::testing::Test {
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
  // A keyed table and a raw writable view of its segment.
  std::pair<Table, Segment> Keyed(IpcKey key, mode_t mode = 0600) {
    absl::StatusOr<Table> t =
        Table::Create(WSchema(), {.capacity = 64, .key = key, .mode = mode});
    EXPECT_TRUE(t.ok()) << t.status();
    absl::StatusOr<Segment> raw =
        Segment::Attach(key, {.expected_mode = std::nullopt});
    EXPECT_TRUE(raw.ok()) << raw.status();
    return {*std::move(t), *std::move(raw)};
  }
  std::vector<IpcKey> keys_;
};

TEST_F(AttachTest, SharesDataAndRebuildsTheSchemaFromTheHeader) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  ASSERT_TRUE(table.Set("k", {{"n", 5}, {"s", "hi"}}).ok());
  absl::StatusOr<Table> other = Table::Attach(key);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->schema().DebugString(), WSchema().DebugString());
  EXPECT_EQ(*other->Get("k")->GetString("s"), "hi");
  ASSERT_TRUE(other->Incr("k", "n", 1).ok());
  EXPECT_EQ(*table.Get("k")->GetInt("n"), 6);
  EXPECT_TRUE(Table::Attach(key, {.expected_schema = WSchema()}).ok());
  EXPECT_THAT(Table::Create(WSchema(), {.capacity = 8, .key = key}),
              StatusIs(absl::StatusCode::kAlreadyExists));
}

TEST_F(AttachTest, WrongMagic) {
  const IpcKey key = NewKey();
  absl::StatusOr<Segment> s = Segment::Create({.bytes = 65536, .key = key});
  ASSERT_TRUE(s.ok());
  std::memset(s->data(), 0x5a, 4096);
  EXPECT_THAT(Table::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "not a shmkit object: magic"));
}

TEST_F(AttachTest, WrongKind) {
  const IpcKey key = NewKey();
  absl::StatusOr<AtomicCounter> c = AtomicCounter::Create({.key = key});
  ASSERT_TRUE(c.ok());
  EXPECT_THAT(Table::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "holds kind atomic-counter (2), not table"));
}

TEST_F(AttachTest, WrongFormatWord) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  static_cast<ObjectHeader*>(raw.data())->format ^=
      0x00ff0000;  // lock word size
  EXPECT_THAT(
      Table::Attach(key),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "format word"));
}

TEST_F(AttachTest, WrongLayoutVersion) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  static_cast<ObjectHeader*>(raw.data())->kind_version = 99;
  EXPECT_THAT(
      Table::Attach(key),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "layout version 99"));
}

TEST_F(AttachTest, WrongGeometry) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  auto* h = reinterpret_cast<internal::TableHeader*>(
      static_cast<std::byte*>(raw.data()) + sizeof(ObjectHeader));
  h->row_stride += 8;
  EXPECT_THAT(Table::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "layout that differs"));
}

TEST_F(AttachTest, SchemaFingerprintAndExpectedSchema) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  const Schema other = *Schema::Builder()
                            .Int("n", 4)
                            .Float("x")
                            .String("s", 64)
                            .MaxKeyBytes(16)
                            .Build();
  EXPECT_THAT(Table::Attach(key, {.expected_schema = other}),
              StatusIsWith(absl::StatusCode::kFailedPrecondition,
                           "column 0 is n:int64 vs n:int32"));
  static_cast<ObjectHeader*>(raw.data())->fingerprint ^= 1;
  EXPECT_THAT(
      Table::Attach(key),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "fingerprint"));
}

TEST_F(AttachTest, WrongOwner) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  shmid_ds ds{};
  ASSERT_EQ(shmctl(raw.id(), IPC_STAT, &ds), 0);
  ds.shm_perm.uid = geteuid() == 65534 ? 65533 : 65534;
  ASSERT_EQ(shmctl(raw.id(), IPC_SET, &ds), 0);
  EXPECT_THAT(
      Table::Attach(key),
      StatusIsWith(absl::StatusCode::kFailedPrecondition, "the owner differs"));
}

TEST_F(AttachTest, WrongMode) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key, 0640);
  EXPECT_THAT(Table::Attach(key),
              StatusIsWith(absl::StatusCode::kFailedPrecondition, "mode 0640"));
  EXPECT_TRUE(Table::Attach(key, {.expected_mode = 0640}).ok());
}

TEST_F(AttachTest, MissingKeyIsNotFound) {
  EXPECT_THAT(Table::Attach(NewKey()), StatusIs(absl::StatusCode::kNotFound));
}

TEST_F(AttachTest, ReadOnlyAttachReads) {
  const IpcKey key = NewKey();
  auto [table, raw] = Keyed(key);
  ASSERT_TRUE(table.Set("k", {{"n", 1}}).ok());
  absl::StatusOr<Table> ro = Table::Attach(key, {.read_only = true});
  ASSERT_TRUE(ro.ok()) << ro.status();
  EXPECT_EQ(*ro->Get("k")->GetInt("n"), 1);
  EXPECT_THAT(ro->Set("k", {{"n", 2}}),
              StatusIs(absl::StatusCode::kFailedPrecondition));
}

}  // namespace
}  // namespace shmkit
