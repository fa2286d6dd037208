// RingQueue. The layout and the slot protocol are described in
// internal/ring_layout.h; this file adds the waiting policy:
//
//   1. one attempt (no clock read, no system call);
//   2. up to `spin` of retries (internal/spin_wait.h: pure `pause` spinning
//      for the first 2 us, then sched_yield between retries so that a peer
//      sharing our CPU runs);
//   3. sleep on the shared futex of the direction we wait for, announced
//      by the waiters flag (change_notifier.h), in slices of at most
//      kMaxSleepNs so that a lost wake-up (a peer killed between its
//      publish and its notify) or a removal costs one slice at most. While
//      the slot in the way belongs to another process, slices shrink to
//      dead_owner_check and the owner's liveness is checked between them.
#include "shmkit/ipc/queue/ring_queue.h"

#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/base/attributes.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/change_notifier.h"
#include "shmkit/ipc/internal/deadline.h"
#include "shmkit/ipc/internal/futex.h"
#include "shmkit/ipc/internal/registry_layout.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/ipc/queue/internal/ring_layout.h"
#include "shmkit/ipc/queue/internal/spec_reader.h"
#include "shmkit/ipc/queue/internal/spin_wait.h"

namespace shmkit {
namespace {

using internal::kRingTombstone;
using internal::Load;
using internal::Ref;
using internal::RingControl;
using internal::RingGenOf;
using internal::RingHookPoint;
using internal::RingOwnerOf;
using internal::RingSeqOf;
using internal::RingSlot;
using internal::RingState;
using internal::Store;

constexpr int64_t kMaxSleepNs = 200'000'000;

inline void RunHook(RingHookPoint point) {
  const internal::RingTestHook hook =
      internal::ring_test_hook.load(std::memory_order_relaxed);
  if (__builtin_expect(hook != nullptr, 0)) hook(point);
}

// Moves a position counter from `pos` to `pos + 1` unless someone did.
inline void HelpAdvance(uint64_t& counter, uint64_t pos) {
  uint64_t expected = pos;
  Ref(counter).compare_exchange_strong(
      expected, pos + 1, std::memory_order_acq_rel, std::memory_order_relaxed);
}

inline bool Owned(uint64_t state) {
  const uint32_t owner = RingOwnerOf(state);
  return owner != 0 && owner != kRingTombstone;
}

QueueCapabilities RingCapabilities(size_t slot_bytes, bool keyed) {
  QueueCapabilities caps;
  caps.backend = "ring";
  caps.max_message_bytes = slot_bytes;
  caps.typed_receive = false;
  caps.bidirectional = false;
  caps.attachable = keyed;
  caps.pollable_fd = false;
  return caps;
}

absl::Status CheckGeometry(const RingQueueOptions& o) {
  if (o.slots < 2 || o.slots > internal::kRingMaxSlots ||
      (o.slots & (o.slots - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring slots ", o.slots, " must be a power of two in 2..",
                     internal::kRingMaxSlots));
  }
  if (o.slot_bytes > internal::kRingMaxSlotBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring slot_bytes ", o.slot_bytes, " is above ",
                     internal::kRingMaxSlotBytes));
  }
  if (o.registry_slots < 1 ||
      o.registry_slots > internal::kRingMaxRegistrySlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring registry_slots ", o.registry_slots, " outside 1..",
                     internal::kRingMaxRegistrySlots));
  }
  if ((o.mode & ~mode_t{0777}) != 0) {
    return absl::InvalidArgumentError("ring mode has bits outside 0777");
  }
  if (o.spin < absl::ZeroDuration() ||
      o.dead_owner_check <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "ring spin must be >= 0 and dead_owner_check > 0");
  }
  return absl::OkStatus();
}

}  // namespace

RingQueue::RingQueue(Segment segment, ProcessRegistry registry,
                     pid_t created_by, const RingQueueOptions& options)
    : Queue(RingCapabilities(reinterpret_cast<const RingControl*>(
                                 static_cast<const std::byte*>(segment.data()) +
                                 internal::kRingControlOffset)
                                 ->slot_bytes,
                             !segment.key().is_private())),
      segment_(std::move(segment)),
      registry_(std::move(registry)),
      created_by_(created_by),
      key_(segment_->key()),
      spin_ns_(absl::ToInt64Nanoseconds(options.spin)),
      check_ns_(absl::ToInt64Nanoseconds(options.dead_owner_check)) {
  auto* base = static_cast<std::byte*>(segment_->data());
  control_ =
      reinterpret_cast<RingControl*>(base + internal::kRingControlOffset);
  slots_base_ = base + control_->slots_offset;
  slots_ = control_->slots;
  mask_ = slots_ - 1;
  slot_bytes_ = control_->slot_bytes;
  slot_stride_ = control_->slot_stride;
  max_deliveries_ = control_->max_deliveries;
  if (registry_->slot_count() != 0) {
    pin_words_ = reinterpret_cast<std::byte*>(registry_->pin_word(0));
  }
}

// The calling thread's own pin count (ring_layout.h, "Registry slots of
// owners"): plain loads and stores, no locked instruction on the hot path,
// since only the slot's live holder changes it (others only once it is
// dead, through ProcessRegistry::DropDeadPin). `slot` < slot_count.
void RingQueue::AddOwnPin(uint32_t slot) {
  uint32_t& pin = *reinterpret_cast<uint32_t*>(
      pin_words_ + size_t{slot} * sizeof(internal::RegistrySlot));
  Store(pin, Load(pin, std::memory_order_relaxed) + 1,
        std::memory_order_relaxed);
}
void RingQueue::DropOwnPin(uint32_t slot) {
  uint32_t& pin = *reinterpret_cast<uint32_t*>(
      pin_words_ + size_t{slot} * sizeof(internal::RegistrySlot));
  const uint32_t n = Load(pin, std::memory_order_relaxed);
  if (n != 0) Store(pin, n - 1, std::memory_order_relaxed);
}

RingQueue::~RingQueue() { (void)Close(); }

absl::StatusOr<std::unique_ptr<RingQueue>> RingQueue::Open(
    const RingQueueOptions& options) {
  SHMKIT_RETURN_IF_ERROR(CheckGeometry(options));
  if (options.key.is_private() && options.open == OpenMode::kAttach) {
    return absl::InvalidArgumentError(
        "a private ring can only be created; attach one by key");
  }
  const uint64_t stride = internal::RingSlotStride(options.slot_bytes);
  const uint64_t registry_offset =
      internal::kRingSlotsOffset + uint64_t{options.slots} * stride;
  SHMKIT_ASSIGN_OR_RETURN(const size_t registry_bytes,
                          ProcessRegistry::BytesFor(options.registry_slots, 0));

  if (options.open != OpenMode::kAttach) {
    ObjectOptions object;
    object.key = options.key;
    object.mode = options.mode;
    object.huge_pages = options.huge_pages;
    absl::StatusOr<Segment> segment = internal::CreateObjectSegment(
        ObjectKind::kRingQueue, internal::kRingLayoutVersion,
        registry_offset + registry_bytes, /*fingerprint=*/options.slot_bytes,
        /*capacity=*/options.slots, object);
    if (segment.ok()) {
      auto* base = static_cast<std::byte*>(segment->data());
      auto* control =
          reinterpret_cast<RingControl*>(base + internal::kRingControlOffset);
      control->slots = options.slots;
      control->slot_bytes = options.slot_bytes;
      control->slot_stride = static_cast<uint32_t>(stride);
      control->registry_slots = options.registry_slots;
      control->max_deliveries = options.max_deliveries;
      control->slots_offset = internal::kRingSlotsOffset;
      control->registry_offset = registry_offset;
      // Slot i starts free for position i (zeroed pages: type and length 0).
      for (uint32_t i = 0; i < options.slots; ++i) {
        auto* slot = reinterpret_cast<RingSlot*>(
            base + internal::kRingSlotsOffset + uint64_t{i} * stride);
        slot->state = RingState(i, 0, 0);
      }
      SHMKIT_ASSIGN_OR_RETURN(
          ProcessRegistry registry,
          ProcessRegistry::Format(segment->bytes().subspan(registry_offset),
                                  options.registry_slots, 0));
      internal::PublishObject(*segment);
      return std::unique_ptr<RingQueue>(new RingQueue(
          *std::move(segment), std::move(registry), getpid(), options));
    }
    if (segment.status().code() != absl::StatusCode::kAlreadyExists ||
        options.open == OpenMode::kCreate) {
      return segment.status();
    }
  }

  ObjectAttachOptions attach;
  attach.expected_mode = options.mode;
  SHMKIT_ASSIGN_OR_RETURN(
      Segment segment,
      internal::AttachObjectSegment(options.key, -1, ObjectKind::kRingQueue,
                                    internal::kRingLayoutVersion, attach));
  // The creator's geometry, copied once and checked against the segment
  // before anything uses it.
  const auto* control = reinterpret_cast<const RingControl*>(
      static_cast<const std::byte*>(segment.data()) +
      internal::kRingControlOffset);
  const ObjectHeader& header = internal::HeaderOf(segment);
  const uint32_t slots = control->slots;
  const uint32_t slot_bytes = control->slot_bytes;
  const uint64_t want_stride = internal::RingSlotStride(slot_bytes);
  const uint64_t want_registry =
      internal::kRingSlotsOffset + uint64_t{slots} * want_stride;
  const bool ok = segment.size() >= internal::kRingSlotsOffset && slots >= 2 &&
                  slots <= internal::kRingMaxSlots &&
                  (slots & (slots - 1)) == 0 &&
                  slot_bytes <= internal::kRingMaxSlotBytes &&
                  control->slot_stride == want_stride &&
                  control->slots_offset == internal::kRingSlotsOffset &&
                  control->registry_offset == want_registry &&
                  want_registry < segment.size() && header.capacity == slots &&
                  header.fingerprint == slot_bytes &&
                  control->registry_slots <= internal::kRingMaxRegistrySlots;
  if (!ok) {
    return absl::FailedPreconditionError(
        absl::StrCat("ring segment id ", segment.id(),
                     " has an inconsistent layout (", slots, " slots of ",
                     slot_bytes, " bytes in ", segment.size(), " bytes)"));
  }
  SHMKIT_ASSIGN_OR_RETURN(
      ProcessRegistry registry,
      ProcessRegistry::Open(segment.bytes().subspan(want_registry)));
  if (registry.slot_count() > internal::kRingMaxRegistrySlots) {
    return absl::FailedPreconditionError(
        "ring registry has more slots than its state words can name");
  }
  return std::unique_ptr<RingQueue>(
      new RingQueue(std::move(segment), std::move(registry), 0, options));
}

absl::StatusOr<std::unique_ptr<Queue>> RingQueue::FromSpec(
    const QueueSpec& spec) {
  internal::SpecReader reader(spec);
  RingQueueOptions options;
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> slots,
                          reader.Uint("slots", 2, internal::kRingMaxSlots));
  SHMKIT_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> slot_bytes,
      reader.Uint("slot_bytes", 0, internal::kRingMaxSlotBytes));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<IpcKey> key, reader.Key("key"));
  SHMKIT_ASSIGN_OR_RETURN(const bool is_private, reader.Flag("private"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<OpenMode> open,
                          reader.Open("open"));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<mode_t> mode,
                          reader.Mode("mode"));
  SHMKIT_ASSIGN_OR_RETURN(
      const std::optional<uint64_t> registry_slots,
      reader.Uint("registry_slots", 1, internal::kRingMaxRegistrySlots));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> spin_us,
                          reader.Uint("spin_us", 0, 1'000'000));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> check_us,
                          reader.Uint("check_us", 1, 60'000'000));
  SHMKIT_ASSIGN_OR_RETURN(const std::optional<uint64_t> max_deliveries,
                          reader.Uint("max_deliveries", 0, UINT32_MAX));
  SHMKIT_RETURN_IF_ERROR(reader.Finish());
  if (key.has_value() && is_private) {
    return reader.Error("private", "conflicts with key");
  }
  if (slots && (*slots & (*slots - 1)) != 0) {
    return reader.Error(
        "slots", absl::StrCat("value ", *slots, " is not a power of two"));
  }
  if (slots) options.slots = static_cast<uint32_t>(*slots);
  if (slot_bytes) options.slot_bytes = static_cast<uint32_t>(*slot_bytes);
  if (key) options.key = *key;
  if (open) options.open = *open;
  if (mode) options.mode = *mode;
  if (registry_slots) {
    options.registry_slots = static_cast<uint32_t>(*registry_slots);
  }
  if (spin_us) options.spin = absl::Microseconds(*spin_us);
  if (check_us) options.dead_owner_check = absl::Microseconds(*check_us);
  if (max_deliveries) {
    options.max_deliveries = static_cast<uint32_t>(*max_deliveries);
  }
  SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<RingQueue> q, Open(options));
  return std::unique_ptr<Queue>(std::move(q));
}

std::string RingQueue::Describe() const {
  return absl::StrCat("ring queue key=", key_.ToString(), " (", slots_,
                      " slots of ", slot_bytes_, " bytes)");
}

RingSlot& RingQueue::SlotAt(uint64_t pos) const {
  return *reinterpret_cast<RingSlot*>(slots_base_ +
                                      (pos & mask_) * slot_stride_);
}

std::byte* RingQueue::PayloadOf(RingSlot& slot) const {
  return reinterpret_cast<std::byte*>(&slot) + sizeof(RingSlot);
}

bool RingQueue::removed() const {
  return Load(control_->removed, std::memory_order_relaxed) != 0;
}

absl::Status RingQueue::RemovedError() const {
  return absl::FailedPreconditionError(
      absl::StrCat(Describe(), " was removed"));
}

absl::StatusOr<RingQueue::Outcome> RingQueue::TryPush(absl::string_view bytes,
                                                      int64_t type,
                                                      OwnerToken me,
                                                      Blocker* blocker) {
  const uint32_t owner = me.slot + 1;
  // Bounded so that shared data can never keep us here; every failed step
  // means another process made progress.
  const uint64_t max_steps = uint64_t{4} * slots_ + 1024;
  uint64_t pos = Load(control_->tail, std::memory_order_relaxed);
  for (uint64_t step = 0; step < max_steps; ++step) {
    RingSlot& slot = SlotAt(pos);
    const uint64_t reserved =
        RingState(static_cast<uint32_t>(pos), owner, me.generation);
    uint64_t state = Load(slot.state, std::memory_order_acquire);
    const auto diff =
        static_cast<int32_t>(RingSeqOf(state) - static_cast<uint32_t>(pos));
    if (diff < 0) {  // the slot still holds the previous lap: full
      *blocker = {pos, state};
      return Outcome::kWouldBlock;
    }
    if (diff > 0 || RingOwnerOf(state) != 0) {
      // Past this lap, or reserved by another producer: tail is behind.
      HelpAdvance(control_->tail, pos);
      pos = Load(control_->tail, std::memory_order_relaxed);
      continue;
    }
    if (!Ref(slot.state)
             .compare_exchange_strong(state, reserved,
                                      std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
      continue;  // lost this slot; look again
    }
    AddOwnPin(me.slot);  // ring_layout.h: "Registry slots of owners"
    RunHook(RingHookPoint::kAfterReserve);
    HelpAdvance(control_->tail, pos);
    RunHook(RingHookPoint::kBeforePublish);
    Store(slot.type, type, std::memory_order_relaxed);
    Store(slot.length, static_cast<uint32_t>(bytes.size()),
          std::memory_order_relaxed);
    if (max_deliveries_ != 0) {
      Store(slot.claims, 0u, std::memory_order_relaxed);
    }
    if (!bytes.empty()) {
      std::memcpy(PayloadOf(slot), bytes.data(), bytes.size());
    }
    DropOwnPin(me.slot);
    uint64_t expected = reserved;
    if (!Ref(slot.state)
             .compare_exchange_strong(
                 expected, RingState(static_cast<uint32_t>(pos + 1), 0, 0),
                 std::memory_order_release, std::memory_order_relaxed)) {
      return absl::InternalError(
          absl::StrCat(Describe(), ": the slot of position ", pos,
                       " was taken from this live producer (state now ",
                       expected, "); the message was not sent"));
    }
    return Outcome::kDone;
  }
  *blocker = {};
  return Outcome::kWouldBlock;
}

absl::StatusOr<RingQueue::Outcome> RingQueue::TryPop(
    Message& out, size_t max_bytes, Truncation truncation, OwnerToken me,
    const Process* process, absl::Status* processed, Blocker* blocker) {
  const uint32_t owner = me.slot + 1;
  const uint64_t max_steps = uint64_t{4} * slots_ + 1024;
  uint64_t pos = Load(control_->head, std::memory_order_relaxed);
  for (uint64_t step = 0; step < max_steps; ++step) {
    RingSlot& slot = SlotAt(pos);
    const uint64_t claimed =
        RingState(static_cast<uint32_t>(pos + 1), owner, me.generation);
    uint64_t state = Load(slot.state, std::memory_order_acquire);
    const auto diff =
        static_cast<int32_t>(RingSeqOf(state) - static_cast<uint32_t>(pos + 1));
    if (diff < 0) {  // nothing published at head yet
      *blocker = Owned(state) && RingSeqOf(state) == static_cast<uint32_t>(pos)
                     ? Blocker{pos, state}
                     : Blocker{};
      return Outcome::kWouldBlock;
    }
    if (diff > 0 || Owned(state)) {
      // Consumed already, or claimed by another consumer: head is behind.
      HelpAdvance(control_->head, pos);
      pos = Load(control_->head, std::memory_order_relaxed);
      continue;
    }
    if (RingOwnerOf(state) == kRingTombstone) {
      // A dead producer's reservation: free it for the next lap in one CAS
      // (never claimed, so a claim always guards a real message).
      if (Ref(slot.state)
              .compare_exchange_strong(
                  state, RingState(static_cast<uint32_t>(pos + slots_), 0, 0),
                  std::memory_order_acq_rel, std::memory_order_relaxed)) {
        HelpAdvance(control_->head, pos);
        internal::NotifyIfWaiting(control_->not_full_seq,
                                  control_->not_full_waiters);
        pos = pos + 1;
      }
      continue;
    }
    if (max_bytes < slot_bytes_ && truncation == Truncation::kError) {
      const uint32_t length = Load(slot.length, std::memory_order_relaxed);
      if (length > max_bytes) {
        // Only trust the length if the slot still holds that message.
        if (Load(slot.state, std::memory_order_acquire) != state) continue;
        return TooLongError(length, max_bytes);
      }
    }
    if (!Ref(slot.state)
             .compare_exchange_strong(state, claimed, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      continue;
    }
    AddOwnPin(me.slot);
    RunHook(RingHookPoint::kAfterClaim);
    HelpAdvance(control_->head, pos);
    if (max_deliveries_ != 0) {
      SHMKIT_ASSIGN_OR_RETURN(const bool dropped,
                              DropIfPoisoned(slot, pos, claimed));
      if (dropped) {
        pos = Load(control_->head, std::memory_order_relaxed);
        continue;
      }
    }
    SHMKIT_RETURN_IF_ERROR(DeliverClaimed(slot, pos, claimed, out, max_bytes,
                                          process, processed));
    return Outcome::kDone;
  }
  *blocker = {};
  return Outcome::kWouldBlock;
}

absl::Status RingQueue::TooLongError(uint32_t length, size_t max_bytes) const {
  return absl::InvalidArgumentError(
      absl::StrCat("next message in ", Describe(), " is ", length,
                   " bytes, more than max_bytes ", max_bytes,
                   "; it stays queued (pass Truncation::kAllow to take it "
                   "truncated)"));
}

// Inlined: DeliverClaimed runs it on every receive.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline absl::Status RingQueue::ReleaseClaim(
    RingSlot& slot, uint64_t pos, uint64_t claimed) {
  DropOwnPin(RingOwnerOf(claimed) - 1);
  uint64_t expected = claimed;
  if (!Ref(slot.state)
           .compare_exchange_strong(
               expected, RingState(static_cast<uint32_t>(pos + slots_), 0, 0),
               std::memory_order_release, std::memory_order_relaxed)) {
    return absl::InternalError(absl::StrCat(
        Describe(), ": the slot of position ", pos,
        " was taken from this live consumer (state now ", expected, ")"));
  }
  internal::NotifyIfWaiting(control_->not_full_seq,
                            control_->not_full_waiters);
  return absl::OkStatus();
}

absl::StatusOr<bool> RingQueue::DropIfPoisoned(RingSlot& slot, uint64_t pos,
                                                uint64_t claimed) {
  // Ours now: nobody else writes claims until we free the slot.
  const uint32_t claims = Load(slot.claims, std::memory_order_relaxed) + 1;
  Store(slot.claims, claims, std::memory_order_relaxed);
  if (claims <= max_deliveries_) return false;
  SHMKIT_RETURN_IF_ERROR(ReleaseClaim(slot, pos, claimed));
  Ref(control_->poisoned_messages).fetch_add(1, std::memory_order_relaxed);
  return true;
}

absl::Status RingQueue::DeliverClaimed(RingSlot& slot, uint64_t pos,
                                       uint64_t claimed, Message& out,
                                       size_t max_bytes, const Process* process,
                                       absl::Status* processed) {
  absl::Status corrupt = absl::OkStatus();
  // Ours now: type, length and payload cannot change under us.
  const uint32_t length = Load(slot.length, std::memory_order_relaxed);
  if (length > slot_bytes_) {
    corrupt = absl::DataLossError(
        absl::StrCat(Describe(), ": slot of position ", pos, " claims ",
                     length, " bytes, more than a slot holds; dropped"));
  } else {
    // Still claimed: if this process dies inside the callback, the message
    // is redelivered. If the callback throws (or the copy below cannot
    // allocate), the exception is the caller's to handle, but the slot must
    // not stay claimed by a live process for ever (no consumer would take
    // it over, every producer coming round to it would wait): released and
    // counted as received on the way out, as when the callback returns an
    // error.
    struct ReleaseOnUnwind {
      RingQueue* ring;
      RingSlot& slot;
      uint64_t pos;
      uint64_t claimed;
      bool armed = true;
      ~ReleaseOnUnwind() {
        if (!armed) return;
        // Only InternalError (the slot taken from a live consumer) can come
        // back, and an exception is already on its way: that one is what
        // the caller sees.
        (void)ring->ReleaseClaim(slot, pos, claimed);
        ring->CountReceived();
      }
    } guard{this, slot, pos, claimed};
    const size_t keep = std::min<size_t>(length, max_bytes);
    out.type = Load(slot.type, std::memory_order_relaxed);
    out.data.assign(reinterpret_cast<const char*>(PayloadOf(slot)), keep);
    out.truncated = keep < length;
    if (process != nullptr) *processed = (*process)(out);
    guard.armed = false;
  }
  RunHook(RingHookPoint::kBeforeRelease);
  SHMKIT_RETURN_IF_ERROR(ReleaseClaim(slot, pos, claimed));
  if (!corrupt.ok()) {
    Ref(control_->abandoned_messages).fetch_add(1, std::memory_order_relaxed);
  }
  return corrupt;
}

bool RingQueue::DeadClaim(uint32_t index, uint64_t state) const {
  // A claim of position p sits in slot p mod S with sequence p + 1 (a
  // reservation of position p has sequence p).
  return Owned(state) && ((RingSeqOf(state) - 1) & mask_) == index &&
         OwnerDead(state);
}

absl::StatusOr<RingQueue::Outcome> RingQueue::TryTakeOverDeadClaim(
    Message& out, size_t max_bytes, Truncation truncation, OwnerToken me,
    const Process* process, absl::Status* processed) {
  // At most one scan per dead_owner_check per handle (any thread): a scan
  // reads every slot's state word.
  const int64_t now = internal::MonotonicNanos();
  int64_t last = last_scan_ns_.load(std::memory_order_relaxed);
  if (now - last < check_ns_ ||
      !last_scan_ns_.compare_exchange_strong(last, now,
                                             std::memory_order_relaxed)) {
    return Outcome::kWouldBlock;
  }
  for (uint32_t i = 0; i < slots_; ++i) {
    RingSlot& slot = SlotAt(i);
    uint64_t state = Load(slot.state, std::memory_order_acquire);
    if (!DeadClaim(i, state)) continue;
    const uint32_t seq = RingSeqOf(state);
    if (max_bytes < slot_bytes_ && truncation == Truncation::kError) {
      const uint32_t length = Load(slot.length, std::memory_order_relaxed);
      if (length > max_bytes) {
        if (Load(slot.state, std::memory_order_acquire) != state) continue;
        return TooLongError(length, max_bytes);
      }
    }
    const uint64_t mine = RingState(seq, me.slot + 1, me.generation);
    if (!Ref(slot.state)
             .compare_exchange_strong(state, mine, std::memory_order_acquire,
                                      std::memory_order_relaxed)) {
      continue;  // another process took it over, or a producer requeued it
    }
    // The claim is ours: the dead owner's slot may be reused once nothing
    // else of it is left in the ring.
    registry_->DropDeadPin(RingOwnerOf(state) - 1);
    AddOwnPin(me.slot);
    if (max_deliveries_ != 0) {
      SHMKIT_ASSIGN_OR_RETURN(const bool dropped,
                              DropIfPoisoned(slot, seq - 1u, mine));
      if (dropped) continue;
    }
    Ref(control_->redelivered_messages).fetch_add(1, std::memory_order_relaxed);
    // There may be more: let the next call scan at once.
    last_scan_ns_.store(0, std::memory_order_relaxed);
    SHMKIT_RETURN_IF_ERROR(DeliverClaimed(slot, seq - 1u, mine, out, max_bytes,
                                          process, processed));
    return Outcome::kDone;
  }
  return Outcome::kWouldBlock;
}

bool RingQueue::OwnerDead(uint64_t state) const {
  const uint32_t owner = RingOwnerOf(state);
  if (owner == 0 || owner == kRingTombstone) return false;
  const uint32_t slot = owner - 1;
  if (slot >= registry_->slot_count()) return true;  // nobody can hold it
  const OwnerToken current = registry_->CurrentToken(slot);
  if ((current.generation & 0xff) != RingGenOf(state)) return true;
  return registry_->IsDead(current);
}

bool RingQueue::ReclaimIfDead(const Blocker& blocker, bool producer) {
  if (!Owned(blocker.state)) return false;
  RingSlot& slot = SlotAt(blocker.pos);
  if (Load(slot.state, std::memory_order_acquire) != blocker.state) {
    return true;  // it moved on: try again at once
  }
  const uint32_t seq = RingSeqOf(blocker.state);
  uint64_t expected = blocker.state;
  if (producer) {
    // A consumer claimed the previous lap's message and died. The message
    // is still in the slot: queue it again in place, as position
    // blocker.pos (tail is there: nothing past it is reserved).
    if (seq != static_cast<uint32_t>(blocker.pos - slots_ + 1)) return false;
    if (!OwnerDead(blocker.state)) return false;
    if (Ref(slot.state)
            .compare_exchange_strong(
                expected,
                RingState(static_cast<uint32_t>(blocker.pos + 1), 0, 0),
                std::memory_order_acq_rel, std::memory_order_relaxed)) {
      registry_->DropDeadPin(RingOwnerOf(blocker.state) - 1);
      Ref(control_->redelivered_messages)
          .fetch_add(1, std::memory_order_relaxed);
      HelpAdvance(control_->head, blocker.pos - slots_);
      HelpAdvance(control_->tail, blocker.pos);
      internal::NotifyIfWaiting(control_->not_empty_seq,
                                control_->not_empty_waiters);
    }
    return true;
  }
  // A producer reserved this position and stopped.
  if (seq != static_cast<uint32_t>(blocker.pos)) return false;
  if (!OwnerDead(blocker.state)) return false;
  if (Ref(slot.state)
          .compare_exchange_strong(
              expected,
              RingState(static_cast<uint32_t>(blocker.pos + 1), kRingTombstone,
                        0),
              std::memory_order_acq_rel, std::memory_order_relaxed)) {
    registry_->DropDeadPin(RingOwnerOf(blocker.state) - 1);
    Ref(control_->reclaimed_slots).fetch_add(1, std::memory_order_relaxed);
    HelpAdvance(control_->tail, blocker.pos);
  }
  return true;
}

template <typename Attempt>
absl::Status RingQueue::WaitFor(Attempt attempt, bool producer,
                                const WaitMode& wait) {
  uint32_t& seq = producer ? control_->not_full_seq : control_->not_empty_seq;
  uint32_t& flag =
      producer ? control_->not_full_waiters : control_->not_empty_waiters;
  const int64_t deadline = wait.deadline_ns();
  auto expired_error = [&] {
    return absl::DeadlineExceededError(
        producer ? absl::StrCat(Describe(), " stayed full for ",
                                absl::FormatDuration(wait.timeout()))
                 : absl::StrCat("no message in ", Describe(), " within ",
                                absl::FormatDuration(wait.timeout())));
  };
  Blocker blocker;
  absl::Status failed = absl::OkStatus();
  const bool done = internal::SpinWait(spin_ns_, deadline, [&] {
    absl::StatusOr<Outcome> outcome = attempt(&blocker);
    if (!outcome.ok()) {
      failed = outcome.status();
      return true;
    }
    if (*outcome == Outcome::kDone) return true;
    if (removed()) {
      failed = RemovedError();
      return true;
    }
    return false;
  });
  if (!failed.ok()) return failed;
  if (done) return absl::OkStatus();
  uint64_t watched_state = 0;
  uint64_t watched_pos = 0;
  int64_t watched_since = 0;
  while (true) {
    if (removed()) return RemovedError();
    const uint32_t seen = Load(seq, std::memory_order_seq_cst);
    Store(flag, 1u, std::memory_order_seq_cst);
    SHMKIT_ASSIGN_OR_RETURN(const Outcome outcome, attempt(&blocker));
    if (outcome == Outcome::kDone) return absl::OkStatus();
    const int64_t now = internal::MonotonicNanos();
    int64_t until = std::min(now + kMaxSleepNs, deadline);
    if (Owned(blocker.state)) {
      if (blocker.state != watched_state || blocker.pos != watched_pos) {
        watched_state = blocker.state;
        watched_pos = blocker.pos;
        watched_since = now;
      } else if (now - watched_since >= check_ns_) {
        if (ReclaimIfDead(blocker, producer)) {
          watched_state = 0;
          continue;
        }
        watched_since = now;  // alive: look again after another interval
      }
      until = std::min(until, watched_since + check_ns_);
    }
    if (now >= deadline) return expired_error();
    internal::FutexWaitUntil(&seq, seen, until);
  }
}

absl::Status RingQueue::SendImpl(absl::string_view bytes, int64_t type,
                                 const WaitMode& wait) {
  if (removed()) return RemovedError();
  SHMKIT_ASSIGN_OR_RETURN(const OwnerToken me, registry_->Self());
  Blocker blocker;
  SHMKIT_ASSIGN_OR_RETURN(Outcome outcome, TryPush(bytes, type, me, &blocker));
  if (outcome != Outcome::kDone) {
    if (wait.kind() == WaitMode::Kind::kNone) {
      // A try-call cannot wait for a dead consumer to be noticed later.
      if (!ReclaimIfDead(blocker, /*producer=*/true)) {
        return absl::UnavailableError(absl::StrCat(Describe(), " is full"));
      }
      SHMKIT_ASSIGN_OR_RETURN(outcome, TryPush(bytes, type, me, &blocker));
      if (outcome != Outcome::kDone) {
        return absl::UnavailableError(absl::StrCat(Describe(), " is full"));
      }
    } else {
      SHMKIT_RETURN_IF_ERROR(
          WaitFor([&](Blocker* b) { return TryPush(bytes, type, me, b); },
                  /*producer=*/true, wait));
    }
  }
  internal::NotifyIfWaiting(control_->not_empty_seq,
                            control_->not_empty_waiters);
  return absl::OkStatus();
}

absl::Status RingQueue::ReceiveImpl(Message& out, size_t max_bytes,
                                    TypeFilter filter, Truncation truncation,
                                    const WaitMode& wait) {
  (void)filter;
  return ReceiveWith(out, max_bytes, truncation, wait, nullptr, nullptr);
}

absl::Status RingQueue::ReceiveAndProcess(Message& out, size_t max_bytes,
                                          WaitMode wait, Process process,
                                          Truncation truncation) {
  SHMKIT_RETURN_IF_ERROR(CheckReceivable());
  out.truncated = false;
  absl::Status processed = absl::OkStatus();
  SHMKIT_RETURN_IF_ERROR(
      ReceiveWith(out, max_bytes, truncation, wait, &process, &processed));
  CountReceived();
  return processed;
}

absl::Status RingQueue::ReceiveWith(Message& out, size_t max_bytes,
                                    Truncation truncation,
                                    const WaitMode& wait,
                                    const Process* process,
                                    absl::Status* processed) {
  if (removed()) return RemovedError();
  SHMKIT_ASSIGN_OR_RETURN(const OwnerToken me, registry_->Self());
  // One attempt: the message at head, else a dead consumer's claim.
  auto attempt = [&](Blocker* b) -> absl::StatusOr<Outcome> {
    SHMKIT_ASSIGN_OR_RETURN(
        const Outcome outcome,
        TryPop(out, max_bytes, truncation, me, process, processed, b));
    if (outcome == Outcome::kDone) return outcome;
    return TryTakeOverDeadClaim(out, max_bytes, truncation, me, process,
                                processed);
  };
  Blocker blocker;
  SHMKIT_ASSIGN_OR_RETURN(Outcome outcome, attempt(&blocker));
  if (outcome == Outcome::kDone) return absl::OkStatus();
  if (wait.kind() == WaitMode::Kind::kNone) {
    if (ReclaimIfDead(blocker, /*producer=*/false)) {
      SHMKIT_ASSIGN_OR_RETURN(outcome, attempt(&blocker));
      if (outcome == Outcome::kDone) return absl::OkStatus();
    }
    return absl::UnavailableError(absl::StrCat(Describe(), " is empty"));
  }
  return WaitFor(attempt, /*producer=*/false, wait);
}

absl::Status RingQueue::CloseImpl() {
  if (key_.is_private() && created_by_ == getpid()) {
    Store(control_->removed, 1u);
    internal::WakeAll(control_->not_empty_seq);
    internal::WakeAll(control_->not_full_seq);
  }
  control_ = nullptr;
  registry_.reset();  // frees this process's registry slots
  segment_.reset();   // detaches
  return absl::OkStatus();
}

absl::Status RingQueue::RemoveImpl() {
  Store(control_->removed, 1u);
  internal::WakeAll(control_->not_empty_seq);
  internal::WakeAll(control_->not_full_seq);
  absl::Status st = segment_->Remove();
  // A private ring was marked for removal at creation already.
  if (!st.ok() && key_.is_private()) return absl::OkStatus();
  return st;
}

absl::StatusOr<QueueStats> RingQueue::StatsImpl() const {
  QueueStats stats;
  const uint64_t head = Load(control_->head, std::memory_order_relaxed);
  const uint64_t tail = Load(control_->tail, std::memory_order_relaxed);
  // Published (or being published) positions, plus the messages of dead
  // consumers' claims behind head, which wait to be redelivered.
  uint64_t awaiting_redelivery = 0;
  for (uint32_t i = 0; i < slots_; ++i) {
    const uint64_t state = Load(SlotAt(i).state, std::memory_order_acquire);
    if (static_cast<int32_t>(RingSeqOf(state) - 1 -
                             static_cast<uint32_t>(head)) < 0 &&
        DeadClaim(i, state)) {
      ++awaiting_redelivery;
    }
  }
  stats.messages =
      (tail >= head ? std::min<uint64_t>(tail - head, slots_) : 0) +
      awaiting_redelivery;
  stats.capacity_messages = slots_;
  stats.reclaimed_slots =
      Load(control_->reclaimed_slots, std::memory_order_relaxed);
  stats.abandoned_messages =
      Load(control_->abandoned_messages, std::memory_order_relaxed);
  stats.redelivered_messages =
      Load(control_->redelivered_messages, std::memory_order_relaxed);
  stats.poisoned_messages =
      Load(control_->poisoned_messages, std::memory_order_relaxed);
  return stats;
}

}  // namespace shmkit
