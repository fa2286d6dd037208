#include "shmkit/ipc/queue/fifo_queue.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/pipe_core.h"
#include "shmkit/ipc/queue/internal/orphan_reaper.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"

namespace shmkit {
namespace {

using internal::ErrnoStatus;

// ftok project id of a FIFO's control segment.
constexpr int kFifoProjectId = 'q';
// How long an opener waits for a concurrent creator's control segment.
constexpr absl::Duration kCreatorWait = absl::Seconds(2);

QueueCapabilities FifoCapabilities(size_t max_message_bytes) {
  QueueCapabilities caps;
  caps.backend = "fifo";
  caps.max_message_bytes = max_message_bytes;
  caps.typed_receive = false;
  caps.bidirectional = false;
  caps.attachable = true;
  caps.pollable_fd = true;
  return caps;
}

// FNV-1a over the FIFO's device and inode: which FIFO a control segment
// belongs to (seedless, so every process computes the same value).
uint64_t FifoFingerprint(dev_t dev, ino_t ino) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t word :
       {static_cast<uint64_t>(dev), static_cast<uint64_t>(ino)}) {
    for (int i = 0; i < 8; ++i) {
      h ^= (word >> (8 * i)) & 0xff;
      h *= 0x100000001b3ull;
    }
  }
  return h;
}

std::string Octal(mode_t mode) { return absl::StrFormat("0%o", mode); }

// The directory must be ours and private, so nobody else can swap the FIFO.
absl::Status CheckPrivateDir(const std::string& dir, bool create) {
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) {
    const int err = errno;
    if (err != ENOENT || !create) {
      return ErrnoStatus(err, absl::StrCat("lstat(", dir, ")"));
    }
    if (mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir(", dir, ", 0700)"));
    }
    if (lstat(dir.c_str(), &st) != 0) {
      return ErrnoStatus(errno, absl::StrCat("lstat(", dir, ")"));
    }
  }
  const uid_t me = geteuid();
  if (!S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(
        dir,
        " is not a directory (a symbolic link?); a FIFO queue needs a "
        "private directory"));
  }
  if (st.st_uid != me || (st.st_mode & 077) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("directory ", dir, " has owner uid ", st.st_uid,
                     " and mode ", Octal(st.st_mode & 07777),
                     "; a FIFO queue needs a private directory "
                     "(owner uid ",
                     me,
                     ", no group or other permissions, e.g. 0700) so "
                     "nobody else can replace the FIFO"));
  }
  return absl::OkStatus();
}

absl::Status CheckFifo(int fd, const std::string& path, mode_t mode,
                       struct stat* st) {
  if (fstat(fd, st) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fstat(", path, ")"));
  }
  if (!S_ISFIFO(st->st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a FIFO"));
  }
  const uid_t me = geteuid();
  if (st->st_uid != me || (st->st_mode & 0777) != mode) {
    return absl::FailedPreconditionError(
        absl::StrCat("FIFO ", path, " has owner uid ", st->st_uid, " and mode ",
                     Octal(st->st_mode & 0777), "; expected owner uid ", me,
                     " and mode ", Octal(mode)));
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> OpenEnd(const std::string& path, int access) {
  const int fd = internal::RetryOnEintr([&] {
    return open(path.c_str(), access | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
  });
  if (fd >= 0) return UniqueFd(fd);
  const int err = errno;
  const char* end = access == O_RDONLY ? "reading" : "writing";
  if (err == ENXIO) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot open FIFO ", path,
                     " for writing: no process has it open "
                     "for reading"));
  }
  if (err == ELOOP) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is a symbolic link; FIFO queues refuse them"));
  }
  if (err == ENOENT) {
    return absl::NotFoundError(absl::StrCat("no FIFO at ", path));
  }
  return ErrnoStatus(err, absl::StrCat("open(", path, ", ", end, ")"));
}

std::string TempDirRoot() {
  const char* tmp = getenv("TMPDIR");
  return tmp != nullptr && tmp[0] == '/' ? std::string(tmp) : "/tmp";
}

}  // namespace

FifoQueue::FifoQueue(internal::PipeCore core, std::string path, std::string dir,
                     bool anonymous, pid_t created_by, dev_t dev, ino_t ino,
                     bool ignore_sigpipe)
    : Queue(FifoCapabilities(core.max_message_bytes())),
      core_(std::make_unique<internal::PipeCore>(std::move(core))),
      path_(std::move(path)),
      dir_(std::move(dir)),
      anonymous_(anonymous),
      created_by_(created_by),
      dev_(dev),
      ino_(ino),
      ignore_sigpipe_(ignore_sigpipe) {}

int FifoQueue::ReceiveFd() const { return core_ ? core_->read_fd() : -1; }
int FifoQueue::SendFd() const { return core_ ? core_->write_fd() : -1; }

FifoQueue::~FifoQueue() { (void)Close(); }

absl::StatusOr<std::unique_ptr<FifoQueue>> FifoQueue::Open(
    const FifoQueueOptions& options) {
  const QueueRole role = options.role;
  if (role == QueueRole::kPeerA || role == QueueRole::kPeerB) {
    return absl::InvalidArgumentError(
        "a FIFO queue is one-way: role must be both, sender or receiver");
  }
  if ((options.mode & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FIFO mode ", Octal(options.mode), " has bits outside 0777"));
  }
  const bool reads = role != QueueRole::kSender;
  const bool writes = role != QueueRole::kReceiver;
  if (writes) {
    SHMKIT_RETURN_IF_ERROR(
        internal::EnsureSigpipeCannotKill(options.ignore_sigpipe));
  }
  const bool anonymous = options.path.empty();
  std::string path = options.path;
  std::string dir;
  if (anonymous) {
    if (options.open == OpenMode::kAttach) {
      return absl::InvalidArgumentError(
          "a private FIFO (no path) can only be created; give a path to "
          "attach");
    }
    std::string tmpl = TempDirRoot() + "/shmkit-fifo-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) {
      return ErrnoStatus(errno, absl::StrCat("mkdtemp(", tmpl, ")"));
    }
    dir = tmpl;
    path = dir + "/queue";
  } else {
    if (path.front() != '/' || path.back() == '/') {
      return absl::InvalidArgumentError(absl::StrCat(
          "FIFO path \"", path, "\" must be absolute and name a file"));
    }
    const size_t slash = path.rfind('/');
    const std::string parent = slash == 0 ? "/" : path.substr(0, slash);
    SHMKIT_RETURN_IF_ERROR(
        CheckPrivateDir(parent, options.open != OpenMode::kAttach));
  }
  // Undo what we made if a later step fails.
  bool made_fifo = false;
  auto undo = [&] {
    if (made_fifo) unlink(path.c_str());
    if (anonymous) rmdir(dir.c_str());
  };

  if (options.open != OpenMode::kAttach) {
    if (mkfifo(path.c_str(), options.mode) == 0) {
      made_fifo = true;
      // mkfifo applies the umask; the mode must be exactly what was asked.
      if (chmod(path.c_str(), options.mode) != 0) {
        const absl::Status st =
            ErrnoStatus(errno, absl::StrCat("chmod(", path, ")"));
        undo();
        return st;
      }
    } else if (errno != EEXIST) {
      const absl::Status st =
          ErrnoStatus(errno, absl::StrCat("mkfifo(", path, ")"));
      undo();
      return st;
    } else if (options.open == OpenMode::kCreate) {
      undo();
      return absl::AlreadyExistsError(
          absl::StrCat("FIFO ", path,
                       " already exists; attach it or remove "
                       "it first"));
    }
  }

  // The read end first: opening a write end needs a reader.
  UniqueFd read_end, write_end;
  struct stat st;
  if (reads || !writes) {
    absl::StatusOr<UniqueFd> fd = OpenEnd(path, O_RDONLY);
    if (!fd.ok()) {
      undo();
      return fd.status();
    }
    read_end = *std::move(fd);
  }
  if (writes) {
    absl::StatusOr<UniqueFd> fd = OpenEnd(path, O_WRONLY);
    if (!fd.ok()) {
      undo();
      return fd.status();
    }
    write_end = *std::move(fd);
  }
  if (absl::Status check =
          CheckFifo(read_end.valid() ? read_end.get() : write_end.get(), path,
                    options.mode, &st);
      !check.ok()) {
    undo();
    return check;
  }
  const uint64_t fingerprint = FifoFingerprint(st.st_dev, st.st_ino);
  absl::StatusOr<IpcKey> key = IpcKey::FromPath(path, kFifoProjectId);
  if (!key.ok()) {
    undo();
    return key.status();
  }
  const std::string description = absl::StrCat("FIFO queue ", path);

  absl::StatusOr<internal::PipeCore> core = absl::InternalError("not opened");
  if (made_fifo) {
    internal::PipeSharedOptions shared;
    shared.key = *key;
    shared.mode = options.mode;
    shared.max_message_bytes = options.max_message_bytes;
    shared.registry_slots = options.registry_slots;
    shared.fingerprint = fingerprint;
    core = internal::PipeCore::CreateShared(shared, description);
    if (core.status().code() == absl::StatusCode::kAlreadyExists) {
      // A control segment under our key. If it belongs to a FIFO with our
      // identity, that FIFO was deleted without Remove() and its inode
      // reused by ours: the segment is stale. Otherwise it is somebody
      // else's: refuse rather than share.
      absl::StatusOr<internal::PipeCore> stale =
          internal::PipeCore::AttachShared(*key, options.mode, fingerprint,
                                           description);
      if (stale.ok()) {
        (void)stale->RemoveSegment();
        core = internal::PipeCore::CreateShared(shared, description);
      } else {
        core = absl::AlreadyExistsError(absl::StrCat(
            "the control segment key ", key->ToString(), " = ftok(", path,
            ", 'q') is taken by another object (", stale.status().message(),
            "); use another path"));
      }
    }
  } else {
    // Attach, waiting a little for a creator between mkfifo and segment.
    const internal::Deadline deadline = internal::Deadline::In(kCreatorWait);
    while (true) {
      core = internal::PipeCore::AttachShared(*key, options.mode, fingerprint,
                                              description);
      if (core.ok() || core.status().code() != absl::StatusCode::kNotFound ||
          deadline.Expired()) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(2));
    }
  }
  if (!core.ok()) {
    undo();
    return core.status();
  }
  core->SetDescriptors(std::move(read_end), std::move(write_end));
  core->set_spin(options.spin);
  std::unique_ptr<FifoQueue> q(new FifoQueue(
      *std::move(core), path, dir, anonymous, made_fifo ? getpid() : 0,
      st.st_dev, st.st_ino, options.ignore_sigpipe));
  if (anonymous) {
    internal::ReaperTask task;
    task.fifo_path = path;
    task.dir_path = dir;
    task.shmid = q->core_->segment().id();
    task.shm_key = key->value();
    absl::StatusOr<UniqueFd> guard = internal::StartOrphanReaper(task);
    if (!guard.ok()) {
      (void)q->Destroy();
      return guard.status();
    }
    q->reaper_guard_ = *std::move(guard);
  }
  if (role != QueueRole::kSendAndReceive) {
    SHMKIT_RETURN_IF_ERROR(q->SetRole(role));
  }
  return q;
}

absl::StatusOr<std::unique_ptr<Queue>> FifoQueue::FromSpec(
    const QueueSpec& spec) {
  internal::SpecReader reader(spec);
  FifoQueueOptions options;
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<std::string> path,
                          reader.String("path"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<OpenMode> open,
                          reader.Open("open"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<mode_t> mode,
                          reader.Mode("mode"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<QueueRole> role,
                          reader.Role("role"));
  SHMKIT_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> max,
      reader.Uint("max_bytes", 0, internal::kPipeMaxMessageLimit));
  SHMKIT_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> slots,
      reader.Uint("registry_slots", 1, ProcessRegistry::kMaxSlots));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> spin_us,
                          reader.Uint("spin_us", 0, 1'000'000));
  SHMKIT_RETURN_IF_ERROR(reader.Finish());
  if (spin_us) options.spin = absl::Microseconds(*spin_us);
  if (path) options.path = *path;
  if (open) options.open = *open;
  if (mode) options.mode = *mode;
  if (role) options.role = *role;
  if (max) options.max_message_bytes = static_cast<uint32_t>(*max);
  if (slots) options.registry_slots = static_cast<uint32_t>(*slots);
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<FifoQueue> q, Open(options));
  return std::unique_ptr<Queue>(std::move(q));
}

std::string FifoQueue::Describe() const {
  return absl::StrCat("FIFO queue ", path_);
}

absl::Status FifoQueue::SendImpl(absl::string_view bytes, int64_t type,
                                 const WaitMode& wait) {
  return core_->Send(bytes, type, wait);
}

absl::Status FifoQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                    TypeFilter filter, Truncation truncation,
                                    const WaitMode& wait) {
  (void)filter;
  return core_->Receive(out, max_bytes, truncation, wait);
}

absl::Status FifoQueue::ApplyRole(QueueRole role) {
  if (role == QueueRole::kSender) {
    SHMKIT_RETURN_IF_ERROR(internal::EnsureSigpipeCannotKill(ignore_sigpipe_));
    core_->CloseReadEnd();
  } else if (role == QueueRole::kReceiver) {
    core_->CloseWriteEnd();
  }
  return absl::OkStatus();
}

absl::Status FifoQueue::Destroy() {
  core_->MarkRemoved();
  internal::StandDownOrphanReaper(reaper_guard_);
  absl::Status st = absl::OkStatus();
  // Unlink only the FIFO we opened, not something put there since.
  struct stat now;
  if (lstat(path_.c_str(), &now) == 0 && now.st_dev == dev_ &&
      now.st_ino == ino_ && unlink(path_.c_str()) != 0) {
    st = ErrnoStatus(errno, absl::StrCat("unlink(", path_, ")"));
  }
  if (anonymous_ && rmdir(dir_.c_str()) != 0 && errno != ENOENT && st.ok()) {
    st = ErrnoStatus(errno, absl::StrCat("rmdir(", dir_, ")"));
  }
  absl::Status seg = core_->RemoveSegment();
  if (!seg.ok() && seg.code() != absl::StatusCode::kFailedPrecondition &&
      st.ok()) {
    st = seg;
  }
  return st;
}

absl::Status FifoQueue::CloseImpl() {
  absl::Status st = absl::OkStatus();
  if (anonymous_ && created_by_ == getpid()) st = Destroy();
  core_->CloseReadEnd();
  core_->CloseWriteEnd();
  core_.reset();
  reaper_guard_.reset();
  return st;
}

absl::Status FifoQueue::RemoveImpl() { return Destroy(); }

absl::StatusOr<QueueStats> FifoQueue::StatsImpl() const {
  return core_->Stats();
}

}  // namespace shmkit
