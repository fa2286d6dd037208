// libFuzzer target: a real table's segment, damaged by the fuzzer's input,
// then attached and driven through every operation of the Table API. Attach,
// the consistency check, reads, iteration, writes and recovery may fail with
// a Status but must never crash, hang, or read or write outside the segment
// (the fuzz build compiles the library with ASan and UBSan, and with the
// coverage instrumentation that guides libFuzzer through the library's
// code; see the top-level CMakeLists.txt).
//
// Input: byte 0 = number of patches P; then P patches, each a 4-byte offset,
// a 1-byte length (1..8) and that many bytes written over the segment; then
// each remaining byte is one operation (low 5 bits: which; high 3 bits:
// which key). After them every operation runs once more on fixed keys, so
// each input reaches every entry point.
//
// Commands (tests/README.md):
//   cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ \
//     -DSHMKIT_BUILD_FUZZERS=ON -DSHMKIT_BUILD_BENCH=OFF -DSHMKIT_BUILD_PHP=OFF
//   cmake --build build-fuzz -t table_fuzz
//   build-fuzz/tests/table_fuzz -max_len=256 -max_total_time=600
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "absl/types/span.h"
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

constexpr int kOps = 24;

// One operation of the Table API on `key`; every result is accepted, none
// may crash.
void RunOp(Table& t, int op, const std::string& key) {
  Row row;
  switch (op % kOps) {
    case 0:
      (void)t.Get(key);
      break;
    case 1:
      (void)t.Get(key, &row);
      break;
    case 2:
      (void)t.Find(key, &row);
      break;
    case 3: {
      const std::string other = Key(7);
      const absl::string_view keys[] = {key, other};
      Row rows[2];
      bool found[2] = {};
      (void)t.FindMany(keys, absl::MakeSpan(rows), absl::MakeSpan(found));
      break;
    }
    case 4:
      (void)t.GetColumn(key, "s");
      break;
    case 5:
      (void)t.Exists(key);
      break;
    case 6:
      (void)t.Set(key, {{"n", 7}, {"x", 0.5}, {"s", "abc"}});
      break;
    case 7:
      (void)t.Set(key, {{"n", 1}}, {.ttl = absl::Milliseconds(1)});
      break;
    case 8:
      (void)t.Add(key, {{"s", std::string(40, 'a')}});
      break;
    case 9:
      (void)t.Update(key, {{"x", 2.0}});
      break;
    case 10:
      (void)t.Del(key);
      break;
    case 11:
      (void)t.GetAndDelete(key);
      break;
    case 12:
      (void)t.Incr(key, "n", 1);
      break;
    case 13:
      (void)t.Incr(key, "n", 1, {.create = true});
      break;
    case 14:
      (void)t.Decr(key, "n", 3);
      break;
    case 15:
      (void)t.IncrFloat(key, "x", 1.5);
      break;
    case 16:
      (void)t.CompareAndSet(key, "n", int64_t{7}, int64_t{8});
      break;
    case 17: {
      size_t seen = 0;
      (void)t.ForEach([&](const Row& r) {
        (void)r.DebugString();
        return ++seen < 1000;
      });
      break;
    }
    case 18: {
      uint64_t cursor = 0;
      for (int page = 0; page < 100; ++page) {
        absl::StatusOr<shmkit::ScanPage> p = t.Scan(cursor, 16);
        if (!p.ok() || p->next_cursor == 0) break;
        cursor = p->next_cursor;
      }
      break;
    }
    case 19:
      (void)t.Count();
      (void)t.Stats();
      (void)t.Inspect();
      break;
    case 20:
      (void)t.Sweep();
      break;
    case 21:
      (void)t.Recover();
      break;
    case 22:
      (void)t.CheckConsistency();
      break;
    case 23:
      (void)t.Clear();
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<std::byte>& image = Image();
  absl::StatusOr<Segment> copy = Segment::Create({.bytes = image.size()});
  if (!copy.ok()) return 0;
  auto* bytes = static_cast<std::byte*>(copy->data());
  std::memcpy(bytes, image.data(), image.size());
  size_t pos = 0;
  const size_t patches = size > 0 ? data[pos++] : 0;
  for (size_t p = 0; p < patches && pos + 5 <= size; ++p) {
    uint32_t offset;
    std::memcpy(&offset, data + pos, 4);
    const size_t len = 1 + data[pos + 4] % 8;
    pos += 5;
    if (pos + len > size) break;
    const size_t at = offset % image.size();
    std::memcpy(bytes + at, data + pos, std::min(len, image.size() - at));
    pos += len;
  }
  const bool read_only = patches % 2 == 1;
  absl::StatusOr<Table> t =
      Table::AttachId(copy->id(), {.read_only = read_only,
                                   .lock_timeout = absl::Milliseconds(1),
                                   .init_timeout = absl::Milliseconds(1)});
  if (!t.ok()) return 0;
  (void)t->CheckConsistency();
  for (; pos < size; ++pos) {
    RunOp(*t, data[pos] & 31, Key(data[pos] >> 5));
  }
  for (int op = 0; op < kOps; ++op) RunOp(*t, op, Key(op % 52));
  (void)t->CheckConsistency();
  return 0;
}
