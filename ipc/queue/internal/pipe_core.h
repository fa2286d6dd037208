// The machinery shared by the pipe and FIFO queues: framing, the writer and
// reader locks, and the shared staging buffer.
//
// Stream format: a sequence of frames, each a PipeFrameHeader (16 bytes,
// native byte order: both ends run on one machine) followed by `length`
// payload bytes.
//
// Control segment (kind kPipeLock), shared by every process using the pipe:
//
//   ObjectHeader          128 bytes (capacity = max message bytes)
//   PipeControl           5 cache lines:
//     geometry            max message, staging size, offsets (creator only)
//     writer side         writer_lock (OwnerLock word), writing_bytes
//     reader side         reader_lock, reading, stage_begin, stage_end
//     wake-ups            data_seq, data_waiters, data_watchers
//     state               kOpen / kRemoved / kBroken, with who and why
//   staging               staging_bytes bytes
//   ProcessRegistry       owner identities for the two locks
//
// Writing. Every frame is written with the writer lock held (one writev()
// unless the pipe fills up in the middle of a large frame), so frames never
// interleave, whatever their size. The descriptors are
// non-blocking (the flag belongs to the open file description, which every
// process shares, so it is never toggled per call): a frame of at most
// PIPE_BUF bytes is written whole or not at all (POSIX), so a writer killed
// at any point leaves the stream framed. A larger frame may be written in
// several pieces; `writing_bytes` is set while it is; a writer that takes
// the lock over from a dead owner with `writing_bytes` set knows the stream
// may hold a torn frame and marks the queue broken (DataLoss for everyone)
// rather than let a reader splice two frames. A writer waits for room with
// poll(POLLOUT) without the lock, except in the middle of a large frame.
//
// Reading. Readers share a staging buffer in the segment, guarded by the
// reader lock. A reader takes the next complete frame from staging, or
// reads whatever the pipe holds into staging (one read() often brings many
// frames) and then takes one. Frames left in staging stay available to
// every reader. `reading` is set around each read() into staging (and each
// compaction of it): a reader killed inside it may have taken bytes out of
// the pipe without recording them, so whoever takes the reader lock over
// with `reading` set marks the queue broken.
//
// Waiting for data. A reader with nothing to take announces itself, notes
// `data_seq`, tries once more for real, then waits for `data_seq` to move:
// spinning first (internal/spin_wait.h; announced by counting itself in
// `data_watchers`), then asleep on it as a futex (announced by setting
// `data_waiters`). After each frame a writer moves `data_seq` only if some
// reader is announced, and makes the wake-up system call only if one may
// sleep; so a writer streaming to a reader that keeps up never touches the
// line readers spin on. A writer that saw no announcement wrote before the
// reader's last try, which finds the frame. A reader that leaves whole
// frames in staging announces them the same way. Sleeps are sliced
// (kPipeWaitSliceNs) so that a writer killed between its write and its
// announcement, or the last writer going away, delays a reader by one slice
// at most. A reader killed while spinning leaves `data_watchers` counting
// it: writers then announce every frame, which costs speed, never
// correctness.
#ifndef SHMKIT_IPC_QUEUE_INTERNAL_PIPE_CORE_H_
#define SHMKIT_IPC_QUEUE_INTERNAL_PIPE_CORE_H_

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
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/owner_lock.h"
#include "shmkit/ipc/process_registry.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/ipc/unique_fd.h"

namespace shmkit::internal {

inline constexpr uint32_t kPipeLayoutVersion = 1;
inline constexpr uint32_t kPipeFrameMagic = 0x31515053;  // "SPQ1"
// Longest futex sleep of a waiting reader and longest poll() slice of a
// waiting writer, so removal and dead peers are noticed.
inline constexpr int64_t kPipeWaitSliceNs = 200'000'000;
// The largest max_message_bytes a pipe queue accepts (frame lengths are
// 32-bit, and the staging buffer holds a whole frame).
inline constexpr uint64_t kPipeMaxMessageLimit = uint64_t{64} << 20;

struct PipeFrameHeader {
  uint32_t magic;   // kPipeFrameMagic
  uint32_t length;  // payload bytes
  int64_t type;     // > 0
};
static_assert(sizeof(PipeFrameHeader) == 16 &&
                  std::is_trivially_copyable_v<PipeFrameHeader>,
              "the frame header is part of the stream format");

enum class PipeState : uint32_t { kOpen = 0, kRemoved = 1, kBroken = 2 };
enum class PipeBreak : uint32_t {
  kNone = 0,
  kWriterDied = 1,  // a writer died in the middle of a large frame
  kReaderDied = 2,  // a reader died inside a read() into staging
  kBadFrame = 3,    // a frame header that is not ours (foreign writer?)
  kTornAtEof = 4,   // every writer went away in the middle of a frame
};

struct alignas(kCacheLineBytes) PipeControl {
  // Line 0: geometry, written once by the creator.
  uint32_t max_message_bytes;
  uint32_t staging_bytes;
  uint64_t staging_offset;  // from the start of the segment
  uint64_t registry_offset;
  uint32_t registry_slots;
  uint32_t reserved0;
  uint64_t reserved1[4];
  // Line 1: writers.
  uint64_t writer_lock;    // OwnerLock word
  uint64_t writing_bytes;  // size of the large frame being written, or 0
  uint64_t reserved2[6];
  // Line 2: readers.
  uint64_t reader_lock;  // OwnerLock word
  uint32_t reading;      // 1 while a read() into staging is in progress
  uint32_t stage_begin;  // staged, unconsumed bytes are [begin, end)
  uint32_t stage_end;
  uint32_t reserved3;
  uint64_t reserved4[5];
  // Line 3: reader wake-ups.
  uint32_t data_seq;       // futex; moved when announced readers wait
  uint32_t data_waiters;   // 1 when a reader may be asleep on data_seq
  uint32_t data_watchers;  // readers spinning on data_seq
  uint32_t reserved5;
  uint64_t reserved5b[6];
  // Line 4: state.
  uint32_t state;       // PipeState
  uint32_t broken_why;  // PipeBreak
  int32_t broken_pid;   // the process that died, if known
  uint32_t reserved6;
  uint64_t broken_bytes;  // the frame size involved, if known
  uint64_t reserved7[5];
};
static_assert(sizeof(PipeControl) == 5 * kCacheLineBytes &&
                  std::is_standard_layout_v<PipeControl> &&
                  std::is_trivially_copyable_v<PipeControl>,
              "five cache lines of plain fields: writers, readers and "
              "sleepers each touch their own line");
static_assert(offsetof(PipeControl, writer_lock) % kCacheLineBytes == 0 &&
                  offsetof(PipeControl, reader_lock) % kCacheLineBytes == 0,
              "each lock word starts a cache line (futex on its low half)");

struct PipeSharedOptions {
  IpcKey key = IpcKey::Private();
  mode_t mode = 0600;
  uint32_t max_message_bytes = 65536;
  uint32_t registry_slots = 128;
  uint64_t fingerprint = 0;  // FIFO: identity of the FIFO it belongs to
};

// One process's view of a pipe or FIFO queue: the control segment plus the
// descriptors this process holds. Not copyable; movable.
class PipeCore {
 public:
  // Creates the control segment (IPC_CREAT | IPC_EXCL).
  static absl::StatusOr<PipeCore> CreateShared(const PipeSharedOptions& options,
                                               std::string description);
  // Attaches an existing keyed control segment and validates it;
  // FailedPrecondition if its fingerprint is not `fingerprint`.
  static absl::StatusOr<PipeCore> AttachShared(IpcKey key, mode_t mode,
                                               uint64_t fingerprint,
                                               std::string description);

  PipeCore(PipeCore&&) noexcept;
  PipeCore& operator=(PipeCore&&) noexcept;
  ~PipeCore();

  // Takes ownership of the ends (either may be invalid).
  void SetDescriptors(UniqueFd read_end, UniqueFd write_end);
  bool has_read_end() const { return read_.valid(); }
  bool has_write_end() const { return write_.valid(); }
  int read_fd() const { return read_.get(); }
  int write_fd() const { return write_.get(); }

  absl::Status Send(absl::string_view bytes, int64_t type,
                    const WaitMode& wait);
  absl::Status Receive(Message& out, size_t max_bytes, Truncation truncation,
                       const WaitMode& wait);

  // Closes this process's read / write end (a closed write end wakes the
  // readers so they notice EOF at once).
  void CloseReadEnd();
  void CloseWriteEnd();
  // Marks the queue removed for everyone and wakes every waiter.
  void MarkRemoved();
  absl::Status RemoveSegment() { return segment_.Remove(); }

  QueueStats Stats() const;
  // Busy-wait budget of a receive before it sleeps (per handle).
  void set_spin(absl::Duration spin) {
    spin_ns_ = absl::ToInt64Nanoseconds(spin);
  }
  uint32_t max_message_bytes() const { return max_message_bytes_; }
  size_t pipe_buf() const { return pipe_buf_; }
  const Segment& segment() const { return segment_; }

 private:
  enum class Attempt { kDone, kEmpty, kEof };

  PipeCore(Segment segment, ProcessRegistry registry, std::string description);
  absl::Status StateError() const;
  void MarkBroken(PipeBreak why, pid_t pid, uint64_t bytes);
  // Takes the writer or reader lock as `wait` allows; the guard's result()
  // says whether it was taken over from a dead owner (DeadOwnerPid names it).
  absl::StatusOr<OwnerLockGuard> LockFor(uint64_t* word, OwnerToken me,
                                         const WaitMode& wait,
                                         absl::string_view what);
  pid_t DeadOwnerPid(const LockResult& result) const;
  absl::Status WriteFrame(const PipeFrameHeader& header,
                          absl::string_view bytes, const WaitMode& wait,
                          bool* would_block);
  absl::StatusOr<Attempt> TryTake(Message& out, size_t max_bytes,
                                  Truncation truncation, bool* more_staged);
  absl::Status WaitWritable(const WaitMode& wait, bool ignore_deadline);
  bool WriterDiedMidFrame(pid_t* pid) const;

  Segment segment_;
  ProcessRegistry registry_;
  PipeControl* control_ = nullptr;
  std::byte* staging_ = nullptr;
  uint32_t staging_bytes_ = 0;
  uint32_t max_message_bytes_ = 0;
  size_t pipe_buf_ = 4096;
  int64_t spin_ns_ = 20'000;
  UniqueFd read_;
  UniqueFd write_;
  std::string description_;
};

// SIGPIPE would kill a process that writes to a pipe nobody reads any more.
// With `ignore` (the default of the pipe and FIFO queues) a SIGPIPE left at
// its default disposition is set to SIG_IGN (an application handler is left
// alone; it runs and the write reports EPIPE). Without, FailedPrecondition
// when the disposition is still the default.
absl::Status EnsureSigpipeCannotKill(bool ignore);

}  // namespace shmkit::internal

#endif  // SHMKIT_IPC_QUEUE_INTERNAL_PIPE_CORE_H_
