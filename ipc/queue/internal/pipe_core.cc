#include "shmkit/ipc/queue/internal/pipe_core.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/change_notifier.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/errors.h"
#include "shmkit/ipc/internal/futex.h"
#include "shmkit/ipc/internal/registry_layout.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/owner_lock.h"
#include "shmkit/ipc/queue/internal/spin_wait.h"

namespace shmkit::internal {
namespace {

// How long a try-call waits for another process's lock hold (which is one
// non-blocking system call long) before it answers Unavailable.
constexpr absl::Duration kTryLockBound = absl::Microseconds(200);
// Frames up to this size are copied into one buffer and written with one
// write() (PIPE_BUF is 4096 on Linux).
constexpr size_t kSmallFrameBuffer = 4096;
// Bytes of read-ahead the staging buffer has beyond one whole frame.
constexpr uint32_t kReadAheadBytes = 65536;

constexpr size_t kControlOffset = sizeof(ObjectHeader);
constexpr size_t kStagingOffset = kControlOffset + sizeof(PipeControl);
static_assert(kStagingOffset % kCacheLineBytes == 0);

uint32_t StagingBytesFor(uint32_t max_message_bytes) {
  return static_cast<uint32_t>(
      RoundUp(sizeof(PipeFrameHeader) + max_message_bytes, 4096) +
      kReadAheadBytes);
}

// After anything readers may wait for: a frame written, or whole frames left
// in staging. The sequence moves only when a reader watches it (spinning:
// `data_watchers`) or sleeps on it (`data_waiters`), so a writer streaming
// to a reader that keeps up never touches the line readers spin on; the
// futex wake costs a system call only when a reader sleeps. Readers re-try
// for real after announcing themselves, so a writer that saw nobody
// announced wrote before the re-try (see Receive).
void Announce(PipeControl& c) {
  if (Load(c.data_watchers, std::memory_order_seq_cst) == 0 &&
      Load(c.data_waiters, std::memory_order_seq_cst) == 0) {
    return;
  }
  Ref(c.data_seq).fetch_add(1, std::memory_order_seq_cst);
  if (Load(c.data_waiters, std::memory_order_seq_cst) != 0 &&
      Ref(c.data_waiters).exchange(0, std::memory_order_seq_cst) != 0) {
    FutexWake(&c.data_seq, INT_MAX);
  }
}

absl::string_view BreakText(PipeBreak why) {
  switch (why) {
    case PipeBreak::kNone:
      return "unknown cause";
    case PipeBreak::kWriterDied:
      return "a writer died in the middle of a frame";
    case PipeBreak::kReaderDied:
      return "a reader died while reading from the pipe";
    case PipeBreak::kBadFrame:
      return "a frame header is not a shmkit frame (another program wrote "
             "to the pipe?)";
    case PipeBreak::kTornAtEof:
      return "every writer went away in the middle of a frame";
  }
  return "unknown cause";
}

}  // namespace

absl::Status EnsureSigpipeCannotKill(bool ignore) {
  struct sigaction current;
  if (sigaction(SIGPIPE, nullptr, &current) != 0) {
    return ErrnoStatus(errno, "sigaction(SIGPIPE, query)");
  }
  const bool is_default =
      (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL;
  if (!is_default) return absl::OkStatus();
  if (!ignore) {
    return absl::FailedPreconditionError(
        "SIGPIPE is at its default disposition (terminate): a writer whose "
        "reader went away would be killed. Ignore SIGPIPE (or install a "
        "handler), or leave ignore_sigpipe on");
  }
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  sigemptyset(&ign.sa_mask);
  if (sigaction(SIGPIPE, &ign, nullptr) != 0) {
    return ErrnoStatus(errno, "sigaction(SIGPIPE, SIG_IGN)");
  }
  return absl::OkStatus();
}

PipeCore::PipeCore(Segment segment, ProcessRegistry registry,
                   std::string description)
    : segment_(std::move(segment)),
      registry_(std::move(registry)),
      description_(std::move(description)) {
  auto* base = static_cast<std::byte*>(segment_.data());
  control_ = reinterpret_cast<PipeControl*>(base + kControlOffset);
  staging_ = base + control_->staging_offset;
  staging_bytes_ = control_->staging_bytes;
  max_message_bytes_ = control_->max_message_bytes;
}

PipeCore::PipeCore(PipeCore&&) noexcept = default;
PipeCore& PipeCore::operator=(PipeCore&&) noexcept = default;
PipeCore::~PipeCore() = default;

absl::StatusOr<PipeCore> PipeCore::CreateShared(
    const PipeSharedOptions& options, std::string description) {
  if (options.max_message_bytes > kPipeMaxMessageLimit) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes ", options.max_message_bytes,
                     " is above the pipe queue limit ", kPipeMaxMessageLimit));
  }
  const uint32_t staging_bytes = StagingBytesFor(options.max_message_bytes);
  const size_t registry_offset =
      RoundUp(kStagingOffset + staging_bytes, kCacheLineBytes);
  SHMKIT_ASSIGN_OR_RETURN(const size_t registry_bytes,
                          ProcessRegistry::BytesFor(options.registry_slots, 0));
  ObjectOptions object;
  object.key = options.key;
  object.mode = options.mode;
  SHMKIT_ASSIGN_OR_RETURN(
      Segment segment,
      CreateObjectSegment(ObjectKind::kPipeLock, kPipeLayoutVersion,
                          registry_offset + registry_bytes, options.fingerprint,
                          options.max_message_bytes, object));
  auto* control = reinterpret_cast<PipeControl*>(
      static_cast<std::byte*>(segment.data()) + kControlOffset);
  control->max_message_bytes = options.max_message_bytes;
  control->staging_bytes = staging_bytes;
  control->staging_offset = kStagingOffset;
  control->registry_offset = registry_offset;
  control->registry_slots = options.registry_slots;
  SHMKIT_ASSIGN_OR_RETURN(
      ProcessRegistry registry,
      ProcessRegistry::Format(segment.bytes().subspan(registry_offset),
                              options.registry_slots, 0));
  PublishObject(segment);
  return PipeCore(std::move(segment), std::move(registry),
                  std::move(description));
}

absl::StatusOr<PipeCore> PipeCore::AttachShared(IpcKey key, mode_t mode,
                                                uint64_t fingerprint,
                                                std::string description) {
  ObjectAttachOptions attach;
  attach.expected_mode = mode;
  SHMKIT_ASSIGN_OR_RETURN(Segment segment,
                          AttachObjectSegment(key, -1, ObjectKind::kPipeLock,
                                              kPipeLayoutVersion, attach));
  const ObjectHeader& header = HeaderOf(segment);
  if (header.fingerprint != fingerprint) {
    return absl::FailedPreconditionError(
        absl::StrCat("the pipe control segment with key ", key.ToString(),
                     " belongs to another FIFO (fingerprint ",
                     header.fingerprint, ", expected ", fingerprint, ")"));
  }
  // Geometry: copied once from the segment and checked against its size
  // before anything uses it.
  const auto* control = reinterpret_cast<const PipeControl*>(
      static_cast<const std::byte*>(segment.data()) + kControlOffset);
  const uint64_t max = control->max_message_bytes;
  const uint64_t staging = control->staging_bytes;
  const uint64_t registry_offset = control->registry_offset;
  const bool ok =
      segment.size() >= kStagingOffset && max <= kPipeMaxMessageLimit &&
      control->staging_offset == kStagingOffset &&
      staging == StagingBytesFor(static_cast<uint32_t>(max)) &&
      registry_offset == RoundUp(kStagingOffset + staging, kCacheLineBytes) &&
      registry_offset < segment.size() && header.capacity == max;
  if (!ok) {
    return absl::FailedPreconditionError(
        absl::StrCat("pipe control segment id ", segment.id(),
                     " has an inconsistent layout (max message ", max,
                     ", staging ", staging, ", registry at ", registry_offset,
                     ", segment ", segment.size(), " bytes)"));
  }
  SHMKIT_ASSIGN_OR_RETURN(
      ProcessRegistry registry,
      ProcessRegistry::Open(segment.bytes().subspan(registry_offset)));
  return PipeCore(std::move(segment), std::move(registry),
                  std::move(description));
}

void PipeCore::SetDescriptors(UniqueFd read_end, UniqueFd write_end) {
  read_ = std::move(read_end);
  write_ = std::move(write_end);
  // PIPE_BUF as this pipe's file system reports it (4096 on Linux).
  const int fd = write_.valid() ? write_.get() : read_.get();
  const long pipe_buf = fd >= 0 ? fpathconf(fd, _PC_PIPE_BUF) : -1;
  if (pipe_buf > 0) pipe_buf_ = static_cast<size_t>(pipe_buf);
}

void PipeCore::CloseReadEnd() { read_.reset(); }

void PipeCore::CloseWriteEnd() {
  if (!write_.valid()) return;
  write_.reset();
  // If that was the last write end, sleeping readers should see EOF now,
  // not at the end of their slice.
  WakeAll(control_->data_seq);
}

void PipeCore::MarkRemoved() {
  uint32_t expected = static_cast<uint32_t>(PipeState::kOpen);
  Ref(control_->state)
      .compare_exchange_strong(expected,
                               static_cast<uint32_t>(PipeState::kRemoved),
                               std::memory_order_acq_rel);
  WakeAll(control_->data_seq);
}

void PipeCore::MarkBroken(PipeBreak why, pid_t pid, uint64_t bytes) {
  uint32_t expected = static_cast<uint32_t>(PipeState::kOpen);
  // The details first; the state change publishes them.
  Store(control_->broken_why, static_cast<uint32_t>(why));
  Store(control_->broken_pid, static_cast<int32_t>(pid));
  Store(control_->broken_bytes, bytes);
  Ref(control_->state)
      .compare_exchange_strong(expected,
                               static_cast<uint32_t>(PipeState::kBroken),
                               std::memory_order_acq_rel);
  WakeAll(control_->data_seq);
}

absl::Status PipeCore::StateError() const {
  const uint32_t state = Load(control_->state);
  if (state == static_cast<uint32_t>(PipeState::kOpen)) {
    return absl::OkStatus();
  }
  if (state == static_cast<uint32_t>(PipeState::kRemoved)) {
    return absl::FailedPreconditionError(
        absl::StrCat(description_, " was removed"));
  }
  const auto why = static_cast<PipeBreak>(Load(control_->broken_why));
  const pid_t pid = Load(control_->broken_pid);
  const uint64_t bytes = Load(control_->broken_bytes);
  return absl::DataLossError(absl::StrCat(
      description_, " lost its framing: ", BreakText(why),
      pid > 0 ? absl::StrCat(" (pid ", pid, ")") : std::string(),
      bytes > 0 ? absl::StrCat(" (frame of ", bytes, " bytes)") : std::string(),
      ". What is still in the pipe cannot be delimited; recreate the queue"));
}

absl::StatusOr<OwnerLockGuard> PipeCore::LockFor(uint64_t* word,
                                                 OwnerToken me,
                                                 const WaitMode& wait,
                                                 absl::string_view what) {
  OwnerLock lock(word, &registry_);
  if (lock.TryLock(me)) return OwnerLockGuard::Adopt(lock, me);
  absl::Duration bound;
  switch (wait.kind()) {
    case WaitMode::Kind::kNone:
      bound = kTryLockBound;
      break;
    case WaitMode::Kind::kForever:
      bound = absl::InfiniteDuration();
      break;
    case WaitMode::Kind::kDeadline:
      bound = wait.Remaining();
      break;
  }
  absl::StatusOr<OwnerLockGuard> guard =
      OwnerLockGuard::Acquire(lock, me, bound);
  if (!guard.ok()) {
    if (guard.status().code() != absl::StatusCode::kDeadlineExceeded) {
      return guard.status();
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(
          absl::StrCat(description_, ": another process is in the middle of a ",
                       what, " call"));
    }
    return absl::DeadlineExceededError(
        absl::StrCat(description_, ": the ", what, " lock stayed held for ",
                     absl::FormatDuration(wait.timeout())));
  }
  return guard;
}

pid_t PipeCore::DeadOwnerPid(const LockResult& result) const {
  return result.took_over ? registry_.Slot(result.dead_owner.slot).pid : 0;
}

absl::Status PipeCore::WaitWritable(const WaitMode& wait,
                                    bool ignore_deadline) {
  const int64_t now = MonotonicNanos();
  int64_t until = now + kPipeWaitSliceNs;
  if (!ignore_deadline && wait.kind() == WaitMode::Kind::kDeadline) {
    if (now >= wait.deadline_ns()) {
      return absl::DeadlineExceededError(
          absl::StrCat(description_, " stayed full for ",
                       absl::FormatDuration(wait.timeout())));
    }
    until = std::min(until, wait.deadline_ns());
  }
  pollfd p{write_.get(), POLLOUT, 0};
  const int64_t left = std::max<int64_t>(until - now, 0);
  const timespec ts{static_cast<time_t>(left / 1'000'000'000),
                    static_cast<long>(left % 1'000'000'000)};
  if (NoEventsOnEintr(ppoll(&p, 1, &ts, nullptr)) == -1) {
    return ErrnoStatus(
        errno, absl::StrCat("ppoll(", description_, " write end, POLLOUT)"));
  }
  return StateError();
}

absl::Status PipeCore::WriteFrame(const PipeFrameHeader& header,
                                  absl::string_view bytes, const WaitMode& wait,
                                  bool* would_block) {
  const size_t frame = sizeof(header) + bytes.size();
  iovec iov[2] = {
      {const_cast<PipeFrameHeader*>(&header), sizeof(header)},
      {const_cast<char*>(bytes.data()), bytes.size()},
  };
  const int iov_count = bytes.empty() ? 1 : 2;
  const int fd = write_.get();
  if (frame <= pipe_buf_) {
    // Atomic (POSIX): all of it, or EAGAIN and nothing. One contiguous
    // write(): cheaper in the kernel than writev() of two pieces, and the
    // copy is at most PIPE_BUF bytes.
    thread_local char buffer[kSmallFrameBuffer];
    const bool copy = frame <= sizeof(buffer);
    if (copy) {
      std::memcpy(buffer, &header, sizeof(header));
      if (!bytes.empty()) {
        std::memcpy(buffer + sizeof(header), bytes.data(), bytes.size());
      }
    }
    const ssize_t r = RetryOnEintr([&] {
      return copy ? write(fd, buffer, frame) : writev(fd, iov, iov_count);
    });
    if (r == static_cast<ssize_t>(frame)) return absl::OkStatus();
    if (r < 0 && errno == EAGAIN) {
      *would_block = true;
      return absl::OkStatus();
    }
    if (r < 0 && errno == EPIPE) {
      return absl::FailedPreconditionError(absl::StrCat(
          description_, ": no receiver left (every read end is closed)"));
    }
    if (r < 0) {
      return ErrnoStatus(
          errno, absl::StrCat("writev(", description_, ", ", frame, " bytes)"));
    }
    return absl::InternalError(absl::StrCat(
        description_, ": a write of ", frame, " bytes (<= PIPE_BUF ", pipe_buf_,
        ") was split (", r, " bytes written)"));
  }
  // A large frame: possibly several writes, with `writing_bytes` telling a
  // successor that a torn frame may be in the pipe if we die meanwhile (set
  // from just before the first write until the last byte is in).
  size_t done = 0;
  while (done < frame) {
    iovec part[2];
    int parts = 0;
    if (done < sizeof(header)) {
      part[parts++] = {reinterpret_cast<char*>(iov[0].iov_base) + done,
                       sizeof(header) - done};
      if (!bytes.empty()) part[parts++] = iov[1];
    } else {
      const size_t off = done - sizeof(header);
      part[parts++] = {const_cast<char*>(bytes.data()) + off,
                       bytes.size() - off};
    }
    if (done == 0) Store(control_->writing_bytes, uint64_t{frame});
    const ssize_t r = RetryOnEintr([&] { return writev(fd, part, parts); });
    if (r > 0) {
      done += static_cast<size_t>(r);
      continue;
    }
    const int err = errno;
    if (r < 0 && err == EAGAIN) {
      if (done == 0) {
        // Nothing of this frame is in the pipe yet.
        Store(control_->writing_bytes, uint64_t{0});
        if (wait.Expired()) {
          *would_block = true;
          return absl::OkStatus();
        }
      }
      // Readers may be waiting for what is already in the pipe.
      Announce(*control_);
      absl::Status st = WaitWritable(wait, /*ignore_deadline=*/done > 0);
      if (st.code() == absl::StatusCode::kDeadlineExceeded && done == 0) {
        Store(control_->writing_bytes, uint64_t{0});
        return st;
      }
      if (!st.ok()) {
        if (done > 0) MarkBroken(PipeBreak::kWriterDied, getpid(), frame);
        Store(control_->writing_bytes, uint64_t{0});
        return st.code() == absl::StatusCode::kDeadlineExceeded ? StateError()
                                                                : st;
      }
      continue;
    }
    if (done > 0) MarkBroken(PipeBreak::kWriterDied, getpid(), frame);
    Store(control_->writing_bytes, uint64_t{0});
    if (r < 0 && err == EPIPE) {
      return absl::FailedPreconditionError(absl::StrCat(
          description_, ": no receiver left (every read end is closed)"));
    }
    return ErrnoStatus(err, absl::StrCat("writev(", description_, ", ",
                                         frame - done, " bytes)"));
  }
  Store(control_->writing_bytes, uint64_t{0});
  return absl::OkStatus();
}

absl::Status PipeCore::Send(absl::string_view bytes, int64_t type,
                            const WaitMode& wait) {
  if (!write_.valid()) {
    return absl::FailedPreconditionError(
        absl::StrCat(description_, ": this process closed its write end"));
  }
  SHMKIT_ASSIGN_OR_RETURN(const OwnerToken me, registry_.Self());
  const PipeFrameHeader header{kPipeFrameMagic,
                               static_cast<uint32_t>(bytes.size()), type};
  while (true) {
    SHMKIT_RETURN_IF_ERROR(StateError());
    SHMKIT_ASSIGN_OR_RETURN(OwnerLockGuard held,
                            LockFor(&control_->writer_lock, me, wait, "send"));
    if (held.result().took_over) {
      const uint64_t pending = Load(control_->writing_bytes);
      if (pending != 0) {
        MarkBroken(PipeBreak::kWriterDied, DeadOwnerPid(held.result()),
                   pending);
      }
    }
    SHMKIT_RETURN_IF_ERROR(StateError());
    bool would_block = false;
    absl::Status st = WriteFrame(header, bytes, wait, &would_block);
    held.Unlock();
    if (!st.ok()) return st;
    if (!would_block) {
      Announce(*control_);
      return absl::OkStatus();
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(absl::StrCat(description_, " is full"));
    }
    SHMKIT_RETURN_IF_ERROR(WaitWritable(wait, /*ignore_deadline=*/false));
  }
}

bool PipeCore::WriterDiedMidFrame(pid_t* pid) const {
  if (Load(control_->writing_bytes) == 0) return false;
  const std::optional<OwnerToken> owner =
      OwnerLock(&control_->writer_lock, &registry_).DeadHolder();
  if (!owner.has_value()) return false;
  // The dead writer still holds the lock, and only the holder writes
  // writing_bytes: read now, it is what the writer left (the first read
  // only spares the registry when no frame is pending).
  if (Load(control_->writing_bytes) == 0) return false;
  *pid = registry_.Slot(owner->slot).pid;
  return true;
}

absl::StatusOr<PipeCore::Attempt> PipeCore::TryTake(Message& out,
                                                    size_t max_bytes,
                                                    Truncation truncation,
                                                    bool* more_staged) {
  uint32_t begin = Load(control_->stage_begin, std::memory_order_relaxed);
  uint32_t end = Load(control_->stage_end, std::memory_order_relaxed);
  if (begin > end || end > staging_bytes_) {
    MarkBroken(PipeBreak::kBadFrame, 0, 0);
    return StateError();
  }
  // Whether [begin, end) starts with a whole frame; DataLoss for a header
  // that is not ours.
  auto complete = [&](uint32_t at, PipeFrameHeader* h) -> absl::StatusOr<bool> {
    if (end - at < sizeof(PipeFrameHeader)) return false;
    std::memcpy(h, staging_ + at, sizeof(*h));
    if (h->magic != kPipeFrameMagic || h->length > max_message_bytes_ ||
        h->type <= 0) {
      MarkBroken(PipeBreak::kBadFrame, 0, 0);
      return StateError();
    }
    return end - at >= sizeof(PipeFrameHeader) + h->length;
  };
  PipeFrameHeader h;
  SHMKIT_ASSIGN_OR_RETURN(bool whole, complete(begin, &h));
  if (!whole) {
    if (!read_.valid()) {
      return absl::FailedPreconditionError(
          absl::StrCat(description_, ": this process closed its read end"));
    }
    if (begin > 0) {
      // Make room for the rest of the frame. Until the indices are stored
      // the staging buffer is inconsistent: covered by `reading` like the
      // read() below (a reader dying here breaks the queue, loudly).
      Store(control_->reading, 1u);
      std::memmove(staging_, staging_ + begin, end - begin);
      end -= begin;
      begin = 0;
      Store(control_->stage_begin, begin, std::memory_order_relaxed);
      Store(control_->stage_end, end, std::memory_order_relaxed);
      Store(control_->reading, 0u);
    }
    // Read what the pipe holds. A second read only when the first left the
    // frame incomplete: its EAGAIN tells a writer that is still writing
    // from one that died in the middle of the frame.
    const int fd = read_.get();
    for (int round = 0; round < 2 && !whole; ++round) {
      std::byte* into = staging_ + end;
      const size_t space = staging_bytes_ - end;
      Store(control_->reading, 1u);
      const ssize_t r = RetryOnEintr([&] { return read(fd, into, space); });
      const int err = errno;
      if (r > 0) end += static_cast<uint32_t>(r);
      Store(control_->stage_end, end, std::memory_order_relaxed);
      Store(control_->reading, 0u);
      if (r == 0) {
        if (end == begin) return Attempt::kEof;
        MarkBroken(PipeBreak::kTornAtEof, 0, 0);
        return StateError();
      }
      if (r < 0) {
        if (err != EAGAIN) {
          return ErrnoStatus(err, absl::StrCat("read(", description_, ")"));
        }
        pid_t dead = 0;
        if (end > begin && WriterDiedMidFrame(&dead)) {
          MarkBroken(PipeBreak::kWriterDied, dead, 0);
          return StateError();
        }
        return Attempt::kEmpty;
      }
      SHMKIT_ASSIGN_OR_RETURN(whole, complete(begin, &h));
    }
    if (!whole) return Attempt::kEmpty;
  }
  if (h.length > max_bytes && truncation == Truncation::kError) {
    return absl::InvalidArgumentError(absl::StrCat(
        "next message in ", description_, " is ", h.length,
        " bytes, more than max_bytes ", max_bytes,
        "; it stays queued (pass Truncation::kAllow to take it truncated)"));
  }
  const size_t keep = std::min<size_t>(h.length, max_bytes);
  out.type = h.type;
  out.data.assign(reinterpret_cast<const char*>(staging_ + begin + sizeof(h)),
                  keep);
  out.truncated = keep < h.length;
  begin += static_cast<uint32_t>(sizeof(h) + h.length);
  if (begin == end) begin = end = 0;
  Store(control_->stage_begin, begin, std::memory_order_relaxed);
  Store(control_->stage_end, end, std::memory_order_relaxed);
  PipeFrameHeader next;
  absl::StatusOr<bool> next_whole = complete(begin, &next);
  *more_staged = next_whole.ok() && *next_whole;
  return Attempt::kDone;
}

absl::Status PipeCore::Receive(Message& out, size_t max_bytes,
                               Truncation truncation, const WaitMode& wait) {
  SHMKIT_ASSIGN_OR_RETURN(const OwnerToken me, registry_.Self());
  // Waiting, when an attempt comes back empty: announce (as a watcher while
  // spinning, as a waiter before sleeping), note the sequence, try once
  // more for real, then wait for the sequence to move. A writer that did
  // not see the announcement wrote before that last try, which finds its
  // frame; one that saw it moves the sequence.
  enum class Phase { kFirst, kSpin, kSleep };
  Phase phase = Phase::kFirst;
  bool watching = false;
  uint32_t seen = 0;
  int64_t spin_left = spin_ns_;
  auto stop_watching = [&] {
    if (watching) {
      Ref(control_->data_watchers).fetch_sub(1, std::memory_order_seq_cst);
      watching = false;
    }
  };
  auto moved = [&] {
    return Load(control_->data_seq, std::memory_order_seq_cst) != seen;
  };
  while (true) {
    absl::Status st = StateError();
    bool more_staged = false;
    absl::StatusOr<Attempt> attempt = Attempt::kEmpty;
    if (st.ok()) {
      absl::StatusOr<OwnerLockGuard> held =
          LockFor(&control_->reader_lock, me, wait, "receive");
      st = held.status();
      if (st.ok()) {
        if (held->result().took_over && Load(control_->reading) != 0) {
          MarkBroken(PipeBreak::kReaderDied, DeadOwnerPid(held->result()), 0);
        }
        st = StateError();
        if (st.ok()) {
          attempt = TryTake(out, max_bytes, truncation, &more_staged);
        }
      }
    }
    if (st.ok() && !attempt.ok()) st = attempt.status();
    if (!st.ok() || *attempt != Attempt::kEmpty) stop_watching();
    if (!st.ok()) return st;
    if (*attempt == Attempt::kDone) {
      // Frames we brought into staging are there for the other readers.
      if (more_staged) Announce(*control_);
      return absl::OkStatus();
    }
    if (*attempt == Attempt::kEof) {
      return absl::FailedPreconditionError(absl::StrCat(
          description_, ": no sender left (every write end is closed)"));
    }
    if (wait.kind() == WaitMode::Kind::kNone) {
      return absl::UnavailableError(absl::StrCat(description_, " is empty"));
    }
    switch (phase) {
      case Phase::kFirst:
        if (spin_left > 0) {
          Ref(control_->data_watchers).fetch_add(1, std::memory_order_seq_cst);
          watching = true;
          phase = Phase::kSpin;
        } else {
          Store(control_->data_waiters, 1u, std::memory_order_seq_cst);
          phase = Phase::kSleep;
        }
        seen = Load(control_->data_seq, std::memory_order_seq_cst);
        continue;  // try once more, announced
      case Phase::kSpin: {
        const int64_t start = MonotonicNanos();
        const bool changed = SpinWait(spin_left, wait.deadline_ns(), moved);
        spin_left -= MonotonicNanos() - start;
        if (changed) {
          seen = Load(control_->data_seq, std::memory_order_seq_cst);
          continue;  // still watching: try again
        }
        stop_watching();
        Store(control_->data_waiters, 1u, std::memory_order_seq_cst);
        seen = Load(control_->data_seq, std::memory_order_seq_cst);
        phase = Phase::kSleep;
        continue;  // try once more, announced as a sleeper
      }
      case Phase::kSleep:
        break;
    }
    const int64_t now = MonotonicNanos();
    if (wait.kind() == WaitMode::Kind::kDeadline && now >= wait.deadline_ns()) {
      return absl::DeadlineExceededError(
          absl::StrCat("no message in ", description_, " within ",
                       absl::FormatDuration(wait.timeout())));
    }
    // Sliced: a writer killed between its write and its announcement, or
    // the last writer going away, costs one slice at most (the next try
    // reads the pipe itself).
    FutexWaitUntil(&control_->data_seq, seen,
                   std::min(wait.deadline_ns(), now + kPipeWaitSliceNs));
    // Woken (or the slice ended): announce again before the next try, since
    // the writer that woke us cleared the flag.
    Store(control_->data_waiters, 1u, std::memory_order_seq_cst);
    seen = Load(control_->data_seq, std::memory_order_seq_cst);
  }
}

QueueStats PipeCore::Stats() const {
  QueueStats stats;
  const uint32_t begin = Load(control_->stage_begin, std::memory_order_relaxed);
  const uint32_t end = Load(control_->stage_end, std::memory_order_relaxed);
  uint64_t bytes = end >= begin ? end - begin : 0;
  int in_pipe = 0;
  if (read_.valid() && ioctl(read_.get(), FIONREAD, &in_pipe) == 0) {
    bytes += static_cast<uint64_t>(in_pipe);
  }
  stats.bytes = bytes;
  const int fd = read_.valid() ? read_.get() : write_.get();
  const int size = fd >= 0 ? fcntl(fd, F_GETPIPE_SZ) : -1;
  if (size > 0) stats.capacity_bytes = static_cast<uint64_t>(size);
  return stats;
}

}  // namespace shmkit::internal
