#include "shmkit/ipc/lock_arena.h"

#include "absl/strings/str_cat.h"

namespace shmkit {
namespace {

// Segment layout:
//   ObjectHeader                     128 bytes (capacity = lock count)
//   lock words                       one per cache line, `count` of them
//   process registry                 ProcessRegistry::BytesFor(slots, 0)
constexpr uint32_t kLockArenaLayoutVersion = 1;

size_t LocksOffset() { return sizeof(ObjectHeader); }
size_t RegistryOffset(uint32_t count) {
  return LocksOffset() + size_t{count} * kCacheLineBytes;
}
uint64_t* LockWord(const Segment& segment, uint32_t index) {
  return reinterpret_cast<uint64_t*>(static_cast<std::byte*>(segment.data()) +
                                     LocksOffset() +
                                     size_t{index} * kCacheLineBytes);
}

}  // namespace

LockArena::LockArena(Segment segment, ProcessRegistry registry, uint32_t count)
    : segment_(std::move(segment)),
      registry_(std::move(registry)),
      count_(count) {}

absl::StatusOr<LockArena> LockArena::Create(const LockArenaOptions& options) {
  if (options.locks == 0 || options.locks > (1u << 24)) {
    return absl::InvalidArgumentError(
        absl::StrCat("lock count ", options.locks, " outside 1..", 1u << 24));
  }
  absl::StatusOr<size_t> registry_bytes =
      ProcessRegistry::BytesFor(options.registry_slots, 0);
  if (!registry_bytes.ok()) return registry_bytes.status();
  ObjectOptions object;
  object.key = options.key;
  object.mode = options.mode;
  absl::StatusOr<Segment> segment = internal::CreateObjectSegment(
      ObjectKind::kLockArena, kLockArenaLayoutVersion,
      RegistryOffset(options.locks) + *registry_bytes, /*fingerprint=*/0,
      options.locks, object);
  if (!segment.ok()) return segment.status();
  absl::StatusOr<ProcessRegistry> registry = ProcessRegistry::Format(
      segment->bytes().subspan(RegistryOffset(options.locks)),
      options.registry_slots, 0);
  if (!registry.ok()) return registry.status();
  internal::PublishObject(*segment);
  return LockArena(*std::move(segment), *std::move(registry), options.locks);
}

absl::StatusOr<LockArena> LockArena::Open(Segment segment) {
  const uint64_t count = internal::HeaderOf(segment).capacity;
  if (count == 0 || count > (1u << 24) ||
      RegistryOffset(static_cast<uint32_t>(count)) >= segment.size()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lock arena in segment id ", segment.id(), " claims ", count,
        " locks, which do not fit its ", segment.size(), " bytes"));
  }
  absl::StatusOr<ProcessRegistry> registry = ProcessRegistry::Open(
      segment.bytes().subspan(RegistryOffset(static_cast<uint32_t>(count))));
  if (!registry.ok()) return registry.status();
  return LockArena(std::move(segment), *std::move(registry),
                   static_cast<uint32_t>(count));
}

absl::StatusOr<LockArena> LockArena::Attach(
    IpcKey key, const ObjectAttachOptions& options) {
  absl::StatusOr<Segment> segment = internal::AttachObjectSegment(
      key, -1, ObjectKind::kLockArena, kLockArenaLayoutVersion, options);
  if (!segment.ok()) return segment.status();
  return Open(*std::move(segment));
}

absl::StatusOr<LockArena> LockArena::AttachId(
    int shmid, const ObjectAttachOptions& options) {
  absl::StatusOr<Segment> segment = internal::AttachObjectSegment(
      IpcKey::Private(), shmid, ObjectKind::kLockArena, kLockArenaLayoutVersion,
      options);
  if (!segment.ok()) return segment.status();
  return Open(*std::move(segment));
}

absl::StatusOr<OwnerLock> LockArena::lock(uint32_t index) {
  if (count_ == 0) {
    return absl::FailedPreconditionError(
        "LockArena is empty (it was moved from)");
  }
  if (index >= count_) {
    return absl::InvalidArgumentError(
        absl::StrCat("lock index ", index, " outside 0..", count_ - 1));
  }
  return OwnerLock(LockWord(segment_, index), &registry_);
}

absl::StatusOr<OwnerLockGuard> LockArena::Acquire(uint32_t index,
                                                  absl::Duration bound) {
  absl::StatusOr<OwnerLock> l = lock(index);
  if (!l.ok()) return l.status();
  absl::StatusOr<OwnerToken> me = registry_.Self();
  if (!me.ok()) return me.status();
  return OwnerLockGuard::Acquire(*l, *me, bound);
}

}  // namespace shmkit
