// The fault campaign's ledger: plain shared memory where each worker records
// what the library acknowledged to it, so the supervisor can hold the final
// state of the table, the counters and the ring against it.
//
// Layout of the ledger segment:
//
//   LedgerHeader                       stop flag, geometry
//   WorkerLedger[workers]              one per worker slot (not per process:
//                                      a respawned worker continues its slot)
//   uint8_t status[producers][max_seq] per message: 0 unsent, 1 in flight
//                                      (Send called, not yet returned), 2
//                                      acknowledged
//   uint8_t received[producers][max_seq] how many times consumers got it
//
// Everything is read and written through std::atomic_ref on naturally aligned
// integers: a SIGKILL between two stores leaves each word whole. The order of
// a worker's stores around each call is what makes the bounds exact:
//   pending = what; call(); if ok: acked += 1; pending = 0;
// A worker killed with `pending` set may or may not have had its call take
// effect: the supervisor, after reaping it, counts one "unacknowledged
// possible" and clears the word before respawning the slot.
#ifndef SHMKIT_TOOLS_SHMKIT_FAULTS_LEDGER_H_
#define SHMKIT_TOOLS_SHMKIT_FAULTS_LEDGER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace shmkit::faults {

inline constexpr uint32_t kMaxHotKeys = 64;
inline constexpr uint32_t kMaxWorkers = 64;
inline constexpr size_t kErrorTextBytes = 192;

// Consumer phases (WorkerLedger::phase).
inline constexpr uint32_t kPhaseIdle = 0;
inline constexpr uint32_t kPhaseInReceive = 1;

// Message status (status array).
inline constexpr uint8_t kMsgUnsent = 0;
inline constexpr uint8_t kMsgInFlight = 1;
inline constexpr uint8_t kMsgAcked = 2;

// Operation kinds counted per worker.
enum Op : int {
  kOpIncr,
  kOpSet,
  kOpUpdate,
  kOpGet,
  kOpAdd,
  kOpDel,
  kOpGetAndDelete,
  kOpAtomicAdd,
  kOpSemAdd,
  kOpSend,
  kOpReceive,
  kOpCount,
  kOpKinds
};

struct alignas(64) LedgerHeader {
  uint32_t stop;  // set by the supervisor: workers exit(0) at their next op
  uint32_t workers;
  uint32_t producers;
  uint32_t hot_keys;
  uint64_t max_seq;  // messages each producer slot may send
};

struct alignas(64) WorkerLedger {
  // Increments of hot key k acknowledged to this slot (Incr returned OK).
  uint64_t hot_acked[kMaxHotKeys];
  uint64_t atomic_acked;  // AtomicCounter::Add(1) returned OK
  uint64_t sem_acked;     // SemCounter::Add(1) returned OK
  uint32_t pending_hot;   // 0, or hot key + 1 while its Incr is in flight
  uint32_t pending_atomic;
  uint32_t pending_sem;
  uint32_t phase;  // consumers: kPhaseInReceive while inside Receive
  // Consumers: 1 + (producer << 40 | seq) of the message whose
  // ReceiveAndProcess callback this slot is in (or whose release it has not
  // seen return); 0 otherwise. A message a slot died with here may have been
  // recorded and then redelivered: received twice, legitimately.
  uint64_t in_callback;
  uint64_t next_seq;         // producers: the sequence number to send next
  uint64_t ops[kOpKinds];    // calls made, by kind (any outcome)
  uint64_t expected_misses;  // NotFound, AlreadyExists, table full, ...
  uint64_t table_full;       // ResourceExhausted answers to inserts
  uint64_t torn_rows;        // rows read whose columns disagree
  uint64_t over_capacity;    // Count() answers above the capacity
  uint64_t max_count;        // largest Count() seen
  uint64_t bad_messages;     // received messages with a bad body
  uint64_t errors;           // unexpected statuses
  char first_error[kErrorTextBytes];
};

static_assert(std::is_trivially_copyable_v<LedgerHeader> &&
                  std::is_trivially_copyable_v<WorkerLedger>,
              "lives in shared memory, zero-initialized by the kernel");
static_assert(std::atomic_ref<uint64_t>::is_always_lock_free &&
                  std::atomic_ref<uint32_t>::is_always_lock_free &&
                  std::atomic_ref<uint8_t>::is_always_lock_free,
              "a SIGKILL must never leave a ledger word half written");

template <typename T>
inline T LoadWord(const T& word) {
  return std::atomic_ref<T>(const_cast<T&>(word))
      .load(std::memory_order_acquire);
}
template <typename T>
inline void StoreWord(T& word, T value) {
  std::atomic_ref<T>(word).store(value, std::memory_order_release);
}
template <typename T>
inline void AddWord(T& word, T delta) {
  std::atomic_ref<T>(word).fetch_add(delta, std::memory_order_acq_rel);
}

// Views of one ledger segment (same addresses in every forked process).
struct Ledger {
  LedgerHeader* header = nullptr;
  WorkerLedger* workers = nullptr;
  uint8_t* status = nullptr;    // [producers][max_seq]
  uint8_t* received = nullptr;  // [producers][max_seq]

  static size_t BytesFor(uint32_t workers, uint32_t producers,
                         uint64_t max_seq) {
    return sizeof(LedgerHeader) + sizeof(WorkerLedger) * workers +
           2 * static_cast<size_t>(producers) * max_seq;
  }
  // Lays the views over `base` (zeroed, BytesFor bytes).
  static Ledger Over(std::byte* base, uint32_t workers, uint32_t producers,
                     uint64_t max_seq) {
    Ledger l;
    l.header = reinterpret_cast<LedgerHeader*>(base);
    l.workers = reinterpret_cast<WorkerLedger*>(base + sizeof(LedgerHeader));
    l.status = reinterpret_cast<uint8_t*>(l.workers + workers);
    l.received = l.status + static_cast<size_t>(producers) * max_seq;
    return l;
  }
  uint8_t& StatusOf(uint32_t producer, uint64_t seq) const {
    return status[producer * header->max_seq + seq];
  }
  uint8_t& ReceivedOf(uint32_t producer, uint64_t seq) const {
    return received[producer * header->max_seq + seq];
  }
};

}  // namespace shmkit::faults

#endif  // SHMKIT_TOOLS_SHMKIT_FAULTS_LEDGER_H_
