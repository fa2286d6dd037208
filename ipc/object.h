// The header every shmkit segment starts with, and the create/attach steps
// all shmkit objects (tables, counters, ring queues, events) share.
//
// A segment is trusted only after its header checks out: magic, format word
// (format version plus the sizes that matter: lock word, pid_t, cache line),
// header size, kind, kind version, total size against the real segment size,
// and readiness. A mismatch is FailedPrecondition naming what differs, so two
// incompatible builds refuse to share a segment instead of corrupting it.
#ifndef SHMKIT_IPC_OBJECT_H_
#define SHMKIT_IPC_OBJECT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/segment.h"

namespace shmkit {

inline constexpr size_t kCacheLineBytes = 64;

// What a shmkit segment holds.
enum class ObjectKind : uint32_t {
  kTable = 1,
  kAtomicCounter = 2,
  kSemCounter = 3,
  kRingQueue = 4,
  kEvent = 5,
  kLockArena = 6,  // OwnerLock words plus a registry (tests, benchmarks)
  kPipeLock = 7,   // the writer lock of a pipe/FIFO queue
};
absl::string_view ObjectKindName(ObjectKind kind);

// "SHMKIT" followed by 0x00 0x01, read as a little-endian 64-bit word.
inline constexpr uint64_t kObjectMagic = 0x0100'5449'4B4D'4853ull;
// Bump when ObjectHeader itself changes (each kind versions its own body).
inline constexpr uint32_t kObjectFormatVersion = 1;

// The format word: which build wrote this segment.
//   bits  0..15  kObjectFormatVersion
//   bits 16..23  sizeof(lock word) = sizeof(uint64_t)
//   bits 24..27  sizeof(pid_t)
//   bits 28..31  log2(kCacheLineBytes)
constexpr uint32_t ObjectFormatWord() {
  return kObjectFormatVersion | (uint32_t{sizeof(uint64_t)} << 16) |
         (uint32_t{sizeof(pid_t)} << 24) | (uint32_t{6} << 28);
}
static_assert(kCacheLineBytes == (1u << 6));

enum class ObjectState : uint32_t { kInitializing = 0, kReady = 1 };

// Offset 0 of every shmkit segment. 128 bytes, two cache lines.
struct ObjectHeader {
  uint64_t magic;         // kObjectMagic
  uint32_t format;        // ObjectFormatWord()
  uint32_t kind;          // ObjectKind
  uint32_t kind_version;  // layout version of the kind's body
  uint32_t header_bytes;  // sizeof(ObjectHeader)
  uint64_t total_bytes;   // bytes the object uses (<= segment size)
  uint64_t fingerprint;   // kind-specific (tables: schema fingerprint)
  uint64_t capacity;      // kind-specific (rows, slots; 0 if none)
  uint32_t creator_uid;
  int32_t creator_pid;
  uint64_t creator_start_time;  // /proc/<pid>/stat field 22
  int64_t created_unix_ns;
  uint32_t state;  // ObjectState, atomic access; kReady last
  uint32_t reserved0;
  uint64_t reserved[6];
};
static_assert(std::is_standard_layout_v<ObjectHeader>,
              "shared structs must have one layout in every process");
static_assert(sizeof(ObjectHeader) == 128,
              "ObjectHeader is two cache lines; changing it needs a new "
              "kObjectFormatVersion");
static_assert(std::is_trivially_copyable_v<ObjectHeader>,
              "shared structs hold plain fields (atomic access via "
              "std::atomic_ref) so they can be copied and checked");

// What tools learn from a segment's header.
struct ObjectInfo {
  ObjectKind kind;
  uint32_t kind_version = 0;
  uint64_t total_bytes = 0;
  uint64_t fingerprint = 0;
  uint64_t capacity = 0;
  uid_t creator_uid = 0;
  pid_t creator_pid = 0;
  uint64_t creator_start_time = 0;
  absl::Time created;
  bool ready = false;
};

struct ObjectOptions {
  IpcKey key = IpcKey::Private();
  mode_t mode = 0600;
  HugePages huge_pages = HugePages::kNo;
};

struct ObjectAttachOptions {
  bool read_only = false;
  std::optional<mode_t> expected_mode = 0600;
  // How long to wait for a concurrent creator to publish the object.
  absl::Duration init_timeout = absl::Seconds(2);
};

namespace internal {

// Creates a segment of `total_bytes` and writes the header in state
// kInitializing. The caller formats the body, then calls PublishObject().
absl::StatusOr<Segment> CreateObjectSegment(
    ObjectKind kind, uint32_t kind_version, uint64_t total_bytes,
    uint64_t fingerprint, uint64_t capacity, const ObjectOptions& options);
// Marks the object ready (release store): attachers may use it from now on.
void PublishObject(Segment& segment);

// Validates `segment`'s header for `kind`/`kind_version`, waiting up to
// `init_timeout` for a creator that is still initializing. Never reads
// beyond the segment.
absl::Status ValidateObjectHeader(const Segment& segment, ObjectKind kind,
                                  uint32_t kind_version,
                                  absl::Duration init_timeout);

// Attaches by key (or id when `id` >= 0) and validates the header.
absl::StatusOr<Segment> AttachObjectSegment(IpcKey key, int id, ObjectKind kind,
                                            uint32_t kind_version,
                                            const ObjectAttachOptions& options);

inline const ObjectHeader& HeaderOf(const Segment& segment) {
  return *static_cast<const ObjectHeader*>(segment.data());
}
inline ObjectHeader& MutableHeaderOf(Segment& segment) {
  return *static_cast<ObjectHeader*>(segment.data());
}

}  // namespace internal

// Reads the header of any segment without trusting it: NotFound-free; returns
// FailedPrecondition when the segment is not a shmkit object of this format.
absl::StatusOr<ObjectInfo> ReadObjectInfo(const Segment& segment);

}  // namespace shmkit

#endif  // SHMKIT_IPC_OBJECT_H_
