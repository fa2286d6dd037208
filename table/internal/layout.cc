#include "shmkit/table/internal/layout.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/process_registry.h"

namespace shmkit::internal {
namespace {

uint64_t RoundUp(uint64_t n, uint64_t to) { return (n + to - 1) / to * to; }

enum class ItemKind { kExpiry, kNext, kState, kKeyLen, kKey, kValue, kTextLen };

struct Item {
  uint32_t size;
  uint32_t align;
  ItemKind kind;
  int column;  // for kValue / kTextLen
};

}  // namespace

RowLayout ComputeRowLayout(const Schema& schema) {
  std::vector<Item> items;
  if (schema.ttl()) items.push_back({8, 8, ItemKind::kExpiry, -1});
  items.push_back({4, 4, ItemKind::kNext, -1});
  items.push_back({2, 2, ItemKind::kState, -1});
  const uint32_t key_len_bytes = LengthBytesFor(schema.max_key_bytes());
  items.push_back({key_len_bytes, key_len_bytes, ItemKind::kKeyLen, -1});
  items.push_back({schema.max_key_bytes(), 1, ItemKind::kKey, -1});
  for (int i = 0; i < schema.column_count(); ++i) {
    const ColumnSpec& c = schema.column(i);
    if (c.is_text()) {
      const uint32_t lb = LengthBytesFor(c.size);
      items.push_back({lb, lb, ItemKind::kTextLen, i});
      items.push_back({c.size, 1, ItemKind::kValue, i});
    } else {
      items.push_back({c.size, c.size, ItemKind::kValue, i});
    }
  }
  // Widest alignment first: no padding between items. Byte arrays come
  // after every scalar, the key first among them (it is read on every
  // lookup, right after its length).
  auto is_array = [](const Item& i) {
    return i.kind == ItemKind::kKey ||
           (i.kind == ItemKind::kValue && i.align == 1 && i.size != 1);
  };
  std::stable_sort(items.begin(), items.end(),
                   [&](const Item& a, const Item& b) {
                     if (is_array(a) != is_array(b)) return !is_array(a);
                     return a.align > b.align;
                   });

  RowLayout layout;
  layout.has_expiry = schema.ttl();
  layout.key_len_bytes = key_len_bytes;
  layout.columns.resize(schema.column_count());
  uint32_t offset = 0;
  for (const Item& item : items) {
    offset = static_cast<uint32_t>(RoundUp(offset, item.align));
    switch (item.kind) {
      case ItemKind::kExpiry:
        layout.expiry_offset = offset;
        break;
      case ItemKind::kNext:
        layout.next_offset = offset;
        break;
      case ItemKind::kState:
        layout.state_offset = offset;
        break;
      case ItemKind::kKeyLen:
        layout.key_len_offset = offset;
        break;
      case ItemKind::kKey:
        layout.key_offset = offset;
        break;
      case ItemKind::kValue:
        layout.columns[item.column].offset = offset;
        break;
      case ItemKind::kTextLen:
        layout.columns[item.column].len_offset = offset;
        layout.columns[item.column].len_bytes = item.size;
        break;
    }
    offset += item.size;
  }
  // Rows start 8-aligned so racy copies can use aligned 8-byte atomic loads.
  layout.stride = static_cast<uint32_t>(RoundUp(offset, 8));
  return layout;
}

absl::StatusOr<SegmentPlan> PlanSegment(const Schema& schema, uint64_t capacity,
                                        uint32_t registry_slots) {
  // Row indices are stored as index + 1 in 32 bits.
  if (capacity < 1 || capacity > kMaxCapacity) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity ", capacity, " is outside 1..", kMaxCapacity));
  }
  // A row in flight carries its writer's slot + 1 in 16 bits, below
  // kRowLive.
  if (registry_slots < 1 || registry_slots > kMaxTableRegistrySlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry slots ", registry_slots, " outside 1..",
                     kMaxTableRegistrySlots));
  }
  SegmentPlan plan;
  plan.row = ComputeRowLayout(schema);
  plan.capacity = capacity;
  plan.bucket_count =
      static_cast<uint32_t>((capacity + kRowsPerBlock - 1) / kRowsPerBlock);
  plan.block_stride = kBlockHeaderBytes + kRowsPerBlock * plan.row.stride;
  plan.registry_slots = registry_slots;
  plan.slot_area_bytes =
      static_cast<uint32_t>(sizeof(SlotArea)) + plan.row.stride;
  plan.hint_words = static_cast<uint32_t>((capacity + 63) / 64);

  uint64_t offset = sizeof(ObjectHeader) + sizeof(TableHeader);
  plan.schema_offset = RoundUp(offset, kCacheLineBytes);
  offset = plan.schema_offset +
           uint64_t{static_cast<uint32_t>(schema.column_count())} *
               sizeof(ColumnDescriptor);
  plan.registry_offset = RoundUp(offset, kCacheLineBytes);
  absl::StatusOr<size_t> registry_bytes =
      ProcessRegistry::BytesFor(registry_slots, plan.slot_area_bytes);
  if (!registry_bytes.ok()) return registry_bytes.status();
  plan.registry_bytes = *registry_bytes;
  offset = plan.registry_offset + plan.registry_bytes;
  plan.hints_offset = RoundUp(offset, kCacheLineBytes);
  offset = plan.hints_offset + uint64_t{plan.hint_words} * sizeof(uint64_t);
  plan.summary_offset = RoundUp(offset, kCacheLineBytes);
  offset = plan.summary_offset +
           (uint64_t{plan.hint_words} + 63) / 64 * sizeof(uint64_t);
  plan.blocks_offset = RoundUp(offset, kCacheLineBytes);
  uint64_t blocks_bytes = 0;
  if (__builtin_mul_overflow(uint64_t{plan.bucket_count},
                             uint64_t{plan.block_stride}, &blocks_bytes) ||
      __builtin_add_overflow(blocks_bytes, plan.blocks_offset,
                             &plan.total_bytes) ||
      plan.total_bytes > (uint64_t{1} << 62)) {
    return absl::InvalidArgumentError(
        absl::StrCat("capacity ", capacity, " rows of ", plan.row.stride,
                     " bytes is beyond any addressable segment"));
  }
  return plan;
}

}  // namespace shmkit::internal
