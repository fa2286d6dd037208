#include "shmkit/ipc/process_registry.h"

#include <pthread.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <mutex>
#include <type_traits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/registry_layout.h"
#include "shmkit/ipc/internal/shared.h"
#include "shmkit/ipc/object.h"

namespace shmkit {

namespace {

using internal::CachedToken;
using internal::GenerationOf;
using internal::Load;
using internal::MakeState;
using internal::PidOf;
using internal::Ref;
using internal::RegistryHeader;
using internal::RegistrySlot;
using internal::StatusOf;
using internal::Store;

// Process-wide bookkeeping of live handles and the tokens each claimed, so a
// handle's destructor and a thread's exit free exactly their own slots.
// Only slow paths (claim, release) take the mutex.
struct ClaimRecord {
  OwnerToken token;
  uint64_t epoch;
};
struct HandleRecord {
  RegistryHeader* header;
  std::vector<ClaimRecord> claims;
  std::function<void()> on_marked_dead;  // see OnMarkedDead
};
struct Globals {
  std::mutex mu;
  absl::flat_hash_map<uint64_t, HandleRecord> handles;
  uint64_t next_handle = 1;
};
Globals& G() {
  static Globals* globals = [] {
    auto* g = new Globals;  // never destroyed: threads may exit after main
    pthread_atfork([] { G().mu.lock(); }, [] { G().mu.unlock(); },
                   [] { G().mu.unlock(); });
    return g;
  }();
  return *globals;
}

RegistrySlot* SlotsOf(RegistryHeader* h) {
  return reinterpret_cast<RegistrySlot*>(reinterpret_cast<std::byte*>(h) +
                                         sizeof(RegistryHeader));
}

// Frees `token`'s slot if it still holds that occupancy. A pinned slot (its
// owner left recovery data) is marked dead instead, so it gets recovered.
void FreeSlot(RegistryHeader* h, OwnerToken token) {
  if (token.slot >= h->slot_count) return;
  RegistrySlot& s = SlotsOf(h)[token.slot];
  uint64_t state = Load(s.state);
  while (GenerationOf(state) == token.generation &&
         StatusOf(state) == SlotStatus::kLive) {
    const SlotStatus next =
        Load(s.pinned) != 0 ? SlotStatus::kDead : SlotStatus::kFree;
    if (Ref(s.state).compare_exchange_weak(state,
                                           MakeState(token.generation, 0, next),
                                           std::memory_order_acq_rel)) {
      return;
    }
  }
}

// Frees one cached token's slot (if it belongs to this process and its
// handle is still open) and forgets it. Caller holds G().mu.
void ReleaseCached(Globals& g, CachedToken& c, uint64_t epoch) {
  if (c.handle != 0 && c.epoch == epoch) {
    auto it = g.handles.find(c.handle);
    if (it != g.handles.end()) {
      FreeSlot(it->second.header, c.token);
      std::erase_if(it->second.claims, [&](const ClaimRecord& cl) {
        return cl.token == c.token && cl.epoch == epoch;
      });
    }
  }
  c = CachedToken{};
}

// Per-thread state with a destructor: frees the thread's slots at exit, and
// holds the tokens of a thread that uses more registries than fit in
// tls_token_cache.
struct ThreadState {
  bool armed = false;
  std::vector<CachedToken> overflow;
  ~ThreadState() {
    if (!armed) return;
    const uint64_t epoch = internal::ForkEpoch();
    Globals& g = G();
    std::lock_guard<std::mutex> lock(g.mu);
    for (CachedToken& c : internal::tls_token_cache) ReleaseCached(g, c, epoch);
    for (CachedToken& c : overflow) ReleaseCached(g, c, epoch);
  }
};
thread_local ThreadState tls_state;

}  // namespace

absl::StatusOr<size_t> ProcessRegistry::BytesFor(uint32_t slots,
                                                 uint32_t extra_bytes) {
  if (slots == 0 || slots > kMaxSlots) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry slots ", slots, " outside 1..", kMaxSlots));
  }
  const size_t stride = internal::RoundUp(extra_bytes, kCacheLineBytes);
  return sizeof(RegistryHeader) + size_t{slots} * sizeof(RegistrySlot) +
         size_t{slots} * stride;
}

absl::StatusOr<ProcessRegistry> ProcessRegistry::Format(
    absl::Span<std::byte> memory, uint32_t slots, uint32_t extra_bytes) {
  absl::StatusOr<size_t> bytes = BytesFor(slots, extra_bytes);
  if (!bytes.ok()) return bytes.status();
  if (memory.size() < *bytes ||
      reinterpret_cast<uintptr_t>(memory.data()) % kCacheLineBytes != 0) {
    return absl::InternalError(absl::StrCat(
        "registry region of ", memory.size(), " bytes at a ",
        reinterpret_cast<uintptr_t>(memory.data()) % kCacheLineBytes,
        "-byte offset from a cache line; need ", *bytes, " bytes, aligned"));
  }
  std::memset(memory.data(), 0, *bytes);
  auto* h = reinterpret_cast<RegistryHeader*>(memory.data());
  h->slot_count = slots;
  h->extra_bytes = extra_bytes;
  h->extra_stride =
      static_cast<uint32_t>(internal::RoundUp(extra_bytes, kCacheLineBytes));
  Store(h->magic, internal::kRegistryMagic);
  return ProcessRegistry(h, slots, h->extra_stride);
}

absl::StatusOr<ProcessRegistry> ProcessRegistry::Open(
    absl::Span<std::byte> memory) {
  if (memory.size() < sizeof(RegistryHeader) ||
      reinterpret_cast<uintptr_t>(memory.data()) % kCacheLineBytes != 0) {
    return absl::FailedPreconditionError(
        "process registry region is too small or misaligned");
  }
  auto* h = reinterpret_cast<RegistryHeader*>(memory.data());
  // Copy the geometry once; never trust it again afterwards.
  const uint32_t magic = Load(h->magic);
  const uint32_t slots = h->slot_count;
  const uint32_t extra = h->extra_bytes;
  const uint32_t stride = h->extra_stride;
  if (magic != internal::kRegistryMagic) {
    return absl::FailedPreconditionError(
        absl::StrCat("process registry has magic ", magic, ", expected ",
                     internal::kRegistryMagic));
  }
  absl::StatusOr<size_t> bytes = BytesFor(slots, extra);
  if (!bytes.ok() || *bytes > memory.size() ||
      stride != internal::RoundUp(extra, kCacheLineBytes)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "process registry geometry is inconsistent: ", slots, " slots, ", extra,
        " extra bytes (stride ", stride, ") in ", memory.size(), " bytes"));
  }
  return ProcessRegistry(h, slots, stride);
}

ProcessRegistry::ProcessRegistry(RegistryHeader* header, uint32_t slot_count,
                                 size_t extra_stride, bool untracked)
    : header_(header), slot_count_(slot_count), extra_stride_(extra_stride) {
  if (untracked) return;  // a temporary view: no claims, no bookkeeping
  Globals& g = G();
  std::lock_guard<std::mutex> lock(g.mu);
  handle_id_ = g.next_handle++;
  g.handles[handle_id_] = HandleRecord{header, {}, {}};
}

ProcessRegistry::ProcessRegistry(ProcessRegistry&& other) noexcept
    : header_(std::exchange(other.header_, nullptr)),
      slot_count_(std::exchange(other.slot_count_, 0)),
      extra_stride_(std::exchange(other.extra_stride_, 0)),
      handle_id_(std::exchange(other.handle_id_, 0)) {}

ProcessRegistry& ProcessRegistry::operator=(ProcessRegistry&& other) noexcept {
  if (this != &other) {
    Reset();
    header_ = std::exchange(other.header_, nullptr);
    slot_count_ = std::exchange(other.slot_count_, 0);
    extra_stride_ = std::exchange(other.extra_stride_, 0);
    handle_id_ = std::exchange(other.handle_id_, 0);
  }
  return *this;
}

ProcessRegistry::~ProcessRegistry() { Reset(); }

void ProcessRegistry::Reset() {
  if (handle_id_ == 0) return;
  const uint64_t epoch = internal::ForkEpoch();
  Globals& g = G();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = g.handles.find(handle_id_);
  if (it != g.handles.end()) {
    // Only this process's claims: a fork child holds a copy of the parent's
    // list, with an older epoch.
    for (const ClaimRecord& c : it->second.claims) {
      if (c.epoch == epoch) FreeSlot(header_, c.token);
    }
    g.handles.erase(it);
  }
  // The calling thread's cache entry would otherwise match a future handle
  // only by id, which is never reused; clearing it keeps the cache small.
  for (CachedToken& c : internal::tls_token_cache) {
    if (c.handle == handle_id_) c = CachedToken{};
  }
  handle_id_ = 0;
}

RegistrySlot& ProcessRegistry::slot_ref(uint32_t slot) const {
  return SlotsOf(header_)[slot];
}

absl::StatusOr<OwnerToken> ProcessRegistry::ClaimForThisThread() {
  if (handle_id_ == 0) {
    return absl::FailedPreconditionError("process registry handle is empty");
  }
  const uint64_t epoch = internal::ForkEpoch();
  std::vector<CachedToken>& overflow = tls_state.overflow;
  std::erase_if(overflow,
                [&](const CachedToken& c) { return c.epoch != epoch; });
  for (const CachedToken& c : overflow) {
    if (c.handle == handle_id_) return c.token;
  }
  absl::StatusOr<OwnerToken> token = Claim();
  if (!token.ok()) return token;
  tls_state.armed = true;
  Globals& g = G();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = g.handles.find(handle_id_);
  if (it != g.handles.end()) it->second.claims.push_back({*token, epoch});
  // An empty entry, or a stale one (inherited across fork, or of a handle
  // that has been destroyed), else the overflow list.
  for (CachedToken& c : internal::tls_token_cache) {
    if (c.handle == 0 || c.epoch != epoch || !g.handles.contains(c.handle)) {
      c = CachedToken{handle_id_, epoch, *token};
      return token;
    }
  }
  overflow.push_back(CachedToken{handle_id_, epoch, *token});
  return token;
}

absl::StatusOr<OwnerToken> ProcessRegistry::Claim() {
  const pid_t pid = internal::SelfPid();
  const uint64_t start = internal::SelfStartTime();
  const uint64_t identity = internal::SelfIdentity();
  RegistrySlot* slots = SlotsOf(header_);
  const uint32_t n = slot_count_;
  // Start at a pid-derived slot so processes claiming at once spread out.
  const uint32_t first = static_cast<uint32_t>(pid) % n;

  auto finish = [&](uint32_t i, uint32_t generation) {
    RegistrySlot& s = slots[i];
    Store(s.start_time, start);
    Store(s.identity, identity);
    Store(s.tid, static_cast<uint32_t>(gettid()));
    Store(s.state, MakeState(generation, pid, SlotStatus::kLive));
    Ref(header_->claims).fetch_add(1, std::memory_order_relaxed);
    return OwnerToken{i, generation};
  };

  // Pass 1: a free slot.
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = (first + k) % n;
    uint64_t state = Load(slots[i].state);
    if (StatusOf(state) != SlotStatus::kFree) continue;
    const uint32_t generation = GenerationOf(state) + 1;
    if (Ref(slots[i].state)
            .compare_exchange_strong(
                state, MakeState(generation, pid, SlotStatus::kClaiming),
                std::memory_order_acq_rel)) {
      return finish(i, generation);
    }
  }
  // Pass 2: reuse the slot of a dead process that left no recovery data.
  for (uint32_t k = 0; k < n; ++k) {
    const uint32_t i = (first + k) % n;
    RegistrySlot& s = slots[i];
    uint64_t state = Load(s.state);
    if (Load(s.pinned) != 0) continue;
    const SlotStatus status = StatusOf(state);
    bool dead = status == SlotStatus::kDead || status == SlotStatus::kFree;
    if (!dead) {
      const bool live = status == SlotStatus::kLive;
      dead = !internal::ProcessAlive(PidOf(state),
                                     live ? Load(s.start_time) : 0,
                                     live ? Load(s.identity) : 0);
    }
    if (!dead) continue;
    const uint32_t generation = GenerationOf(state) + 1;
    if (Ref(s.state).compare_exchange_strong(
            state, MakeState(generation, pid, SlotStatus::kClaiming),
            std::memory_order_acq_rel)) {
      if (status != SlotStatus::kFree) {
        Ref(header_->reclaims).fetch_add(1, std::memory_order_relaxed);
      }
      return finish(i, generation);
    }
  }
  const RegistryStats st = Stats();
  return absl::ResourceExhaustedError(absl::StrCat(
      "process registry is full: all ", n, " slots belong to live threads (",
      st.in_use, ") or hold recovery data of dead ones (", st.pinned,
      " pinned); create the object with more registry slots or run recovery"));
}

bool ProcessRegistry::IsDead(OwnerToken token) const {
  if (token.slot >= slot_count_) return true;  // no live owner has this slot
  const RegistrySlot& s = slot_ref(token.slot);
  const uint64_t state = Load(s.state);
  if (GenerationOf(state) != token.generation) return true;
  const SlotStatus status = StatusOf(state);
  if (status == SlotStatus::kFree || status == SlotStatus::kDead) return true;
  const bool live = status == SlotStatus::kLive;
  return !internal::ProcessAlive(PidOf(state), live ? Load(s.start_time) : 0,
                                 live ? Load(s.identity) : 0);
}

int ProcessRegistry::MarkDead(pid_t pid, uint64_t start_time) {
  int marked = 0;
  for (uint32_t i = 0; i < slot_count_; ++i) {
    RegistrySlot& s = slot_ref(i);
    uint64_t state = Load(s.state);
    while (true) {
      const SlotStatus status = StatusOf(state);
      if (PidOf(state) != pid ||
          (status != SlotStatus::kLive && status != SlotStatus::kClaiming)) {
        break;
      }
      if (start_time != 0 && status == SlotStatus::kLive &&
          Load(s.start_time) != start_time) {
        break;  // the pid belongs to another (later) process
      }
      if (Ref(s.state).compare_exchange_weak(
              state, MakeState(GenerationOf(state) + 1, pid, SlotStatus::kDead),
              std::memory_order_acq_rel)) {
        ++marked;
        break;
      }
    }
  }
  Ref(header_->marked_dead).fetch_add(marked, std::memory_order_relaxed);
  return marked;
}

int ProcessRegistry::MarkDeadInAllOpen(pid_t pid, uint64_t start_time) {
  std::vector<std::pair<RegistryHeader*, std::function<void()>>> open;
  {
    Globals& g = G();
    std::lock_guard<std::mutex> lock(g.mu);
    for (const auto& [id, record] : g.handles) {
      open.emplace_back(record.header, record.on_marked_dead);
    }
  }
  // Two handles may map the same registry (at different addresses); marking
  // twice is harmless: the second finds the slots already dead.
  int marked = 0;
  for (auto& [h, on_marked_dead] : open) {
    ProcessRegistry view(h, h->slot_count, h->extra_stride, /*untracked=*/true);
    const int here = view.MarkDead(pid, start_time);
    marked += here;
    // Outside the mutex: the owner's recovery may claim this thread's slot.
    if (here > 0 && on_marked_dead) on_marked_dead();
  }
  return marked;
}

void ProcessRegistry::OnMarkedDead(std::function<void()> fn) {
  if (handle_id_ == 0) return;
  Globals& g = G();
  std::lock_guard<std::mutex> lock(g.mu);
  auto it = g.handles.find(handle_id_);
  if (it != g.handles.end()) it->second.on_marked_dead = std::move(fn);
}

absl::Span<std::byte> ProcessRegistry::Extra(uint32_t slot) const {
  if (slot >= slot_count_) return {};
  std::byte* base = reinterpret_cast<std::byte*>(header_) +
                    sizeof(RegistryHeader) +
                    size_t{slot_count_} * sizeof(RegistrySlot);
  return {base + size_t{slot} * extra_stride_, extra_stride_};
}

void ProcessRegistry::Pin(uint32_t slot) {
  if (slot < slot_count_) Store(slot_ref(slot).pinned, 1u);
}
void ProcessRegistry::Unpin(uint32_t slot) {
  if (slot < slot_count_) Store(slot_ref(slot).pinned, 0u);
}
void ProcessRegistry::DropDeadPin(uint32_t slot) {
  if (slot >= slot_count_ || !IsDead(CurrentToken(slot))) return;
  uint32_t& pinned = slot_ref(slot).pinned;
  uint32_t n = Load(pinned);
  while (n != 0 &&
         !Ref(pinned).compare_exchange_weak(n, n - 1,
                                            std::memory_order_acq_rel)) {
  }
}
uint32_t* ProcessRegistry::pin_word(uint32_t slot) const {
  return &slot_ref(slot).pinned;
}

std::byte* ProcessRegistry::extra_base() const {
  return reinterpret_cast<std::byte*>(header_) + sizeof(RegistryHeader) +
         size_t{slot_count_} * sizeof(RegistrySlot);
}

bool ProcessRegistry::Pinned(uint32_t slot) const {
  return slot < slot_count_ && Load(slot_ref(slot).pinned) != 0;
}

SlotInfo ProcessRegistry::Slot(uint32_t slot) const {
  SlotInfo info;
  info.slot = slot;
  if (slot >= slot_count_) return info;
  const RegistrySlot& s = slot_ref(slot);
  const uint64_t state = Load(s.state);
  info.status = StatusOf(state);
  info.generation = GenerationOf(state);
  info.pid = PidOf(state);
  info.tid = static_cast<pid_t>(Load(s.tid));
  info.start_time = Load(s.start_time);
  info.pinned = Load(s.pinned) != 0;
  return info;
}

OwnerToken ProcessRegistry::CurrentToken(uint32_t slot) const {
  if (slot >= slot_count_) return OwnerToken{slot, 0};
  return OwnerToken{slot, GenerationOf(Load(slot_ref(slot).state))};
}

std::vector<SlotInfo> ProcessRegistry::Slots() const {
  std::vector<SlotInfo> out;
  out.reserve(slot_count_);
  for (uint32_t i = 0; i < slot_count_; ++i) out.push_back(Slot(i));
  return out;
}

RegistryStats ProcessRegistry::Stats() const {
  RegistryStats st;
  st.slots = slot_count_;
  for (uint32_t i = 0; i < slot_count_; ++i) {
    const SlotInfo s = Slot(i);
    if (s.status == SlotStatus::kLive || s.status == SlotStatus::kClaiming) {
      ++st.in_use;
    }
    if (s.status == SlotStatus::kDead) ++st.dead;
    if (s.pinned) ++st.pinned;
  }
  st.claims = Load(header_->claims, std::memory_order_relaxed);
  st.reclaims = Load(header_->reclaims, std::memory_order_relaxed);
  st.marked_dead = Load(header_->marked_dead, std::memory_order_relaxed);
  return st;
}

void ProcessRegistry::ReleaseSelf() {
  const uint64_t epoch = internal::ForkEpoch();
  Globals& g = G();
  std::lock_guard<std::mutex> lock(g.mu);
  for (CachedToken& c : internal::tls_token_cache) {
    if (c.handle == handle_id_) ReleaseCached(g, c, epoch);
  }
  for (CachedToken& c : tls_state.overflow) {
    if (c.handle == handle_id_) ReleaseCached(g, c, epoch);
  }
  std::erase_if(tls_state.overflow,
                [](const CachedToken& c) { return c.handle == 0; });
}

}  // namespace shmkit
