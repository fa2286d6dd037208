#include "shmkit/ipc/object.h"

#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/proc.h"
#include "shmkit/ipc/internal/shared.h"

namespace shmkit {

absl::string_view ObjectKindName(ObjectKind kind) {
  switch (kind) {
    case ObjectKind::kTable:
      return "table";
    case ObjectKind::kAtomicCounter:
      return "atomic-counter";
    case ObjectKind::kSemCounter:
      return "sem-counter";
    case ObjectKind::kRingQueue:
      return "ring-queue";
    case ObjectKind::kEvent:
      return "event";
    case ObjectKind::kLockArena:
      return "lock-arena";
    case ObjectKind::kPipeLock:
      return "pipe-lock";
  }
  return "unknown";
}

namespace internal {
namespace {

std::string Where(const Segment& segment) {
  return absl::StrCat("segment id=", segment.id(),
                      " key=", segment.key().ToString());
}

std::string DescribeFormat(uint32_t format) {
  return absl::StrFormat(
      "0x%08x (format version %u, lock word %u bytes, pid_t %u bytes, cache "
      "line %u bytes)",
      format, format & 0xffff, (format >> 16) & 0xff, (format >> 24) & 0xf,
      1u << ((format >> 28) & 0xf));
}

}  // namespace

absl::StatusOr<Segment> CreateObjectSegment(
    ObjectKind kind, uint32_t kind_version, uint64_t total_bytes,
    uint64_t fingerprint, uint64_t capacity, const ObjectOptions& options) {
  if (total_bytes < sizeof(ObjectHeader)) {
    return absl::InternalError("object smaller than its header");
  }
  SegmentOptions seg;
  seg.bytes = total_bytes;
  seg.key = options.key;
  seg.mode = options.mode;
  seg.huge_pages = options.huge_pages;
  absl::StatusOr<Segment> segment = Segment::Create(seg);
  if (!segment.ok()) return segment.status();
  // The kernel hands out zeroed pages; state therefore starts kInitializing.
  ObjectHeader& h = MutableHeaderOf(*segment);
  h.magic = kObjectMagic;
  h.format = ObjectFormatWord();
  h.kind = static_cast<uint32_t>(kind);
  h.kind_version = kind_version;
  h.header_bytes = sizeof(ObjectHeader);
  h.total_bytes = total_bytes;
  h.fingerprint = fingerprint;
  h.capacity = capacity;
  h.creator_uid = geteuid();
  h.creator_pid = SelfPid();
  h.creator_start_time = SelfStartTime();
  h.created_unix_ns = absl::ToUnixNanos(absl::Now());
  return segment;
}

void PublishObject(Segment& segment) {
  Store(MutableHeaderOf(segment).state,
        static_cast<uint32_t>(ObjectState::kReady));
}

absl::Status ValidateObjectHeader(const Segment& segment, ObjectKind kind,
                                  uint32_t kind_version,
                                  absl::Duration init_timeout) {
  if (segment.size() < sizeof(ObjectHeader)) {
    return absl::FailedPreconditionError(absl::StrCat(
        Where(segment), " is ", segment.size(),
        " bytes, smaller than a shmkit header: not a shmkit object"));
  }
  const ObjectHeader& h = HeaderOf(segment);
  // A creator that has not written the header yet leaves zeros; wait for it,
  // bounded, then for the ready flag.
  const Deadline deadline = Deadline::In(init_timeout);
  while (true) {
    const uint64_t magic = Load(h.magic);
    const bool ready =
        Load(h.state) == static_cast<uint32_t>(ObjectState::kReady);
    if (magic != 0 && magic != kObjectMagic) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "%s is not a shmkit object: magic 0x%016x, expected 0x%016x",
          Where(segment), magic, kObjectMagic));
    }
    if (magic == kObjectMagic && ready) break;
    if (deadline.Expired()) {
      return absl::FailedPreconditionError(absl::StrCat(
          Where(segment), " was never published by its creator (pid ",
          h.creator_pid, ") within ", absl::FormatDuration(init_timeout),
          ": it is still initializing or its creator died"));
    }
    usleep(1000);
  }
  if (h.format != ObjectFormatWord()) {
    return absl::FailedPreconditionError(absl::StrCat(
        Where(segment), " has format word ", DescribeFormat(h.format),
        " but this build uses ", DescribeFormat(ObjectFormatWord())));
  }
  if (h.header_bytes != sizeof(ObjectHeader)) {
    return absl::FailedPreconditionError(absl::StrCat(
        Where(segment), " has a ", h.header_bytes,
        "-byte header; this build expects ", sizeof(ObjectHeader)));
  }
  if (h.kind != static_cast<uint32_t>(kind)) {
    return absl::FailedPreconditionError(
        absl::StrCat(Where(segment), " holds kind ",
                     ObjectKindName(static_cast<ObjectKind>(h.kind)), " (",
                     h.kind, "), not ", ObjectKindName(kind)));
  }
  if (h.kind_version != kind_version) {
    return absl::FailedPreconditionError(
        absl::StrCat(Where(segment), " holds kind ", ObjectKindName(kind),
                     " of layout version ", h.kind_version,
                     "; this build reads version ", kind_version));
  }
  if (h.total_bytes < sizeof(ObjectHeader) || h.total_bytes > segment.size()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Where(segment), " header claims ", h.total_bytes,
                     " bytes but the segment has ", segment.size()));
  }
  return absl::OkStatus();
}

absl::StatusOr<Segment> AttachObjectSegment(
    IpcKey key, int id, ObjectKind kind, uint32_t kind_version,
    const ObjectAttachOptions& options) {
  AttachOptions attach;
  attach.read_only = options.read_only;
  attach.expected_mode = options.expected_mode;
  absl::StatusOr<Segment> segment =
      id >= 0 ? Segment::AttachId(id, attach) : Segment::Attach(key, attach);
  if (!segment.ok()) return segment.status();
  if (absl::Status st = ValidateObjectHeader(*segment, kind, kind_version,
                                             options.init_timeout);
      !st.ok()) {
    return st;
  }
  return segment;
}

}  // namespace internal

absl::StatusOr<ObjectInfo> ReadObjectInfo(const Segment& segment) {
  if (segment.size() < sizeof(ObjectHeader)) {
    return absl::FailedPreconditionError(
        "segment smaller than a shmkit header");
  }
  // Copy first: another process may be writing the header.
  ObjectHeader h;
  std::memcpy(&h, segment.data(), sizeof(h));
  if (h.magic != kObjectMagic) {
    return absl::FailedPreconditionError("not a shmkit object (magic differs)");
  }
  if (h.format != ObjectFormatWord()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "shmkit object of another format (0x%08x, this build 0x%08x)", h.format,
        ObjectFormatWord()));
  }
  ObjectInfo info;
  info.kind = static_cast<ObjectKind>(h.kind);
  info.kind_version = h.kind_version;
  info.total_bytes = h.total_bytes;
  info.fingerprint = h.fingerprint;
  info.capacity = h.capacity;
  info.creator_uid = h.creator_uid;
  info.creator_pid = h.creator_pid;
  info.creator_start_time = h.creator_start_time;
  info.created = absl::FromUnixNanos(h.created_unix_ns);
  info.ready = internal::Load(internal::HeaderOf(segment).state) ==
               static_cast<uint32_t>(ObjectState::kReady);
  return info;
}

}  // namespace shmkit
