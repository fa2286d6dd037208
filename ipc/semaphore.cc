#include "shmkit/ipc/semaphore.h"

#include <sys/sem.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/kernel_limits.h"

namespace shmkit {
namespace {

using internal::ErrnoStatus;
using internal::RetryOnEintr;

// The caller must define this union for semctl (see semctl(2)).
union SemUn {
  int val;
  semid_ds* buf;
  unsigned short* array;
};

absl::Status RemovedError(int semid) {
  return absl::FailedPreconditionError(
      absl::StrCat("semaphore set id ", semid, " was removed"));
}

absl::StatusOr<semid_ds> StatSet(int semid) {
  semid_ds ds{};
  SemUn arg;
  arg.buf = &ds;
  if (semctl(semid, 0, IPC_STAT, arg) == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) {
      return absl::NotFoundError(
          absl::StrCat("no semaphore set with id ", semid));
    }
    return ErrnoStatus(err, absl::StrCat("semctl(id=", semid, ", IPC_STAT)"));
  }
  return ds;
}

absl::Status CheckOwnerAndMode(int semid, const semid_ds& ds,
                               std::optional<mode_t> expected_mode) {
  const uid_t me = geteuid();
  const mode_t mode = ds.sem_perm.mode & 0777;
  const bool owner_ok = ds.sem_perm.uid == me;
  const bool mode_ok = !expected_mode.has_value() || mode == *expected_mode;
  if (owner_ok && mode_ok) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "semaphore set id=%d key=%s has owner uid %d and mode 0%o; expected "
      "owner uid %d%s%s",
      semid, IpcKey::FromNumber(ds.sem_perm.__key).ToString(), ds.sem_perm.uid,
      mode, me,
      expected_mode ? absl::StrFormat(" and mode 0%o", *expected_mode) : "",
      owner_ok ? " (the mode differs)" : " (the owner differs)"));
}

}  // namespace

absl::StatusOr<SemaphoreSet> SemaphoreSet::Create(
    const SemaphoreOptions& options) {
  absl::StatusOr<SemLimits> limits = ReadSemLimits();
  if (!limits.ok()) return limits.status();
  if (options.count < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("semaphore count ", options.count, " must be at least 1"));
  }
  if (static_cast<uint64_t>(options.count) > limits->semmsl) {
    return KernelLimitError("semaphore set", "sem (SEMMSL, field 1)",
                            limits->semmsl,
                            absl::StrCat(options.count, " semaphores"));
  }
  if ((options.mode & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "semaphore mode 0%o has bits outside 0777", options.mode));
  }
  const size_t n = static_cast<size_t>(options.count);
  if (options.initial_values.size() > 1 && options.initial_values.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat(
        "got ", options.initial_values.size(), " initial values for ", n,
        " semaphores (give none, one for all, or one each)"));
  }
  std::vector<unsigned short> values(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const int v = options.initial_values.empty() ? 0
                  : options.initial_values.size() == 1
                      ? options.initial_values[0]
                      : options.initial_values[i];
    if (v < 0 || v > kSemaphoreValueMax) {
      return absl::InvalidArgumentError(
          absl::StrCat("initial value ", v, " of semaphore ", i,
                       " is outside 0..", kSemaphoreValueMax, " (SEMVMX)"));
    }
    values[i] = static_cast<unsigned short>(v);
  }

  const int id = semget(options.key.value(), options.count,
                        IPC_CREAT | IPC_EXCL | static_cast<int>(options.mode));
  if (id == -1) {
    const int err = errno;
    if (err == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat("a semaphore set with key ", options.key.ToString(),
                       " already exists; open it or remove it first"));
    }
    if (err == ENOSPC) {
      return KernelLimitError(
          "semaphore set", "sem (SEMMNI/SEMMNS, fields 4 and 2)",
          limits->semmni,
          absl::StrCat("one more set of ", options.count,
                       " semaphores (SEMMNS = ", limits->semmns, ")"));
    }
    return ErrnoStatus(err, absl::StrCat("semget(key=", options.key.ToString(),
                                         ", nsems=", options.count, ")"));
  }
  SemaphoreSet set(id, options.count, options.key,
                   options.key.is_private() ? getpid() : 0);
  SemUn arg;
  arg.array = values.data();
  if (semctl(id, 0, SETALL, arg) == -1) {
    const int err = errno;
    (void)RemoveId(id);
    set.remove_in_pid_ = 0;
    return ErrnoStatus(err, absl::StrCat("semctl(id=", id, ", SETALL)"));
  }
  // Openers wait for sem_otime != 0 before using the set: a +1/-1 pair in
  // one atomic semop sets it without changing any value (-1 first when the
  // value is at SEMVMX, +1 first when it is 0; never blocking).
  const short first = values[0] > 0 ? -1 : 1;
  sembuf mark[2] = {{0, first, IPC_NOWAIT},
                    {0, static_cast<short>(-first), IPC_NOWAIT}};
  if (RetryOnEintr([&] { return semop(id, mark, 2); }) == -1) {
    const int err = errno;
    (void)RemoveId(id);
    set.remove_in_pid_ = 0;
    return ErrnoStatus(err, absl::StrCat("semop(id=", id, ", init mark)"));
  }
  absl::StatusOr<semid_ds> ds = StatSet(id);
  if (!ds.ok()) return ds.status();
  if (absl::Status st = CheckOwnerAndMode(id, *ds, options.mode); !st.ok()) {
    return st;  // `set` removes the set (we created it)
  }
  if (!options.key.is_private()) set.remove_in_pid_ = 0;
  return set;
}

absl::StatusOr<SemaphoreSet> SemaphoreSet::Open(
    IpcKey key, const SemaphoreOpenOptions& options) {
  if (key.is_private()) {
    return absl::InvalidArgumentError(
        "cannot open a semaphore set by IPC_PRIVATE; use its id");
  }
  const int id = semget(key.value(), 0, 0);
  if (id == -1) {
    const int err = errno;
    if (err == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("no semaphore set with key ", key.ToString()));
    }
    return ErrnoStatus(err, absl::StrCat("semget(key=", key.ToString(), ")"));
  }
  absl::StatusOr<SemaphoreSet> set = OpenId(id, options);
  if (set.ok()) set->key_ = key;
  return set;
}

absl::StatusOr<SemaphoreSet> SemaphoreSet::OpenId(
    int semid, const SemaphoreOpenOptions& options) {
  const internal::Deadline deadline =
      internal::Deadline::In(options.init_timeout);
  while (true) {
    absl::StatusOr<semid_ds> ds = StatSet(semid);
    if (!ds.ok()) return ds.status();
    if (absl::Status st = CheckOwnerAndMode(semid, *ds, options.expected_mode);
        !st.ok()) {
      return st;
    }
    if (ds->sem_otime != 0) {
      return SemaphoreSet(semid, static_cast<int>(ds->sem_nsems),
                          IpcKey::FromNumber(ds->sem_perm.__key), 0);
    }
    if (deadline.Expired()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "semaphore set id ", semid,
          " was never initialized by its creator (no semop within ",
          absl::FormatDuration(options.init_timeout), ")"));
    }
    usleep(1000);
  }
}

absl::Status SemaphoreSet::RemoveId(int semid) {
  if (semctl(semid, 0, IPC_RMID) == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) return RemovedError(semid);
    return ErrnoStatus(err, absl::StrCat("semctl(id=", semid, ", IPC_RMID)"));
  }
  return absl::OkStatus();
}

SemaphoreSet::SemaphoreSet(SemaphoreSet&& other) noexcept
    : id_(std::exchange(other.id_, -1)),
      count_(std::exchange(other.count_, 0)),
      key_(other.key_),
      remove_in_pid_(std::exchange(other.remove_in_pid_, 0)) {}

SemaphoreSet& SemaphoreSet::operator=(SemaphoreSet&& other) noexcept {
  if (this != &other) {
    if (remove_in_pid_ != 0 && getpid() == remove_in_pid_) (void)RemoveId(id_);
    id_ = std::exchange(other.id_, -1);
    count_ = std::exchange(other.count_, 0);
    key_ = other.key_;
    remove_in_pid_ = std::exchange(other.remove_in_pid_, 0);
  }
  return *this;
}

SemaphoreSet::~SemaphoreSet() {
  if (remove_in_pid_ != 0 && id_ >= 0 && getpid() == remove_in_pid_) {
    (void)RemoveId(id_);
  }
}

absl::Status SemaphoreSet::CheckIndex(int index) const {
  if (id_ < 0)
    return absl::FailedPreconditionError("semaphore set is empty (moved from)");
  if (index < 0 || index >= count_) {
    return absl::InvalidArgumentError(
        absl::StrCat("semaphore index ", index, " is outside 0..", count_ - 1));
  }
  return absl::OkStatus();
}

absl::Status SemaphoreSet::Op(int index, short delta, short flags,
                              const absl::Duration* timeout, const char* what) {
  if (absl::Status st = CheckIndex(index); !st.ok()) return st;
  sembuf op{static_cast<unsigned short>(index), delta,
            static_cast<short>(flags | SEM_UNDO)};
  int rc;
  if (timeout != nullptr) {
    const internal::Deadline deadline = internal::Deadline::In(*timeout);
    rc = RetryOnEintr([&] {
      timespec left = deadline.RemainingTimespec();
      return semtimedop(id_, &op, 1, &left);
    });
  } else {
    rc = RetryOnEintr([&] { return semop(id_, &op, 1); });
  }
  if (rc == 0) return absl::OkStatus();
  const int err = errno;
  switch (err) {
    case EAGAIN:
      if (timeout != nullptr) {
        return absl::DeadlineExceededError(
            absl::StrCat(what, " on semaphore ", index, " of set id ", id_,
                         " timed out after ", absl::FormatDuration(*timeout)));
      }
      return absl::UnavailableError(absl::StrCat(
          "semaphore ", index, " of set id ", id_, " is 0 (", what, ")"));
    case EIDRM:
    case EINVAL:  // the id no longer exists (our arguments were checked)
      return RemovedError(id_);
    case ERANGE:
      return absl::ResourceExhaustedError(
          absl::StrCat(what, " would raise semaphore ", index, " of set id ",
                       id_, " above SEMVMX = ", kSemaphoreValueMax));
    default:
      return ErrnoStatus(err, absl::StrCat("semop(id=", id_, ", index=", index,
                                           ", delta=", delta, ")"));
  }
}

absl::Status SemaphoreSet::Acquire(int index) {
  return Op(index, -1, 0, nullptr, "acquire");
}
absl::Status SemaphoreSet::TryAcquire(int index) {
  return Op(index, -1, IPC_NOWAIT, nullptr, "try-acquire");
}
absl::Status SemaphoreSet::AcquireFor(int index, absl::Duration timeout) {
  return Op(index, -1, 0, &timeout, "timed acquire");
}
absl::Status SemaphoreSet::Release(int index) {
  return Op(index, 1, 0, nullptr, "release");
}

absl::StatusOr<int> SemaphoreSet::Value(int index) const {
  if (absl::Status st = CheckIndex(index); !st.ok()) return st;
  const int v = semctl(id_, index, GETVAL);
  if (v == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) return RemovedError(id_);
    return ErrnoStatus(err, absl::StrCat("semctl(id=", id_, ", GETVAL)"));
  }
  return v;
}

absl::StatusOr<pid_t> SemaphoreSet::LastPid(int index) const {
  if (absl::Status st = CheckIndex(index); !st.ok()) return st;
  const int v = semctl(id_, index, GETPID);
  if (v == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) return RemovedError(id_);
    return ErrnoStatus(err, absl::StrCat("semctl(id=", id_, ", GETPID)"));
  }
  return static_cast<pid_t>(v);
}

absl::Status SemaphoreSet::SetValue(int index, int value) {
  if (absl::Status st = CheckIndex(index); !st.ok()) return st;
  if (value < 0 || value > kSemaphoreValueMax) {
    return absl::InvalidArgumentError(absl::StrCat(
        "semaphore value ", value, " is outside 0..", kSemaphoreValueMax));
  }
  SemUn arg;
  arg.val = value;
  if (semctl(id_, index, SETVAL, arg) == -1) {
    const int err = errno;
    if (err == EINVAL || err == EIDRM) return RemovedError(id_);
    return ErrnoStatus(err, absl::StrCat("semctl(id=", id_, ", SETVAL)"));
  }
  return absl::OkStatus();
}

absl::Status SemaphoreSet::Remove() {
  if (id_ < 0)
    return absl::FailedPreconditionError("semaphore set is empty (moved from)");
  remove_in_pid_ = 0;
  return RemoveId(id_);
}

}  // namespace shmkit
