// SemaphoreSet: the move-only owner of a System V semaphore set.
//
// Acquire/Release always use SEM_UNDO: when a process dies holding a
// semaphore, the kernel gives back what it took, so a crashed worker never
// leaves the set stuck. A set removed while we use or wait on it answers
// FailedPrecondition, never a hang.
//
// Lifetime: System V semaphore sets cannot be "marked for removal" the way
// segments can; IPC_RMID removes them at once. So an anonymous set is removed
// when the SemaphoreSet that created it is destroyed in the creating process
// (forked children that destroy their copies never remove it). If the
// creator is killed, an anonymous set leaks until `ipcrm`; keyed sets always
// persist until Remove(). Prefer AtomicCounter or OwnerLock where that
// matters.
#ifndef SHMKIT_IPC_SEMAPHORE_H_
#define SHMKIT_IPC_SEMAPHORE_H_

#include <sys/types.h>

#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shmkit/ipc/key.h"

namespace shmkit {

struct SemaphoreOptions {
  IpcKey key = IpcKey::Private();
  // Semaphores in the set, 1..kernel.sem's SEMMSL.
  int count = 1;
  mode_t mode = 0600;
  // Initial value of each semaphore (0..kSemaphoreValueMax). Empty: all 0;
  // one value: every semaphore; otherwise exactly `count` values.
  std::vector<int> initial_values = {};
};

struct SemaphoreOpenOptions {
  // Permission bits the set must have; nullopt accepts any. The owner is
  // always checked against our effective uid.
  std::optional<mode_t> expected_mode = 0600;
  // How long to wait for a concurrent creator to finish initializing.
  absl::Duration init_timeout = absl::Seconds(1);
};

class SemaphoreSet {
 public:
  // Creates with IPC_CREAT | IPC_EXCL and sets the initial values before any
  // opener can use the set (openers wait until the creator's first semop).
  static absl::StatusOr<SemaphoreSet> Create(const SemaphoreOptions& options);
  // Opens an existing keyed set; NotFound when none has the key.
  static absl::StatusOr<SemaphoreSet> Open(
      IpcKey key, const SemaphoreOpenOptions& options = {});
  // Opens by id (as `ipcs -s` prints).
  static absl::StatusOr<SemaphoreSet> OpenId(
      int semid, const SemaphoreOpenOptions& options = {});
  // IPC_RMID of set `semid`.
  static absl::Status RemoveId(int semid);

  SemaphoreSet(SemaphoreSet&& other) noexcept;
  SemaphoreSet& operator=(SemaphoreSet&& other) noexcept;
  SemaphoreSet(const SemaphoreSet&) = delete;
  SemaphoreSet& operator=(const SemaphoreSet&) = delete;
  ~SemaphoreSet();

  // Decrements semaphore `index` by one, blocking while it is 0 (SEM_UNDO).
  absl::Status Acquire(int index);
  // Non-blocking: Unavailable when it is 0.
  absl::Status TryAcquire(int index);
  // Blocks at most `timeout`: DeadlineExceeded when it stays 0.
  absl::Status AcquireFor(int index, absl::Duration timeout);
  // Increments by one (SEM_UNDO, balancing the acquire). ResourceExhausted
  // when it would pass kSemaphoreValueMax.
  absl::Status Release(int index);

  absl::StatusOr<int> Value(int index) const;
  // Pid of the last process that operated on semaphore `index` (GETPID).
  absl::StatusOr<pid_t> LastPid(int index) const;
  // Sets the value directly (SETVAL). Clears every process's undo entry for
  // that semaphore, as the kernel does; meant for set-up and tests.
  absl::Status SetValue(int index, int value);

  // Removes the set now; every waiter gets FailedPrecondition.
  absl::Status Remove();

  int id() const { return id_; }
  int count() const { return count_; }
  IpcKey key() const { return key_; }

 private:
  SemaphoreSet(int id, int count, IpcKey key, pid_t remove_in_pid)
      : id_(id), count_(count), key_(key), remove_in_pid_(remove_in_pid) {}
  absl::Status CheckIndex(int index) const;
  absl::Status Op(int index, short delta, short flags,
                  const absl::Duration* timeout, const char* what);

  int id_ = -1;
  int count_ = 0;
  IpcKey key_;
  // Pid of the creating process when this object should remove an anonymous
  // set on destruction; 0 otherwise.
  pid_t remove_in_pid_ = 0;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_SEMAPHORE_H_
