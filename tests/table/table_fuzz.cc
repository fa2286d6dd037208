// libFuzzer target: a real table's segment, damaged by the fuzzer's input
// (a list of (offset, bytes) patches), then attached and exercised. Attach,
// the consistency check, reads, iteration and writes may fail with a Status
// but must never crash, hang or read outside the segment.
//
// Built only with clang and -DSHMKIT_BUILD_FUZZERS=ON:
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
//     -DSHMKIT_BUILD_FUZZERS=ON -DSHMKIT_BUILD_BENCH=OFF
//   ninja -C build-fuzz table_fuzz && build-fuzz/tests/table_fuzz
//   -max_total_time=60
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/table.h"

namespace {

using shmkit::Row;
using shmkit::Schema;
using shmkit::Segment;
using shmkit::Table;

std::string Key(int i) { return absl::StrFormat("key-%011d", i); }

// A populated table's bytes, made once.
const std::vector<std::byte>& Image() {
  static const std::vector<std::byte>* image = [] {
    const Schema schema = *Schema::Builder()
                               .Int("n")
                               .Float("x")
                               .String("s", 40)
                               .MaxKeyBytes(16)
                               .WithTtl()
                               .Build();
    Table t = *Table::Create(schema, {.capacity = 64, .registry_slots = 4});
    for (int i = 0; i < 50; ++i) {
      (void)t.Set(Key(i), {{"n", i}, {"s", std::string(i % 40, 's')}});
    }
    for (int i = 0; i < 50; i += 4) (void)t.Del(Key(i));
    auto* out = new std::vector<std::byte>(t.segment().size());
    std::memcpy(out->data(), t.segment().data(), out->size());
    return out;
  }();
  return *image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::byte>& image = Image();
  absl::StatusOr<Segment> copy = Segment::Create({.bytes = image.size()});
  if (!copy.ok()) return 0;
  auto* bytes = static_cast<std::byte*>(copy->data());
  std::memcpy(bytes, image.data(), image.size());
  // Patches: 4-byte offset, 1-byte length (1..8), then that many bytes.
  size_t pos = 0;
  while (pos + 5 <= size) {
    uint32_t offset;
    std::memcpy(&offset, data + pos, 4);
    const size_t len = 1 + data[pos + 4] % 8;
    pos += 5;
    if (pos + len > size) break;
    const size_t at = offset % image.size();
    std::memcpy(bytes + at, data + pos, std::min(len, image.size() - at));
    pos += len;
  }
  absl::StatusOr<Table> t =
      Table::AttachId(copy->id(), {.lock_timeout = absl::Milliseconds(5),
                                   .init_timeout = absl::Milliseconds(5)});
  if (!t.ok()) return 0;
  (void)t->CheckConsistency();
  Row row;
  for (int i = 0; i < 52; i += 3) (void)t->Get(Key(i), &row);
  size_t seen = 0;
  (void)t->ForEach([&](const Row& r) {
    (void)r.DebugString();
    return ++seen < 1000;
  });
  (void)t->Stats();
  (void)t->Inspect();
  (void)t->Set(Key(1), {{"n", 7}});
  (void)t->Del(Key(2));
  (void)t->Incr(Key(3), "n", 1);
  (void)t->Sweep();
  (void)t->Recover();
  return 0;
}
