// Randomized corruption: copies of a real table's segment with random bytes
// changed in the header, schema, registry, free shards, index and rows.
// Attach, the consistency check, reads, iteration and writes may fail with a
// Status, but never crash, never hang and never read outside the segment
// (the ASan build checks the last part).
#include <cstring>
#include <random>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/internal/layout.h"
#include "shmkit/table/table.h"
#include "table_test_util.h"

namespace shmkit {
namespace {

using ::shmkit::testing::SeqKey;
using ::shmkit::testing::VersionedFields;
using ::shmkit::testing::WSchema;

TEST(Corruption, RandomDamageNeverCrashesOrHangs) {
  constexpr uint64_t kCapacity = 200;
  absl::StatusOr<Table> original = Table::Create(
      WSchema(true), {.capacity = kCapacity, .registry_slots = 8});
  ASSERT_TRUE(original.ok()) << original.status();
  for (int i = 0; i < 150; ++i) {
    ASSERT_TRUE(original->Set(SeqKey(i), VersionedFields(i)).ok());
  }
  for (int i = 0; i < 150; i += 3) ASSERT_TRUE(original->Del(SeqKey(i)).ok());
  const size_t size = original->segment().size();
  std::vector<std::byte> image(size);
  std::memcpy(image.data(), original->segment().data(), size);
  const auto* h = reinterpret_cast<const internal::TableHeader*>(
      image.data() + sizeof(ObjectHeader));
  // Regions to aim at, so each gets its share of damage.
  const std::vector<std::pair<size_t, size_t>> regions = {
      {sizeof(ObjectHeader), sizeof(internal::TableHeader)},
      {h->schema_offset, h->registry_offset - h->schema_offset},
      {h->registry_offset, h->hints_offset - h->registry_offset},
      {h->hints_offset, h->blocks_offset - h->hints_offset},
      {h->blocks_offset, size - h->blocks_offset},
  };

  std::mt19937_64 rng(7);
  int attached = 0, consistent = 0;
  const absl::Time start = absl::Now();
  for (int iter = 0; iter < 400; ++iter) {
    absl::StatusOr<Segment> copy = Segment::Create({.bytes = size});
    ASSERT_TRUE(copy.ok());
    auto* bytes = static_cast<std::byte*>(copy->data());
    std::memcpy(bytes, image.data(), size);
    const int damages = 1 + static_cast<int>(rng() % 8);
    for (int d = 0; d < damages; ++d) {
      const auto& [offset, len] = regions[rng() % regions.size()];
      const size_t at = offset + rng() % len;
      switch (rng() % 3) {
        case 0:
          bytes[at] ^= static_cast<std::byte>(1u << (rng() % 8));
          break;
        case 1:
          bytes[at] = static_cast<std::byte>(rng());
          break;
        default:  // a whole aligned word: indices, lock words, counts
          const size_t word = at & ~size_t{7};
          if (word + 8 <= size) {
            const uint64_t v = (rng() & 1) ? rng() : rng() % (kCapacity + 3);
            std::memcpy(bytes + word, &v, 8);
          }
      }
    }
    absl::StatusOr<Table> t =
        Table::AttachId(copy->id(), {.lock_timeout = absl::Milliseconds(20),
                                     .init_timeout = absl::Milliseconds(20)});
    if (!t.ok()) {
      EXPECT_TRUE(absl::IsFailedPrecondition(t.status())) << t.status();
      continue;
    }
    ++attached;
    if (t->CheckConsistency().ok()) ++consistent;
    Row row;
    const StringColumn s = *t->schema().String("s");
    for (int i = 0; i < 160; i += 7) {
      (void)t->Get(SeqKey(i), &row);
      // Twice through Find: the second lookup takes the inline path.
      for (int pass = 0; pass < 2; ++pass) {
        absl::StatusOr<bool> found = t->Find(SeqKey(i), &row);
        if (found.ok() && *found) {
          // Every byte the accessors hand out is read (ASan: in bounds).
          size_t sum = 0;
          for (char c : row[s]) sum += static_cast<unsigned char>(c);
          for (char c : row.key()) sum += static_cast<unsigned char>(c);
          (void)row.DebugString();
          EXPECT_LE(row[s].size(), 64u) << sum;
        }
      }
    }
    (void)t->Exists("absent");
    uint64_t seen = 0;
    (void)t->ForEach([&](const Row& r) {
      (void)r.DebugString();
      return ++seen < 10 * kCapacity;
    });
    (void)t->Count();
    (void)t->Stats();
    (void)t->Inspect();
    (void)t->Set(SeqKey(1), VersionedFields(1));
    (void)t->Del(SeqKey(2));
    (void)t->Set("new-key", VersionedFields(2));
    (void)t->Incr(SeqKey(4), "n", 1);
    (void)t->Recover();
    (void)t->Sweep();
  }
  std::printf(
      "corruption test: 400 damaged copies, %d attached, %d of those "
      "passed the consistency check, %.1f s\n",
      attached, consistent, absl::ToDoubleSeconds(absl::Now() - start));
  EXPECT_GT(attached, 100);  // most damage is below the header
}

// Find's inline path does not re-read string lengths (fast_find.h): a
// length over its column, which only a damaged segment holds, must still
// never let a Row be read past its buffer, and the checked paths name it.
TEST(Corruption, AStringLengthOverItsColumnIsNeverReadPastTheRow) {
  const Schema schema = WSchema();
  absl::StatusOr<Table> t = Table::Create(schema, {.capacity = 16});
  ASSERT_TRUE(t.ok()) << t.status();
  const StringColumn s = *schema.String("s");
  const std::string key = "damaged-row-key";
  ASSERT_TRUE(t->Set(key, {{s, "short"}}).ok());
  Row row;
  ASSERT_TRUE(*t->Find(key, &row));  // shapes the Row: the next is inline
  ASSERT_EQ(row[s], "short");

  // Find the row by its key bytes and give its string the largest length
  // its one-byte field can hold (255 > 64).
  const internal::RowLayout layout = internal::ComputeRowLayout(schema);
  auto* base = static_cast<std::byte*>(t->segment().data());
  const size_t size = t->segment().size();
  std::byte* row_start = nullptr;
  for (size_t at = 0; at + key.size() <= size; ++at) {
    if (std::memcmp(base + at, key.data(), key.size()) == 0) {
      row_start = base + at - layout.key_offset;
      break;
    }
  }
  ASSERT_NE(row_start, nullptr);
  ASSERT_EQ(layout.columns[s.index].len_bytes, 1u);
  row_start[layout.columns[s.index].len_offset] = std::byte{255};

  absl::StatusOr<bool> found = t->Find(key, &row);
  ASSERT_TRUE(found.ok()) << found.status();
  ASSERT_TRUE(*found);
  EXPECT_EQ(row[s], "");  // bounded: never 255 bytes from a 64-byte column
  EXPECT_TRUE(absl::IsDataLoss(row.GetString(s.index).status()));
  EXPECT_TRUE(absl::IsDataLoss(row.Get("s").status()));
  EXPECT_NE(row.DebugString().find("DATA_LOSS"), std::string::npos);
  EXPECT_TRUE(absl::IsDataLoss(t->CheckConsistency()));
}

}  // namespace
}  // namespace shmkit
