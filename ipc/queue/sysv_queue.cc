#include "shmkit/ipc/queue/sysv_queue.h"

#include <sys/msg.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/kernel_limits.h"
#include "shmkit/ipc/queue/internal/orphan_reaper.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"

namespace shmkit {
namespace {

using internal::ErrnoStatus;
using internal::RetryOnEintr;

static_assert(sizeof(long) == sizeof(int64_t),
              "mtype is a long; shmkit message types are int64_t");

// Backoff of timed calls (System V has no timed msgsnd/msgrcv).
constexpr int64_t kFirstBackoffNs = 50'000;
constexpr int64_t kMaxBackoffNs = 2'000'000;

QueueCapabilities SysvCapabilities(size_t max_message_bytes, bool keyed) {
  QueueCapabilities caps;
  caps.backend = "sysv";
  caps.max_message_bytes = max_message_bytes;
  caps.typed_receive = true;
  caps.bidirectional = false;
  caps.attachable = keyed;
  caps.pollable_fd = false;
  return caps;
}

// The per-thread buffer msgsnd/msgrcv need: a long, then the text.
char* MessageBuffer(size_t text_bytes) {
  thread_local std::vector<char> buffer;
  const size_t need = sizeof(long) + text_bytes;
  if (buffer.size() < need) buffer.resize(need);
  return buffer.data();
}

absl::StatusOr<msqid_ds> StatQueue(int id) {
  msqid_ds ds{};
  if (msgctl(id, IPC_STAT, &ds) == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) {
      return absl::FailedPreconditionError(
          absl::StrCat("sysv queue id ", id, " no longer exists (removed)"));
    }
    return ErrnoStatus(err, absl::StrCat("msgctl(id=", id, ", IPC_STAT)"));
  }
  return ds;
}

absl::Status CheckOwnerAndMode(int id, const msqid_ds& ds,
                               std::optional<mode_t> expected_mode) {
  const uid_t me = geteuid();
  const mode_t mode = ds.msg_perm.mode & 0777;
  const bool owner_ok = ds.msg_perm.uid == me;
  const bool mode_ok = !expected_mode.has_value() || mode == *expected_mode;
  if (owner_ok && mode_ok) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "sysv queue id=%d key=%s has owner uid %d and mode 0%o; expected owner "
      "uid %d%s%s",
      id, IpcKey::FromNumber(ds.msg_perm.__key).ToString(), ds.msg_perm.uid,
      mode, me,
      expected_mode ? absl::StrFormat(" and mode 0%o", *expected_mode) : "",
      owner_ok ? " (the mode differs)" : " (the owner differs)"));
}

// Sleeps for the next backoff step, never past the deadline. False when the
// deadline has passed.
bool Backoff(const WaitMode& wait, int64_t* step_ns) {
  const int64_t now = internal::MonotonicNanos();
  if (now >= wait.deadline_ns()) return false;
  const int64_t sleep_ns = std::min(*step_ns, wait.deadline_ns() - now);
  const timespec ts{static_cast<time_t>(sleep_ns / 1'000'000'000),
                    static_cast<long>(sleep_ns % 1'000'000'000)};
  nanosleep(&ts, nullptr);
  *step_ns = std::min(*step_ns * 2, kMaxBackoffNs);
  return true;
}

}  // namespace

SysvQueue::SysvQueue(int id, IpcKey key, pid_t created_by,
                     size_t max_message_bytes)
    : Queue(SysvCapabilities(max_message_bytes, !key.is_private())),
      id_(id),
      key_(key),
      created_by_(created_by) {}

SysvQueue::~SysvQueue() { (void)Close(); }

absl::StatusOr<std::unique_ptr<SysvQueue>> SysvQueue::Open(
    const SysvQueueOptions& options) {
  const bool is_private = options.key.is_private();
  if (is_private && options.open == OpenMode::kAttach) {
    return absl::InvalidArgumentError(
        "a private sysv queue can only be created; attach one by key or id");
  }
  if ((options.mode & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "sysv queue mode 0%o has bits outside 0777", options.mode));
  }
  SHMKIT_ASSIGN_OR_RETURN(const uint64_t msgmax, ReadKernelLimit("msgmax"));
  const std::string where = options.key.ToString();
  int id = -1;
  bool created = false;
  if (options.open != OpenMode::kAttach) {
    id = msgget(options.key.value(),
                IPC_CREAT | IPC_EXCL | static_cast<int>(options.mode));
    if (id >= 0) {
      created = true;
    } else if (errno == ENOSPC) {
      SHMKIT_ASSIGN_OR_RETURN(const uint64_t msgmni, ReadKernelLimit("msgmni"));
      return KernelLimitError("sysv message queue", "msgmni", msgmni,
                              "one more queue");
    } else if (errno != EEXIST) {
      return ErrnoStatus(
          errno, absl::StrCat("msgget(key=", where, ", IPC_CREAT | IPC_EXCL)"));
    } else if (options.open == OpenMode::kCreate) {
      return absl::AlreadyExistsError(
          absl::StrCat("a sysv queue with key ", where,
                       " already exists; attach it or remove it first"));
    }
  }
  if (id < 0) {
    id = msgget(options.key.value(), 0);
    if (id < 0) {
      if (errno == ENOENT) {
        return absl::NotFoundError(
            absl::StrCat("no sysv queue with key ", where));
      }
      return ErrnoStatus(errno, absl::StrCat("msgget(key=", where, ")"));
    }
  }
  // From here on a created queue must not leak on error.
  auto fail = [&](absl::Status st) {
    if (created) msgctl(id, IPC_RMID, nullptr);
    return st;
  };
  // (A SysvQueue made below only removes a private queue on destruction;
  // `fail` covers keyed ones too.)
  absl::StatusOr<msqid_ds> ds = StatQueue(id);
  if (!ds.ok()) return fail(ds.status());
  if (absl::Status st = CheckOwnerAndMode(id, *ds, options.mode); !st.ok()) {
    return fail(st);
  }
  std::unique_ptr<SysvQueue> q(
      new SysvQueue(id, options.key, created ? getpid() : 0,
                    std::min<uint64_t>(msgmax, ds->msg_qbytes)));
  if (options.queue_bytes != 0) {
    if (absl::Status st = q->SetQueueBytes(options.queue_bytes); !st.ok()) {
      return fail(st);
    }
  }
  if (created && is_private && options.remove_when_orphaned) {
    internal::ReaperTask task;
    task.msqid = id;
    task.msq_cuid = geteuid();
    absl::StatusOr<UniqueFd> guard = internal::StartOrphanReaper(task);
    if (!guard.ok()) return guard.status();
    q->reaper_guard_ = *std::move(guard);
  }
  return q;
}

absl::StatusOr<std::unique_ptr<SysvQueue>> SysvQueue::OpenId(
    int msqid, std::optional<mode_t> expected_mode) {
  SHMKIT_ASSIGN_OR_RETURN(const uint64_t msgmax, ReadKernelLimit("msgmax"));
  SHMKIT_ASSIGN_OR_RETURN(const msqid_ds ds, StatQueue(msqid));
  SHMKIT_RETURN_IF_ERROR(CheckOwnerAndMode(msqid, ds, expected_mode));
  return std::unique_ptr<SysvQueue>(
      new SysvQueue(msqid, IpcKey::FromNumber(ds.msg_perm.__key), 0,
                    std::min<uint64_t>(msgmax, ds.msg_qbytes)));
}

absl::StatusOr<std::unique_ptr<Queue>> SysvQueue::FromSpec(
    const QueueSpec& spec) {
  internal::SpecReader reader(spec);
  SysvQueueOptions options;
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<IpcKey> key, reader.Key("key"));
  SHMKIT_ASSIGN_OR_RETURN(const bool is_private, reader.Flag("private"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> id,
                          reader.Uint("id", 0, INT32_MAX));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<OpenMode> open,
                          reader.Open("open"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<mode_t> mode,
                          reader.Mode("mode"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> queue_bytes,
                          reader.Uint("queue_bytes", 1, UINT32_MAX));
  SHMKIT_RETURN_IF_ERROR(reader.Finish());
  if (int(key.has_value()) + int(is_private) + int(id.has_value()) > 1) {
    return reader.Error(key ? "key" : "private",
                        "conflicts with another of key, private and id");
  }
  if (id.has_value()) {
    if (open.has_value() || queue_bytes.has_value()) {
      return reader.Error("id", "takes no open or queue_bytes");
    }
    SHMKIT_ASSIGN_OR_RETURN(
        std::unique_ptr<SysvQueue> q,
        OpenId(static_cast<int>(*id),
               mode ? std::optional<mode_t>(*mode) : std::nullopt));
    return std::unique_ptr<Queue>(std::move(q));
  }
  if (key) options.key = *key;
  if (open) options.open = *open;
  if (mode) options.mode = *mode;
  if (queue_bytes) options.queue_bytes = *queue_bytes;
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<SysvQueue> q, Open(options));
  return std::unique_ptr<Queue>(std::move(q));
}

std::string SysvQueue::Describe() const {
  return absl::StrCat("sysv queue key=", key_.ToString(), " id=", id_);
}

absl::Status SysvQueue::CallError(int err, absl::string_view call) const {
  if (err == EIDRM || err == EINVAL) {
    // EINVAL also covers sizes and types, which the wrappers checked; make
    // sure the queue is really gone before saying so.
    if (err == EIDRM || !StatQueue(id_).ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat(Describe(), " was removed"));
    }
  }
  return ErrnoStatus(err, absl::StrCat(call, " on ", Describe()));
}

absl::Status SysvQueue::RefreshLimits(uint64_t* msgmax, uint64_t* qbytes) {
  SHMKIT_ASSIGN_OR_RETURN(*msgmax, ReadKernelLimit("msgmax"));
  absl::StatusOr<msqid_ds> ds = StatQueue(id_);
  if (!ds.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), " was removed"));
  }
  *qbytes = ds->msg_qbytes;
  set_max_message_bytes(std::min(*msgmax, *qbytes));
  return absl::OkStatus();
}

absl::Status SysvQueue::CheckOversize(size_t size) {
  uint64_t msgmax = 0, qbytes = 0;
  SHMKIT_RETURN_IF_ERROR(RefreshLimits(&msgmax, &qbytes));
  if (size > msgmax) {
    return absl::InvalidArgumentError(
        KernelLimitError(absl::StrCat("message for ", Describe()), "msgmax",
                         msgmax, absl::StrCat(size, " bytes"))
            .message());
  }
  if (size > qbytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "message of ", size, " bytes can never fit ", Describe(),
        ": its byte limit msg_qbytes is ", qbytes,
        " (raise it with queue_bytes; above kernel.msgmnb that needs "
        "CAP_SYS_RESOURCE)"));
  }
  return absl::OkStatus();
}

absl::Status SysvQueue::SetQueueBytes(uint64_t bytes) {
  if (bytes == 0) {
    return absl::InvalidArgumentError("msg_qbytes must be at least 1");
  }
  SHMKIT_ASSIGN_OR_RETURN(msqid_ds ds, StatQueue(id_));
  ds.msg_qbytes = bytes;
  if (msgctl(id_, IPC_SET, &ds) == -1) {
    const int err = errno;
    absl::StatusOr<uint64_t> msgmnb = ReadKernelLimit("msgmnb");
    if (err == EPERM && msgmnb.ok() && bytes > *msgmnb) {
      return absl::PermissionDeniedError(absl::StrCat(
          "setting msg_qbytes of ", Describe(), " to ", bytes,
          " needs CAP_SYS_RESOURCE: it is above kernel.msgmnb = ", *msgmnb,
          " (read from /proc/sys/kernel/msgmnb; raise it with sysctl -w "
          "kernel.msgmnb=...)"));
    }
    return CallError(err,
                     absl::StrCat("msgctl(IPC_SET, msg_qbytes=", bytes, ")"));
  }
  uint64_t msgmax = 0, qbytes = 0;
  return RefreshLimits(&msgmax, &qbytes);
}

absl::Status SysvQueue::SendImpl(absl::string_view bytes, int64_t type,
                                 const WaitMode& wait) {
  char* buffer = MessageBuffer(bytes.size());
  const long mtype = type;
  std::memcpy(buffer, &mtype, sizeof(mtype));
  if (!bytes.empty()) {
    std::memcpy(buffer + sizeof(mtype), bytes.data(), bytes.size());
  }
  const int flags = wait.kind() == WaitMode::Kind::kForever ? 0 : IPC_NOWAIT;
  int64_t backoff = kFirstBackoffNs;
  while (true) {
    const int r =
        RetryOnEintr([&] { return msgsnd(id_, buffer, bytes.size(), flags); });
    if (r == 0) return absl::OkStatus();
    const int err = errno;
    if (err != EAGAIN) {
      if (err == EINVAL && StatQueue(id_).ok()) {
        // msgmax may have shrunk under us.
        SHMKIT_RETURN_IF_ERROR(CheckOversize(bytes.size()));
      }
      return CallError(err, absl::StrCat("msgsnd(", bytes.size(), " bytes)"));
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(absl::StrCat(Describe(), " is full"));
    }
    if (!Backoff(wait, &backoff)) {
      return absl::DeadlineExceededError(
          absl::StrCat(Describe(), " stayed full for ",
                       absl::FormatDuration(wait.timeout())));
    }
  }
}

absl::Status SysvQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                    TypeFilter filter, Truncation truncation,
                                    const WaitMode& wait) {
  const bool allow = truncation == Truncation::kAllow;
  int flags = wait.kind() == WaitMode::Kind::kForever ? 0 : IPC_NOWAIT;
  if (filter.SysVExcept()) flags |= MSG_EXCEPT;
  if (allow) flags |= MSG_NOERROR;
  const long msgtyp = filter.SysVType();
  int64_t backoff = kFirstBackoffNs;
  while (true) {
    // The buffer need not exceed the largest message the queue can hold;
    // with truncation allowed, one byte more tells a truncated message from
    // one of exactly max_bytes.
    const size_t limit = Capabilities().max_message_bytes;
    const size_t text = max_bytes < limit ? max_bytes + (allow ? 1 : 0) : limit;
    char* buffer = MessageBuffer(text);
    const ssize_t r =
        RetryOnEintr([&] { return msgrcv(id_, buffer, text, msgtyp, flags); });
    if (r >= 0) {
      long mtype;
      std::memcpy(&mtype, buffer, sizeof(mtype));
      const size_t length = static_cast<size_t>(r);
      const size_t keep = std::min(length, max_bytes);
      out.type = mtype;
      out.data.assign(buffer + sizeof(mtype), keep);
      out.truncated = keep < length;
      return absl::OkStatus();
    }
    const int err = errno;
    if (err == E2BIG) {
      if (max_bytes > limit) {
        // Larger than the cached limit: msgmax or msg_qbytes grew.
        uint64_t msgmax = 0, qbytes = 0;
        SHMKIT_RETURN_IF_ERROR(RefreshLimits(&msgmax, &qbytes));
        if (Capabilities().max_message_bytes > limit) continue;
      }
      return absl::InvalidArgumentError(absl::StrCat(
          "next message (", filter.ToString(), ") in ", Describe(),
          " is longer than max_bytes ", max_bytes,
          "; it stays queued (pass Truncation::kAllow to take it truncated)"));
    }
    if (err != ENOMSG && err != EAGAIN) {
      return CallError(
          err, absl::StrCat("msgrcv(", text, " bytes, msgtyp ", msgtyp, ")"));
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(
          absl::StrCat("no message (", filter.ToString(), ") in ", Describe()));
    }
    if (!Backoff(wait, &backoff)) {
      return absl::DeadlineExceededError(
          absl::StrCat("no message (", filter.ToString(), ") in ", Describe(),
                       " within ", absl::FormatDuration(wait.timeout())));
    }
  }
}

absl::Status SysvQueue::CloseImpl() {
  absl::Status st = absl::OkStatus();
  if (key_.is_private() && created_by_ == getpid()) st = RemoveImpl();
  reaper_guard_.reset();
  if (st.code() == absl::StatusCode::kFailedPrecondition) {
    return absl::OkStatus();  // already removed by someone else
  }
  return st;
}

absl::Status SysvQueue::RemoveImpl() {
  internal::StandDownOrphanReaper(reaper_guard_);
  if (msgctl(id_, IPC_RMID, nullptr) == -1) {
    return CallError(errno, "msgctl(IPC_RMID)");
  }
  return absl::OkStatus();
}

absl::StatusOr<QueueStats> SysvQueue::StatsImpl() const {
  absl::StatusOr<msqid_ds> ds = StatQueue(id_);
  if (!ds.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(), " was removed"));
  }
  QueueStats stats;
  stats.messages = ds->msg_qnum;
  stats.bytes = ds->msg_cbytes;
  stats.capacity_bytes = ds->msg_qbytes;
  stats.last_sender_pid = ds->msg_lspid;
  stats.last_receiver_pid = ds->msg_lrpid;
  if (ds->msg_stime != 0) stats.last_send = absl::FromTimeT(ds->msg_stime);
  if (ds->msg_rtime != 0) stats.last_receive = absl::FromTimeT(ds->msg_rtime);
  return stats;
}

}  // namespace shmkit
