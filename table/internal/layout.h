// The shared-memory format of a Table. Everything here lives in the segment
// and is checked field by field by tests/table/layout_golden_test.cc: change
// any of it and bump kTableLayoutVersion.
//
// Segment layout (offsets from the segment start; every region 64-aligned):
//
//   ObjectHeader            128 B   kind kTable, fingerprint = schema digest,
//                                   capacity = rows
//   TableHeader             320 B   geometry (immutable), allocation words,
//                                   statistics (each group on its own lines)
//   ColumnDescriptor[n]     64 B each: name, type, size, offsets in a row
//   ProcessRegistry         header + slots + per-slot SlotArea (undo record
//                           and saved row bytes)
//   FreeShard[shard_count]  64 B each: lock word, free-list head and count
//   bucket words[B]         8 B each: seqlock counter and chain head, what
//                           readers load (one word, so one cache miss)
//   bucket locks[B]         8 B each: the OwnerLock words, writers only
//   rows[capacity]          row_stride bytes each
//
// Free rows are kept in up to 64 free-list shards, each behind its own
// OwnerLock (no table-wide lock, and crash-exact: see table_core.cc).
//
// A row (offsets from the schema's RowLayout; items sorted by alignment so
// nothing is padded but the tail):
//
//   8-byte items            expiry (TTL tables), int64 and float64 columns
//   next   u32              row index + 1 of the next row in the chain or in
//                           the free list; 0 ends either
//   state  u16              0: free (in a free shard). Otherwise the registry
//                           slot + 1 of the thread that allocated it, set
//                           under the shard lock, so a crash between
//                           allocating and linking is always attributable
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

inline constexpr uint32_t kTableLayoutVersion = 1;

// A bucket as readers see it: one 8-byte word, loaded whole.
//   bits  0..31  seq: odd while a writer changes the bucket (seqlock)
//   bits 32..63  head: first row index + 1; 0 = empty
// Only the holder of the bucket's lock (a separate array, so readers never
// load lock words) stores it. Splitting the two halves the index memory
// readers touch (7 MB instead of 14 MB for workload W), so more of it stays
// in cache.
constexpr uint32_t SeqOf(uint64_t word) { return static_cast<uint32_t>(word); }
constexpr uint32_t HeadOf(uint64_t word) {
  return static_cast<uint32_t>(word >> 32);
}
constexpr uint64_t BucketWord(uint32_t seq, uint32_t head) {
  return (uint64_t{head} << 32) | seq;
}
// Bytes of index per bucket: its word and its lock word.
inline constexpr size_t kBucketBytes = 16;

inline constexpr uint32_t kTableFlagTtl = 1;

struct TableHeader {
  // Geometry: written once by the creator, validated on attach.
  uint32_t layout_version;
  uint32_t column_count;
  uint32_t max_key_bytes;
  uint32_t flags;
  uint64_t capacity;
  uint32_t bucket_count;
  uint32_t row_stride;
  uint32_t registry_slots;
  uint32_t slot_area_bytes;
  uint64_t schema_offset;
  uint64_t registry_offset;
  uint64_t buckets_offset;
  uint64_t rows_offset;
  uint64_t total_bytes;
  uint32_t key_offset;
  uint32_t key_len_offset;
  uint32_t key_len_bytes;
  uint32_t expiry_offset;  // 0 when the table has no TTL
  uint32_t next_offset;
  uint32_t state_offset;
  uint32_t shard_count;
  uint32_t reserved0a;
  uint64_t shards_offset;
  uint64_t bucket_locks_offset;
  // Statistics (atomic counters; rare events only, so sharing is fine).
  alignas(64) uint64_t failed_inserts;
  uint64_t lock_waits;
  uint64_t recoveries;
  uint64_t expired_reclaimed;
  uint64_t chain_repairs;
  uint64_t read_fallbacks;  // optimistic reads that took the lock
  uint64_t reserved2[2];
};
static_assert(sizeof(TableHeader) == 192 &&
                  std::is_trivially_copyable_v<TableHeader>,
              "the table header is plain fields on three cache lines");

// A shard of the free-row pool.
struct FreeShard {
  uint64_t lock;   // OwnerLock word
  uint32_t head;   // first free row + 1; 0 = empty
  uint32_t count;  // free rows in this shard
  uint64_t reserved[6];
};
static_assert(sizeof(FreeShard) == 64 &&
                  std::is_trivially_copyable_v<FreeShard>,
              "one shard per cache line: shards are taken by different "
              "threads at once");
inline constexpr uint32_t kMaxFreeShards = 64;

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

// What a write was doing, kept in the writer's registry slot so whoever
// takes over its bucket lock after a crash can finish or undo it.
enum UndoOp : uint32_t {
  kUndoNone = 0,
  kUndoUpdate = 1,  // row `row` rewritten in place; image holds the old bytes
  kUndoInsert = 2,  // row `row` allocated for bucket `bucket`, maybe linked
  kUndoDelete = 3,  // row `row` being unlinked from `bucket` and freed
};

// The per-slot area of the registry (ProcessRegistry::Extra): the record
// of the write in progress, valid while the slot is pinned, followed by the
// saved row bytes (image_len bytes of the row at image_offset).
struct SlotArea {
  uint64_t token;   // LockWordOf(owner): whose record this is
  uint32_t bucket;  // the bucket whose lock the writer holds
  uint32_t op;      // UndoOp
  uint32_t row;     // row index + 1 (0: none chosen yet)
  uint32_t image_offset;
  uint32_t image_len;
  uint32_t shard;               // free shard + 1 being changed (0: none)
  uint32_t shard_count_before;  // that shard's count before the change
  uint32_t reserved[7];
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

// The whole segment's geometry for (schema, capacity, buckets, slots).
struct SegmentPlan {
  RowLayout row;
  uint64_t capacity = 0;
  uint32_t bucket_count = 0;
  uint32_t registry_slots = 0;
  uint32_t slot_area_bytes = 0;
  uint64_t schema_offset = 0;
  uint64_t registry_offset = 0;
  uint64_t registry_bytes = 0;
  uint32_t shard_count = 0;
  uint64_t shards_offset = 0;
  uint64_t buckets_offset = 0;
  uint64_t bucket_locks_offset = 0;
  uint64_t rows_offset = 0;
  uint64_t total_bytes = 0;
};

absl::StatusOr<SegmentPlan> PlanSegment(const Schema& schema, uint64_t capacity,
                                        uint64_t buckets,
                                        uint32_t registry_slots);

}  // namespace shmkit::internal

#endif  // SHMKIT_TABLE_INTERNAL_LAYOUT_H_
