// The shared-memory format of a Table. Everything here lives in the segment
// and is restated field by field by tests/table/layout_golden_test.cc: change
// any of it and bump kTableLayoutVersion.
//
// Segment layout (offsets from the segment start; every region 64-aligned):
//
//   ObjectHeader            128 B   kind kTable, fingerprint = schema digest,
//                                   capacity = rows
//   TableHeader             192 B   geometry (immutable), statistics (own
//                                   cache lines)
//   ColumnDescriptor[n]     64 B each: name, type, size, offsets in a row
//   ProcessRegistry         header + slots + per-slot SlotArea (the write
//                           record and the saved row bytes)
//   free hints[W]           8 B each, W = ceil(capacity / 64): bit r set when
//                           row r may be free (a hint; the row state decides)
//   hint summary[ceil(W/64)]  bit w set when hint word w may be non-zero
//   blocks[B]               B = ceil(capacity / 2) buckets, block_stride each
//
// A block is one bucket and its two home rows, so the common lookup touches
// one place in memory:
//
//   struct Block {             // block_stride = 16 + 2 * row_stride
//     uint64_t lock;           // the bucket's OwnerLock word (writers only)
//     uint64_t seq_head;       // seq (bits 0..31, odd while a writer changes
//                              // the bucket) | head (bits 32..63: first row
//                              // of the chain + 1; 0 = empty)
//     Row home[2];             // rows 2b and 2b + 1
//   };
//
// Row r lives in block r / 2 at home position r % 2, whichever bucket's chain
// it belongs to. A row (offsets from the schema's RowLayout; items sorted by
// alignment so nothing is padded but the tail):
//
//   8-byte items            expiry (TTL tables), int64 and float64 columns
//   next   u32              row index + 1 of the next row in the chain; 0 ends
//   state  u16              kRowFree, kRowLive, or registry slot + 1 of the
//                           writer whose insert or delete has the row in
//                           flight (see table_core.h)
//   4/2/1-byte items        narrower ints and floats, length fields of the
//                           key and of each string column (1, 2 or 4 bytes by
//                           their maximum)
//   key bytes, string bytes
#ifndef SHMKIT_TABLE_INTERNAL_LAYOUT_H_
#define SHMKIT_TABLE_INTERNAL_LAYOUT_H_

#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "absl/status/statusor.h"
#include "shmkit/ipc/object.h"
#include "shmkit/table/schema.h"

namespace shmkit::internal {

// 2: buckets are blocks holding their two home rows; free rows are found
// through a hint bitmap; rows carry their claim state (version 1 had a
// separate bucket array and free-list shards).
// 3: TableHeader::no_free_rows (was reserved): a process of version 2 would
// never clear it.
inline constexpr uint32_t kTableLayoutVersion = 3;

// A bucket's reader word, loaded whole:
//   bits  0..31  seq: odd while a writer changes the bucket (seqlock)
//   bits 32..63  head: first row index + 1; 0 = empty
// Only the holder of the bucket's lock stores it.
constexpr uint32_t SeqOf(uint64_t word) { return static_cast<uint32_t>(word); }
constexpr uint32_t HeadOf(uint64_t word) {
  return static_cast<uint32_t>(word >> 32);
}
constexpr uint64_t SeqHeadWord(uint32_t seq, uint32_t head) {
  return (uint64_t{head} << 32) | seq;
}

inline constexpr uint32_t kRowsPerBlock = 2;
// The block header: lock word, then seq_head.
inline constexpr uint32_t kBlockHeaderBytes = 16;
inline constexpr uint32_t kBlockLockOffset = 0;
inline constexpr uint32_t kBlockSeqHeadOffset = 8;

// Row states (the u16 `state` field).
inline constexpr uint32_t kRowFree = 0;
inline constexpr uint32_t kRowLive = 0xffff;
// Otherwise: registry slot + 1 (1 .. kMaxTableRegistrySlots) of the writer
// that has the row in flight. Slots stop below kRowLive.
inline constexpr uint32_t kMaxTableRegistrySlots = 0xfffe;

inline constexpr uint32_t kTableFlagTtl = 1;

struct TableHeader {
  // Geometry: written once by the creator, validated on attach.
  uint32_t layout_version;
  uint32_t column_count;
  uint32_t max_key_bytes;
  uint32_t flags;
  uint64_t capacity;
  uint32_t bucket_count;  // blocks
  uint32_t row_stride;
  uint32_t block_stride;
  uint32_t registry_slots;
  uint32_t slot_area_bytes;
  uint32_t hint_words;
  uint64_t schema_offset;
  uint64_t registry_offset;
  uint64_t hints_offset;
  uint64_t summary_offset;
  uint64_t blocks_offset;
  uint64_t total_bytes;
  uint32_t key_offset;
  uint32_t key_len_offset;
  uint32_t key_len_bytes;
  uint32_t expiry_offset;  // 0 when the table has no TTL
  uint32_t next_offset;
  uint32_t state_offset;
  // 1 while no row is free: set by an insert that scanned every hint and
  // found none (twice: see core_alloc.cc), cleared by every free. Inserts
  // that find their home rows taken refuse at once while it is set instead
  // of scanning the table. On the geometry's line, which nothing else
  // writes after creation.
  uint64_t no_free_rows;
  // Statistics (atomic counters; rare events only, so sharing is fine), and
  // the reclaim clock, on their own cache line.
  alignas(64) uint64_t failed_inserts;
  uint64_t lock_waits;
  uint64_t recoveries;
  uint64_t expired_reclaimed;
  uint64_t chain_repairs;
  uint64_t read_fallbacks;  // optimistic reads that took the lock
  // CLOCK_MONOTONIC ms before which an insert that finds the table full
  // does not scan for crashed writers and expired rows again.
  uint64_t reclaim_after_ms;
  uint64_t reserved1;
};
static_assert(sizeof(TableHeader) == 192 &&
                  std::is_trivially_copyable_v<TableHeader> &&
                  std::is_standard_layout_v<TableHeader>,
              "the table header is plain fields on three cache lines");

struct ColumnDescriptor {
  char name[32];  // NUL-padded
  uint8_t type;   // ColumnType
  uint8_t len_bytes;
  uint16_t reserved0;
  uint32_t size;
  uint32_t offset;
  uint32_t len_offset;
  uint8_t reserved1[16];
};
static_assert(sizeof(ColumnDescriptor) == 64 &&
                  std::is_trivially_copyable_v<ColumnDescriptor>,
              "one cache line per column descriptor");

// What a write is doing, kept in the writer's registry slot so whoever takes
// over its bucket lock after a crash can finish or undo it.
enum RecordOp : uint32_t {
  kRecordNone = 0,
  kRecordUpdate = 1,  // row `row` rewritten in place; image holds old bytes
  kRecordInsert = 2,  // a row (`row`, once chosen) claimed for `bucket`
  kRecordDelete = 3,  // row `row` being unlinked from `bucket` and freed
};

// The per-slot area of the registry (ProcessRegistry::Extra): the record of
// the write in progress, live while the slot is pinned, followed by the
// saved row bytes (image_len bytes of the row at image_offset).
struct SlotArea {
  uint64_t token;  // LockWordOf(owner): whose record this is
  uint32_t op;     // RecordOp
  uint32_t bucket;
  uint32_t row;  // row index + 1 (0: none chosen yet)
  uint32_t image_offset;
  uint32_t image_len;
  uint32_t reserved0;
  // Rows this slot claimed minus rows it freed, over every occupant the slot
  // ever had (never reset): Count() is the sum over slots. Written by the
  // occupant, or by whoever recovers its record.
  int64_t live_delta;
  int64_t delta_before;  // live_delta when the record began
  uint64_t reserved1[2];
};
static_assert(sizeof(SlotArea) == 64 && std::is_trivially_copyable_v<SlotArea>,
              "the slot area header is one cache line; the image follows");

// Where each column and the key live in a row, derived from the schema.
struct RowLayout {
  uint32_t stride = 0;
  uint32_t next_offset = 0;
  uint32_t state_offset = 0;
  uint32_t expiry_offset = 0;  // 0 = no TTL (offset 0 is never the expiry
                               // of a table without TTL)
  bool has_expiry = false;
  uint32_t key_offset = 0;
  uint32_t key_len_offset = 0;
  uint32_t key_len_bytes = 0;
  struct Column {
    uint32_t offset = 0;      // value (ints, floats) or bytes (text)
    uint32_t len_offset = 0;  // text only
    uint32_t len_bytes = 0;   // text only: 1, 2 or 4
  };
  std::vector<Column> columns;
};

RowLayout ComputeRowLayout(const Schema& schema);

// Width of a length field for values up to `max` bytes.
inline uint32_t LengthBytesFor(uint32_t max) {
  return max <= 0xff ? 1 : max <= 0xffff ? 2 : 4;
}

// The whole segment's geometry for (schema, capacity, slots).
struct SegmentPlan {
  RowLayout row;
  uint64_t capacity = 0;
  uint32_t bucket_count = 0;  // blocks
  uint32_t block_stride = 0;
  uint32_t registry_slots = 0;
  uint32_t slot_area_bytes = 0;
  uint32_t hint_words = 0;
  uint64_t schema_offset = 0;
  uint64_t registry_offset = 0;
  uint64_t registry_bytes = 0;
  uint64_t hints_offset = 0;
  uint64_t summary_offset = 0;
  uint64_t blocks_offset = 0;
  uint64_t total_bytes = 0;
};

// InvalidArgument for a capacity outside 1..kMaxCapacity, registry slots
// outside 1..kMaxTableRegistrySlots, or a size beyond any segment.
inline constexpr uint64_t kMaxCapacity = 0xfffffffeull;
absl::StatusOr<SegmentPlan> PlanSegment(const Schema& schema, uint64_t capacity,
                                        uint32_t registry_slots);

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_LAYOUT_H_
