// Segment: the move-only owner of one System V shared-memory attachment.
//
// Lifetime rules (DESIGN.md section 3):
// - Create() always uses IPC_CREAT | IPC_EXCL, so it never silently adopts
//   somebody else's segment: an existing key is AlreadyExists.
// - An anonymous (IPC_PRIVATE) segment is marked for removal (IPC_RMID) right
//   after its creator attaches. Processes forked afterwards inherit the
//   attachment; the kernel frees the memory when the last one detaches or
//   dies, so nothing leaks even when every process is killed.
// - A keyed segment persists until Remove() (or `shmkit rm`), so unrelated
//   processes can Attach() it by key.
// - After every create and attach, IPC_STAT must show our effective uid as
//   the owner and the expected permission bits; otherwise the call fails with
//   FailedPrecondition naming both. (Root passes every kernel permission
//   check, so this check is what keeps a root server from adopting a
//   segment planted by another user.)
//
// Fork: the child inherits the attachment and a copy of this object; each
// process detaches its own mapping when its copy is destroyed. Thread-safety:
// a Segment is immutable after construction; Remove() may be called from any
// thread or process.
#ifndef SHMKIT_IPC_SEGMENT_H_
#define SHMKIT_IPC_SEGMENT_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "shmkit/ipc/key.h"

namespace shmkit {

enum class HugePages {
  kNo,           // normal pages (the default)
  kRequire,      // SHM_HUGETLB; fail naming vm.nr_hugepages when none are free
  kPreferred,    // SHM_HUGETLB when free huge pages cover the size, else normal
                 // pages; huge_pages() tells which one happened
  kTransparent,  // normal pages, with transparent huge pages asked for
                 // (AdviseHugePages); whether the kernel grants them is the
                 // host's setting, /sys/kernel/mm/transparent_hugepage/
                 // shmem_enabled: `always`, `within_size` or `advise` do
};

// How a mapping is backed, from /proc/self/smaps.
struct PageUsage {
  uint64_t mapped_bytes = 0;  // the mapping's size
  uint64_t huge_bytes = 0;    // of which backed by 2 MiB (or larger) pages
  // The page size backing most of the mapping: 4096, or the huge page size.
  uint64_t page_bytes = 4096;
};

struct SegmentOptions {
  // Bytes requested; must be > 0. The kernel rounds the mapping up to the
  // page size (huge page size with huge pages); size() reports the request.
  size_t bytes = 0;
  // IPC_PRIVATE by default: anonymous, shared through fork only.
  IpcKey key = IpcKey::Private();
  // Permission bits (0..0777). 0600: only our uid may attach.
  mode_t mode = 0600;
  HugePages huge_pages = HugePages::kNo;
};

struct AttachOptions {
  // Map read-only (SHM_RDONLY); writes through data() then fault.
  bool read_only = false;
  // The permission bits the segment must have, or nullopt to accept any.
  // The owner is always checked against our effective uid.
  std::optional<mode_t> expected_mode = 0600;
};

// What IPC_STAT says about a segment.
struct SegmentInfo {
  int id = -1;
  IpcKey key;
  uid_t owner_uid = 0;
  uid_t creator_uid = 0;
  mode_t mode = 0;  // permission bits only
  size_t bytes = 0;
  pid_t creator_pid = 0;
  pid_t last_pid = 0;  // last shmat/shmdt
  uint64_t attach_count = 0;
  bool marked_for_removal = false;  // IPC_RMID done; freed at last detach
};

class Segment {
 public:
  // Creates and attaches a new segment. Errors: InvalidArgument (bytes == 0,
  // mode outside 0777), AlreadyExists (key in use), ResourceExhausted naming
  // the kernel limit (shmmax, shmall, shmmni) or vm.nr_hugepages with its
  // value and the request, FailedPrecondition (owner or mode not as asked).
  static absl::StatusOr<Segment> Create(const SegmentOptions& options);

  // Attaches an existing keyed segment. NotFound when no segment has the
  // key; FailedPrecondition when the owner or mode differ (naming both).
  static absl::StatusOr<Segment> Attach(IpcKey key,
                                        const AttachOptions& options = {});
  // Attaches by segment id (as `ipcs -m` prints), which also reaches an
  // anonymous segment while it is still attached somewhere.
  static absl::StatusOr<Segment> AttachId(int shmid,
                                          const AttachOptions& options = {});

  // IPC_STAT of segment `shmid`.
  static absl::StatusOr<SegmentInfo> StatId(int shmid);
  // IPC_RMID of segment `shmid`: removed once the last process detaches.
  static absl::Status RemoveId(int shmid);

  // An empty Segment, attached to nothing (what a moved-from one is).
  Segment() = default;
  Segment(Segment&& other) noexcept;
  Segment& operator=(Segment&& other) noexcept;
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  ~Segment();  // detaches (shmdt); never removes

  // Marks the segment for removal. Processes still attached keep their
  // mapping; the key is free for reuse at once. Idempotent while any process
  // is still attached (the kernel accepts a second IPC_RMID); once the
  // segment is gone, FailedPrecondition.
  absl::Status Remove();
  absl::StatusOr<SegmentInfo> Stat() const { return StatId(id_); }

  void* data() const { return data_; }
  absl::Span<std::byte> bytes() const {
    return {static_cast<std::byte*>(data_), size_};
  }
  size_t size() const { return size_; }
  int id() const { return id_; }
  IpcKey key() const { return key_; }
  bool read_only() const { return read_only_; }
  bool huge_pages() const { return huge_pages_; }

  // Asks the kernel for transparent huge pages on this mapping
  // (madvise(MADV_HUGEPAGE)); call before touching the memory. Each process
  // that maps the segment asks for itself. The kernel grants them only when
  // shmem_enabled allows it (see HugePages::kTransparent); an error means
  // the kernel has no transparent huge pages at all.
  absl::Status AdviseHugePages() const;
  // How this process's mapping is backed right now.
  absl::StatusOr<PageUsage> Pages() const;

 private:
  Segment(void* data, size_t size, int id, IpcKey key, bool read_only,
          bool huge_pages)
      : data_(data),
        size_(size),
        id_(id),
        key_(key),
        read_only_(read_only),
        huge_pages_(huge_pages) {}
  void Detach();

  void* data_ = nullptr;
  size_t size_ = 0;
  int id_ = -1;
  IpcKey key_;
  bool read_only_ = false;
  bool huge_pages_ = false;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_SEGMENT_H_
