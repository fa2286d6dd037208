// ProcessRegistry: who is attached to a shared object, so a lock held by a
// process that died can be told from one held by a live process.
//
// The registry lives in a region of a segment (a table embeds one; so does a
// LockArena). It has a fixed number of slots; each thread that uses the
// object claims one on first use (after fork, the child claims its own) and
// frees it when the thread exits or the handle is destroyed. A slot records
// the process's pid, its start time (field 22 of /proc/<pid>/stat), its
// identity (internal::ProcessIdentity: the pidfs inode number of the
// process, Linux 6.9+) and a generation that moves every time the slot is
// claimed or declared dead.
//
// An OwnerToken (slot, generation) is what an owner writes into a lock word.
// The token's owner counts as dead when:
//   - the slot's generation moved (the slot was declared dead or reused), or
//   - the slot is free or marked dead, or
//   - kill(pid, 0) says ESRCH, or the pid now belongs to another process:
//     another identity, or, where the identity is unknown, another start
//     time, or
//   - the process has exited and only its parent's wait remains (a zombie
//     whose threads have all exited, /proc/<pid>/stat): it never runs
//     again, so its locks are taken over at its death, not at its reap.
// EPERM from kill means alive; so does a stopped process, and a process
// whose main thread exited while other threads run (its leader shows as a
// zombie, but other threads are still counted).
//
// Pid reuse. A pid freed by a dead owner may be given to a new process at
// once (pid_max wraps, or ns_last_pid is set). The start time counts clock
// ticks (10 ms at CLK_TCK 100), so a new process started within the tick of
// the dead one's start looks the same by pid and start time. The identity
// closes that: the kernel numbers pidfs inodes from a 64-bit counter, one
// per process, never reused before reboot, and a new process cannot carry
// the old number. Where it is unknown (a kernel without pidfs, before 6.9:
// identity 0 in the slot, or a slot written by a build before it existed),
// the start-time check is all there is, and a pid reused within the same
// clock tick as the dead owner's start makes that owner look alive: its
// locks wait for their timeout (DeadlineExceeded; never a wrong takeover)
// until a supervisor that reaped it calls MarkDead / MarkDeadInAllOpen.
//
// Each slot also owns an "extra" area of a size chosen by the user of the
// registry (the table keeps its undo image there) and a pin word: a dead
// slot whose pin is non-zero still holds recovery data and is not reused
// until the user recovers it and calls Unpin().
//
// Requirements: every process using one registry shares a pid namespace.
// A thread that exits while holding a lock is treated like a dead process.
#ifndef SHMKIT_IPC_PROCESS_REGISTRY_H_
#define SHMKIT_IPC_PROCESS_REGISTRY_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "shmkit/ipc/internal/proc.h"

namespace shmkit {

// Identifies a lock owner: one thread of one process, via its registry slot.
struct OwnerToken {
  uint32_t slot = 0;
  uint32_t generation = 0;

  friend bool operator==(const OwnerToken&, const OwnerToken&) = default;
};

enum class SlotStatus : uint32_t {
  kFree = 0,
  kClaiming = 1,  // pid written, start time not yet
  kLive = 2,
  kDead = 3,  // declared dead (MarkDead), awaiting recovery or reuse
};

struct SlotInfo {
  uint32_t slot = 0;
  SlotStatus status = SlotStatus::kFree;
  uint32_t generation = 0;
  pid_t pid = 0;
  pid_t tid = 0;
  uint64_t start_time = 0;
  bool pinned = false;
};

struct RegistryStats {
  uint32_t slots = 0;
  uint32_t in_use = 0;  // claiming or live
  uint32_t dead = 0;    // marked dead
  uint32_t pinned = 0;
  uint64_t claims = 0;
  uint64_t reclaims = 0;     // slots of dead processes reused
  uint64_t marked_dead = 0;  // slots declared dead by MarkDead
};

namespace internal {
struct RegistryHeader;
struct RegistrySlot;

// The calling thread's tokens, one per registry handle it used. Trivially
// destructible and constant-initialized, so reading it is a plain TLS load;
// slots are freed at thread exit by a separate guard (process_registry.cc).
// A thread using more than kTokenCacheSize registries at once falls back to
// a slower per-thread list.
struct CachedToken {
  uint64_t handle = 0;  // ProcessRegistry handle id; 0 = empty
  uint64_t epoch = 0;   // ForkEpoch() when claimed
  OwnerToken token;
};
inline constexpr int kTokenCacheSize = 8;
inline thread_local CachedToken tls_token_cache[kTokenCacheSize] = {};
}  // namespace internal

class ProcessRegistry {
 public:
  static constexpr uint32_t kMaxSlots = (1u << 24) - 1;

  // Bytes a registry of `slots` slots, each with `extra_bytes` of user area,
  // occupies (a multiple of the cache line). InvalidArgument for 0 slots or
  // more than kMaxSlots.
  static absl::StatusOr<size_t> BytesFor(uint32_t slots, uint32_t extra_bytes);

  // Formats `memory` (zeroed, 64-byte aligned, at least BytesFor bytes) as an
  // empty registry. Called once, by the creator of the segment.
  static absl::StatusOr<ProcessRegistry> Format(absl::Span<std::byte> memory,
                                                uint32_t slots,
                                                uint32_t extra_bytes);
  // Opens a registry formatted by another process; validates its header
  // against `memory` (never reads outside it).
  static absl::StatusOr<ProcessRegistry> Open(absl::Span<std::byte> memory);

  ProcessRegistry(ProcessRegistry&& other) noexcept;
  ProcessRegistry& operator=(ProcessRegistry&& other) noexcept;
  ProcessRegistry(const ProcessRegistry&) = delete;
  ProcessRegistry& operator=(const ProcessRegistry&) = delete;
  // Frees every slot this handle claimed in this process (all threads).
  ~ProcessRegistry();

  // The calling thread's token, claiming a slot on the first call in this
  // thread (and again in a fork child). No system call once claimed.
  // ResourceExhausted when every slot belongs to a live process or awaits
  // recovery.
  absl::StatusOr<OwnerToken> Self() {
    if (const OwnerToken* t = CachedSelf(); t != nullptr) return *t;
    return ClaimForThisThread();
  }
  // Self()'s answer when this thread already holds a slot of this registry
  // in this process (a plain thread-local lookup); nullptr when Self()
  // would have to claim one.
  const OwnerToken* CachedSelf() const {
    const uint64_t epoch = internal::ForkEpoch();
    for (const internal::CachedToken& c : internal::tls_token_cache) {
      if (c.handle == handle_id_ && c.epoch == epoch) return &c.token;
    }
    return nullptr;
  }

  // Whether `token`'s owner is dead (see the file comment). Reads the slot;
  // makes system calls (kill, /proc) only when the slot still looks live.
  bool IsDead(OwnerToken token) const;

  // Declares every slot of process `pid` dead (generation bump). For a
  // parent that has reaped `pid`: locks it held become recoverable at once,
  // without a liveness probe. `start_time` 0 matches any start time. Returns
  // how many slots were marked.
  int MarkDead(pid_t pid, uint64_t start_time);

  // MarkDead on every registry this process has open (every table, lock
  // arena... it created or attached). What a supervisor calls after reaping
  // a child, so locks the child held are recoverable at once. Returns the
  // number of slots marked.
  static int MarkDeadInAllOpen(pid_t pid, uint64_t start_time);
  // What the owner of this handle (a table, say) does when MarkDeadInAllOpen
  // marks slots of its registry dead: typically, recover what the dead
  // process left, at once. Called on the thread that calls
  // MarkDeadInAllOpen, without locks held; that thread must not be closing
  // the owner meanwhile. Replaces any earlier one; inherited across fork.
  // The recovery may meet a lock held by another child that has just died
  // and is not reaped yet: that child counts as dead once it has exited
  // (see the file comment), so the recovery takes its lock over too rather
  // than wait for the reap.
  void OnMarkedDead(std::function<void()> fn);

  // The per-slot user area and pin word.
  absl::Span<std::byte> Extra(uint32_t slot) const;
  void Pin(uint32_t slot);
  void Unpin(uint32_t slot);
  bool Pinned(uint32_t slot) const;
  // The pin word as a count, for an owner that may hold several things at
  // once (a ring consumer whose callback sends to the same ring): the slot
  // is pinned while the count is not zero. The holder counts its own pins
  // through pin_word() (no other process writes them while it lives);
  // DropDeadPin takes one off for a holder that is dead (IsDead of the
  // slot's current token; nothing happens otherwise), atomically, as
  // several processes may do it at once, and never below zero. Do not mix
  // with Pin/Unpin on one registry.
  void DropDeadPin(uint32_t slot);
  // For hot paths that already hold a valid token (slot < slot_count()):
  // the slot's pin word, accessed with atomic_ref, and the start of the
  // extra areas (slot i's is at extra_base() + i * extra_stride()).
  uint32_t* pin_word(uint32_t slot) const;
  std::byte* extra_base() const;
  size_t extra_stride() const { return extra_stride_; }

  // Who the token's slot belongs to now (for error messages and tools).
  SlotInfo Slot(uint32_t slot) const;
  // The current token of a slot (its generation), to recover a dead slot.
  OwnerToken CurrentToken(uint32_t slot) const;
  std::vector<SlotInfo> Slots() const;
  RegistryStats Stats() const;
  uint32_t slot_count() const { return slot_count_; }

  // Frees the calling thread's slot now (instead of at thread exit).
  void ReleaseSelf();

 private:
  ProcessRegistry(internal::RegistryHeader* header, uint32_t slot_count,
                  size_t extra_stride, bool untracked = false);
  absl::StatusOr<OwnerToken> ClaimForThisThread();
  void Reset();
  absl::StatusOr<OwnerToken> Claim();
  internal::RegistrySlot& slot_ref(uint32_t slot) const;

  internal::RegistryHeader* header_ = nullptr;
  uint32_t slot_count_ = 0;
  size_t extra_stride_ = 0;
  // Process-unique id of this handle, never reused; 0 when moved from.
  uint64_t handle_id_ = 0;
};

}  // namespace shmkit

#endif  // SHMKIT_IPC_PROCESS_REGISTRY_H_
