#include "shmkit/ipc/segment.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/kernel_limits.h"

namespace shmkit {
namespace {

using internal::ErrnoStatus;

std::string Octal(mode_t mode) { return absl::StrFormat("0%o", mode); }

// Huge page facts from /proc/meminfo and /proc/sys/vm/nr_hugepages.
struct HugePageFacts {
  uint64_t page_bytes = 0;
  uint64_t free_pages = 0;
  uint64_t reserved_setting = 0;  // vm.nr_hugepages
};

HugePageFacts ReadHugePageFacts() {
  HugePageFacts facts;
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    std::vector<absl::string_view> parts =
        absl::StrSplit(line, absl::ByAnyChar(" :"), absl::SkipEmpty());
    if (parts.size() < 2) continue;
    uint64_t value = 0;
    if (!absl::SimpleAtoi(parts[1], &value)) continue;
    if (parts[0] == "HugePages_Free") facts.free_pages = value;
    if (parts[0] == "Hugepagesize") facts.page_bytes = value * 1024;  // kB
  }
  std::ifstream nr("/proc/sys/vm/nr_hugepages");
  nr >> facts.reserved_setting;
  return facts;
}

// Explains an ENOSPC from shmget: either shmmni (ids) or shmall (pages).
absl::Status NoSpaceError(size_t bytes) {
  shm_info info{};
  const int max_index = shmctl(0, SHM_INFO, reinterpret_cast<shmid_ds*>(&info));
  absl::StatusOr<uint64_t> shmmni = ReadKernelLimit("shmmni");
  if (max_index >= 0 && shmmni.ok() &&
      static_cast<uint64_t>(info.used_ids) >= *shmmni) {
    return KernelLimitError(
        "shared-memory segment", "shmmni", *shmmni,
        absl::StrCat("one more segment (", info.used_ids, " exist)"));
  }
  absl::StatusOr<uint64_t> shmall = ReadKernelLimit("shmall");
  const long page = sysconf(_SC_PAGESIZE);
  if (shmall.ok()) {
    return KernelLimitError(
        "shared-memory segment", "shmall", *shmall,
        absl::StrCat(bytes, " bytes (", (bytes + page - 1) / page,
                     " pages) with ", max_index >= 0 ? info.shm_tot : 0,
                     " pages already in use"));
  }
  return ErrnoStatus(ENOSPC, absl::StrCat("shmget(bytes=", bytes, ")"));
}

// Checks owner and mode after create or attach.
absl::Status CheckOwnerAndMode(const SegmentInfo& info,
                               std::optional<mode_t> expected_mode) {
  const uid_t me = geteuid();
  const bool owner_ok = info.owner_uid == me;
  const bool mode_ok =
      !expected_mode.has_value() || info.mode == *expected_mode;
  if (owner_ok && mode_ok) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "shared-memory segment id=", info.id, " key=", info.key.ToString(),
      " has owner uid ", info.owner_uid, " and mode ", Octal(info.mode),
      "; expected owner uid ", me,
      expected_mode ? absl::StrCat(" and mode ", Octal(*expected_mode)) : "",
      owner_ok ? " (the mode differs)" : " (the owner differs)"));
}

}  // namespace

absl::StatusOr<SegmentInfo> Segment::StatId(int shmid) {
  shmid_ds ds{};
  if (shmctl(shmid, IPC_STAT, &ds) == -1) {
    const int err = errno;
    if (err == EINVAL) {
      return absl::NotFoundError(
          absl::StrCat("no shared-memory segment with id ", shmid));
    }
    return ErrnoStatus(err, absl::StrCat("shmctl(id=", shmid, ", IPC_STAT)"));
  }
  SegmentInfo info;
  info.id = shmid;
  info.key = IpcKey::FromNumber(ds.shm_perm.__key);
  info.owner_uid = ds.shm_perm.uid;
  info.creator_uid = ds.shm_perm.cuid;
  info.mode = ds.shm_perm.mode & 0777;
  info.bytes = ds.shm_segsz;
  info.creator_pid = ds.shm_cpid;
  info.last_pid = ds.shm_lpid;
  info.attach_count = ds.shm_nattch;
  info.marked_for_removal = (ds.shm_perm.mode & SHM_DEST) != 0;
  return info;
}

absl::Status Segment::RemoveId(int shmid) {
  if (shmctl(shmid, IPC_RMID, nullptr) == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) {
      return absl::FailedPreconditionError(absl::StrCat(
          "shared-memory segment id ", shmid, " no longer exists"));
    }
    return ErrnoStatus(err, absl::StrCat("shmctl(id=", shmid, ", IPC_RMID)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Segment> Segment::Create(const SegmentOptions& options) {
  if (options.bytes == 0) {
    return absl::InvalidArgumentError("segment size must be at least 1 byte");
  }
  if ((options.mode & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("segment mode ", Octal(options.mode),
                     " has bits outside the permission bits 0777"));
  }
  absl::StatusOr<uint64_t> shmmax = ReadKernelLimit("shmmax");
  if (!shmmax.ok()) return shmmax.status();
  if (options.bytes > *shmmax) {
    return KernelLimitError("shared-memory segment", "shmmax", *shmmax,
                            absl::StrCat(options.bytes, " bytes"));
  }

  bool use_huge = false;
  size_t request = options.bytes;
  if (options.huge_pages == HugePages::kRequire ||
      options.huge_pages == HugePages::kPreferred) {
    const HugePageFacts facts = ReadHugePageFacts();
    const uint64_t pages =
        facts.page_bytes == 0
            ? 0
            : (options.bytes + facts.page_bytes - 1) / facts.page_bytes;
    const bool enough = facts.page_bytes != 0 && facts.free_pages >= pages;
    if (enough) {
      use_huge = true;
      request = pages * facts.page_bytes;
    } else if (options.huge_pages == HugePages::kRequire) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "huge pages required for a segment of ", options.bytes, " bytes (",
          pages, " pages of ", facts.page_bytes / 1024, " kB) but only ",
          facts.free_pages,
          " are free; vm.nr_hugepages = ", facts.reserved_setting,
          " (read from /proc/sys/vm/nr_hugepages; reserve more with sysctl -w "
          "vm.nr_hugepages=N, or ask for HugePages::kPreferred to fall back "
          "to normal pages)"));
    }
  }

  const int flags = IPC_CREAT | IPC_EXCL | static_cast<int>(options.mode) |
                    (use_huge ? SHM_HUGETLB : 0);
  int id = shmget(options.key.value(), request, flags);
  if (id == -1 && use_huge && options.huge_pages == HugePages::kPreferred &&
      (errno == ENOMEM || errno == EPERM || errno == EINVAL)) {
    // The pool was drained between our check and the call: fall back, as
    // the caller allowed.
    use_huge = false;
    request = options.bytes;
    id = shmget(options.key.value(), request, flags & ~SHM_HUGETLB);
  }
  if (id == -1) {
    const int err = errno;
    const std::string call =
        absl::StrCat("shmget(key=", options.key.ToString(), ", bytes=", request,
                     ", flags=", Octal(static_cast<mode_t>(flags)), ")");
    switch (err) {
      case EEXIST: {
        const int existing = shmget(options.key.value(), 0, 0);
        return absl::AlreadyExistsError(absl::StrCat(
            "a shared-memory segment with key ", options.key.ToString(),
            " already exists",
            existing >= 0 ? absl::StrCat(" (id ", existing, ")") : "",
            "; attach it or remove it first"));
      }
      case ENOSPC:
        return NoSpaceError(options.bytes);
      case ENOMEM:
        if (use_huge) {
          const HugePageFacts facts = ReadHugePageFacts();
          return absl::ResourceExhaustedError(absl::StrCat(
              call, ": not enough huge pages; vm.nr_hugepages = ",
              facts.reserved_setting, ", free = ", facts.free_pages));
        }
        return absl::ResourceExhaustedError(
            absl::StrCat(call, ": not enough memory for ", request, " bytes"));
      case EINVAL: {
        absl::StatusOr<uint64_t> now = ReadKernelLimit("shmmax");
        if (now.ok() && request > *now) {
          return KernelLimitError("shared-memory segment", "shmmax", *now,
                                  absl::StrCat(request, " bytes"));
        }
        return ErrnoStatus(err, call);
      }
      default:
        return ErrnoStatus(err, call);
    }
  }

  void* data = shmat(id, nullptr, 0);
  if (data == reinterpret_cast<void*>(-1)) {
    const int err = errno;
    shmctl(id, IPC_RMID, nullptr);
    return ErrnoStatus(err, absl::StrCat("shmat(id=", id, ")"));
  }
  Segment segment(data, options.bytes, id, options.key, /*read_only=*/false,
                  use_huge);
  if (options.huge_pages == HugePages::kTransparent) {
    // Before anyone touches the memory, so its first faults can be huge.
    (void)segment.AdviseHugePages();
  }
  if (options.key.is_private()) {
    // Anonymous: from now on the kernel frees it with the last detach.
    if (absl::Status st = segment.Remove(); !st.ok()) return st;
  }
  absl::StatusOr<SegmentInfo> info = segment.Stat();
  if (!info.ok()) return info.status();
  if (absl::Status st = CheckOwnerAndMode(*info, options.mode); !st.ok()) {
    if (!options.key.is_private()) shmctl(id, IPC_RMID, nullptr);
    return st;
  }
  return segment;
}

absl::StatusOr<Segment> Segment::Attach(IpcKey key,
                                        const AttachOptions& options) {
  if (key.is_private()) {
    return absl::InvalidArgumentError(
        "cannot attach by IPC_PRIVATE: an anonymous segment is reached "
        "through fork or by its id");
  }
  const int id = shmget(key.value(), 0, 0);
  if (id == -1) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("no shared-memory segment with key ", key.ToString()));
    }
    return ErrnoStatus(err, absl::StrCat("shmget(key=", key.ToString(), ")"));
  }
  absl::StatusOr<Segment> segment = AttachId(id, options);
  if (segment.ok()) segment->key_ = key;
  return segment;
}

absl::StatusOr<Segment> Segment::AttachId(int shmid,
                                          const AttachOptions& options) {
  // Check before mapping anything, and again after (the mode could change in
  // between; the second check is the one that counts).
  absl::StatusOr<SegmentInfo> before = StatId(shmid);
  if (!before.ok()) return before.status();
  if (absl::Status st = CheckOwnerAndMode(*before, options.expected_mode);
      !st.ok()) {
    return st;
  }
  void* data = shmat(shmid, nullptr, options.read_only ? SHM_RDONLY : 0);
  if (data == reinterpret_cast<void*>(-1)) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) {
      return absl::FailedPreconditionError(
          absl::StrCat("shared-memory segment id ", shmid, " was removed"));
    }
    return ErrnoStatus(
        err, absl::StrCat("shmat(id=", shmid, ", flags=",
                          options.read_only ? "SHM_RDONLY" : "0", ")"));
  }
  Segment segment(data, before->bytes, shmid, before->key, options.read_only,
                  /*huge_pages=*/false);
  absl::StatusOr<SegmentInfo> after = segment.Stat();
  if (!after.ok()) return after.status();
  if (absl::Status st = CheckOwnerAndMode(*after, options.expected_mode);
      !st.ok()) {
    return st;
  }
  segment.size_ = after->bytes;
  return segment;
}

Segment::Segment(Segment&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      id_(std::exchange(other.id_, -1)),
      key_(other.key_),
      read_only_(other.read_only_),
      huge_pages_(other.huge_pages_) {}

Segment& Segment::operator=(Segment&& other) noexcept {
  if (this != &other) {
    Detach();
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    id_ = std::exchange(other.id_, -1);
    key_ = other.key_;
    read_only_ = other.read_only_;
    huge_pages_ = other.huge_pages_;
  }
  return *this;
}

Segment::~Segment() { Detach(); }

void Segment::Detach() {
  if (data_ != nullptr) {
    shmdt(data_);
    data_ = nullptr;
  }
}

absl::Status Segment::Remove() {
  if (id_ < 0)
    return absl::FailedPreconditionError("segment is empty (moved from)");
  return RemoveId(id_);
}

absl::Status Segment::AdviseHugePages() const {
  if (data_ == nullptr) {
    return absl::FailedPreconditionError("empty Segment");
  }
  if (madvise(data_, size_, MADV_HUGEPAGE) != 0) {
    return ErrnoStatus(
        errno, absl::StrCat("madvise(", size_, " bytes, MADV_HUGEPAGE)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<PageUsage> Segment::Pages() const {
  if (data_ == nullptr) {
    return absl::FailedPreconditionError("empty Segment");
  }
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps) return ErrnoStatus(errno, "open /proc/self/smaps");
  const std::string start =
      absl::StrFormat("%x-", reinterpret_cast<uintptr_t>(data_));
  PageUsage usage;
  bool in = false;
  uint64_t kernel_page_kb = 4;
  for (std::string line; std::getline(smaps, line);) {
    if (!in) {
      in = line.rfind(start, 0) == 0;
      if (in) {
        const std::vector<absl::string_view> range = absl::StrSplit(
            absl::string_view(line).substr(0, line.find(' ')), '-');
        uint64_t lo = 0, hi = 0;
        if (range.size() == 2 && absl::SimpleHexAtoi(range[0], &lo) &&
            absl::SimpleHexAtoi(range[1], &hi)) {
          usage.mapped_bytes = hi - lo;
        }
      }
      continue;
    }
    // Fields end at the next mapping's header (which has no "Name:" form).
    const size_t colon = line.find(':');
    if (colon == std::string::npos || line.find(' ') < colon) break;
    const absl::string_view name = absl::string_view(line).substr(0, colon);
    uint64_t kb = 0;
    const std::vector<absl::string_view> words = absl::StrSplit(
        absl::string_view(line).substr(colon + 1), ' ', absl::SkipEmpty());
    if (words.empty() || !absl::SimpleAtoi(words[0], &kb)) continue;
    if (name == "KernelPageSize") kernel_page_kb = kb;
    if (name == "ShmemPmdMapped" || name == "FilePmdMapped") {
      usage.huge_bytes += kb * 1024;
    }
  }
  if (!in) {
    return absl::NotFoundError(absl::StrCat(
        "the segment's mapping is not in /proc/self/smaps (", start, ")"));
  }
  if (kernel_page_kb > 4) {
    usage.huge_bytes = usage.mapped_bytes;  // hugetlb: all of it
    usage.page_bytes = kernel_page_kb * 1024;
  } else if (usage.huge_bytes * 2 > usage.mapped_bytes) {
    usage.page_bytes = 2 << 20;
  }
  return usage;
}

}  // namespace shmkit
