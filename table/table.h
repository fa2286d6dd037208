// Table: a fixed-capacity hash table with typed columns in one System V
// shared-memory segment, shared by the processes of a pre-forking server.
//
//   const shmkit::Schema schema = *shmkit::Schema::Builder()
//       .Int("hits").Float("score").String("user", 32).Build();
//   const shmkit::IntColumn hits = *schema.Int("hits");   // typed handles
//   const shmkit::StringColumn user = *schema.String("user");
//   auto table = shmkit::Table::Create(schema, {.capacity = 1 << 20});
//   // fork workers; in any of them:
//   table->Set("sess:42", {{user, name}, {hits, 1}});  // `name` not copied
//   table->Incr("sess:42", hits, 1);                    // StatusOr<int64_t>
//   shmkit::Row row;                                    // reused, no allocation
//   if (absl::StatusOr<bool> found = table->Find("sess:42", &row);
//       found.ok() && *found) {
//     int64_t n = row[hits];                            // one load, no Status
//   }
//
// Promises:
// - Capacity: exactly `capacity` live rows fit, whatever the keys; the next
//   insert is ResourceExhausted and changes nothing. The segment holds
//   exactly `capacity` rows, two beside each bucket's lock and chain head.
// - Nothing is truncated: a key longer than the schema's MaxKeyBytes, a
//   string longer than its column, an integer out of its column's width, a
//   float that is not finite is InvalidArgument and changes nothing.
// - Float columns hold finite numbers only, whatever the path (Set, Add,
//   Update, CompareAndSet's expected and desired, IncrFloat's delta, the
//   shmkit CLI, the PHP binding, the Redis backend): NaN and infinities are
//   InvalidArgument; an IncrFloat whose result would overflow to infinity
//   (or, for a float32 column, leave float's range) is OutOfRange; a finite
//   double that float32 cannot hold exactly is InvalidArgument. Nothing
//   changes on any of them, so every float read back is finite.
// - Every operation is atomic with respect to every other on the same key,
//   from any thread of any process. Locks are per bucket (an OwnerLock from
//   ipc/); there is no table-wide lock on any per-key operation.
// - Reads do not write shared memory: they copy optimistically under a
//   per-bucket sequence number and take the bucket lock only after a bounded
//   number of failed attempts. Most lookups touch one place in memory (a
//   bucket and its two home rows share it).
// - A process killed at any point of a write never leaves a torn row, a
//   broken chain or a lost row: whoever next takes that bucket's lock
//   finishes or undoes what it was doing (undo images for rewrites; the row's
//   claim state for inserts and deletes), counts a recovery and goes on, and
//   a process killed while recovering is itself recovered the same way. A
//   live lock holder is never overridden: after `lock_timeout` the waiter
//   gets DeadlineExceeded.
// - Iteration sees every row present for the whole iteration exactly once,
//   each as a consistent copy, and always ends.
//
// Threads and fork: every call is safe from any number of threads. Create
// before fork(); children use the inherited handle (each thread claims a slot
// in the table's process registry on its first write). Keyed tables can be
// attached by unrelated processes with Attach(); all processes sharing a table
// must share a pid namespace. A Table handle is move-only.
//
// Lifetime: an anonymous table (the default) disappears when the last
// process that has it exits. A keyed table persists until Remove().
//
// Errors (DESIGN.md section 7): InvalidArgument (bad key, column, value),
// NotFound (key absent), AlreadyExists (Add of a present key; Create of a
// used key), ResourceExhausted (table full), OutOfRange (Incr leaving the
// column's range), DeadlineExceeded (a live process held the bucket lock
// longer than lock_timeout), FailedPrecondition (attach: wrong magic, format,
// layout, schema, owner or mode), DataLoss (the segment holds inconsistent
// data that recovery could not explain).
#ifndef SHMKIT_TABLE_TABLE_H_
#define SHMKIT_TABLE_TABLE_H_

#include <sys/types.h>

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/base/optimization.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "shmkit/ipc/key.h"
#include "shmkit/ipc/object.h"
#include "shmkit/ipc/segment.h"
#include "shmkit/table/internal/fast_find.h"
#include "shmkit/table/internal/fast_incr.h"
#include "shmkit/table/row.h"
#include "shmkit/table/schema.h"

namespace shmkit {

struct TableOptions {
  // Rows the table holds, exactly. 1 .. 2^32 - 2.
  uint64_t capacity = 0;
  // Threads (over all processes) that may write at the same time: each
  // holds a registry slot with room for one saved row. 1 .. 65534.
  uint32_t registry_slots = 256;
  // IPC_PRIVATE (anonymous, shared through fork) or a key for Attach().
  IpcKey key = IpcKey::Private();
  mode_t mode = 0600;
  // kTransparent (the default) asks for transparent huge pages: a random
  // row then costs no TLB miss, when the host allows them
  // (/sys/kernel/mm/transparent_hugepage/shmem_enabled = advise, within_size
  // or always; the README says how). kRequire / kPreferred: reserved huge
  // pages (SHM_HUGETLB, vm.nr_hugepages). kNo: 4 KiB pages. Stats() says
  // what the table got.
  HugePages huge_pages = HugePages::kTransparent;
  // How long a write (or a read that fell back to locking) waits for a
  // bucket held by a live process before DeadlineExceeded.
  absl::Duration lock_timeout = absl::Seconds(5);
};

struct TableAttachOptions {
  bool read_only = false;  // reads only; writes fail
  std::optional<mode_t> expected_mode = 0600;
  // When set, the segment's schema must equal it (FailedPrecondition naming
  // the differences otherwise).
  std::optional<Schema> expected_schema = std::nullopt;
  absl::Duration lock_timeout = absl::Seconds(5);
  absl::Duration init_timeout = absl::Seconds(2);
  // Ask for transparent huge pages on this process's mapping (see
  // TableOptions::huge_pages).
  bool transparent_huge_pages = true;
};

// What a (schema, options) needs, without creating anything.
struct TablePlan {
  uint64_t total_bytes = 0;
  uint64_t capacity = 0;
  uint32_t buckets = 0;
  uint32_t row_bytes = 0;       // stride of one row
  uint64_t rows_bytes = 0;      // the row pool
  uint64_t buckets_bytes = 0;   // the index
  uint64_t registry_bytes = 0;  // process registry and undo areas
  uint64_t header_bytes = 0;    // headers and schema
  double bytes_per_row = 0;     // total_bytes / capacity
};

struct TableStats {
  uint64_t capacity = 0;
  uint64_t live_rows = 0;
  uint64_t memory_bytes = 0;
  double bytes_per_row = 0;
  uint64_t buckets = 0;
  uint64_t longest_chain = 0;
  uint64_t failed_inserts = 0;     // ResourceExhausted answers
  uint64_t lock_waits = 0;         // lock attempts that found the lock held
                                   // (including those that timed out)
  uint64_t recoveries = 0;         // dead lock owners recovered from
  uint64_t expired_reclaimed = 0;  // expired rows freed (reuse or Sweep)
  uint64_t chain_repairs = 0;      // chains found broken and cut (0 unless
                                   // the segment was corrupted)
  uint64_t read_fallbacks = 0;     // optimistic reads that took the lock
  // How this process's mapping of the table is backed: the page size that
  // backs most of it (4096, or 2 MiB with huge pages) and the bytes on huge
  // pages.
  uint64_t page_bytes = 0;
  uint64_t huge_page_bytes = 0;
};

// A column: by typed handle (Schema::Int / Float / String: no lookup, and
// checked against the table's schema), by index from Schema::ColumnIndex, or
// by name (a lookup per call).
class ColumnRef {
 public:
  ColumnRef(IntColumn c) : index_(c.index), schema_(c.schema) {}     // NOLINT
  ColumnRef(FloatColumn c) : index_(c.index), schema_(c.schema) {}   // NOLINT
  ColumnRef(StringColumn c) : index_(c.index), schema_(c.schema) {}  // NOLINT
  ColumnRef(int index) : index_(index) {}                            // NOLINT
  ColumnRef(absl::string_view name) : index_(-1), name_(name) {}     // NOLINT
  ColumnRef(const char* name) : index_(-1), name_(name) {}           // NOLINT
  ColumnRef(const std::string& name) : index_(-1), name_(name) {}    // NOLINT
  absl::StatusOr<int> Resolve(const Schema& schema) const;

 private:
  int index_;
  uint64_t schema_ = 0;  // a handle's schema fingerprint; 0: unchecked
  absl::string_view name_;
};

struct FieldValue {
  ColumnRef column;
  Value value;
};

struct SetOptions {
  // Expire the row this long after the write (tables WithTtl only; must be
  // positive). Unset: an inserted row never expires; an updated row keeps
  // its expiry.
  std::optional<absl::Duration> ttl = std::nullopt;
};

struct IncrOptions {
  // Insert the row (other columns zero) when the key is absent, instead of
  // NotFound. With `ttl`, a row created this way expires after it.
  bool create = false;
  std::optional<absl::Duration> ttl = std::nullopt;
};

// One page of a Scan.
struct ScanPage {
  std::vector<Row> rows;
  uint64_t next_cursor = 0;  // pass to the next Scan; 0 when done
};

// Held locks and chain lengths, for tools (`shmkit stat`).
struct TableInspection {
  std::vector<uint64_t>
      chain_histogram;  // [n] = buckets with n rows (last: >=)
  struct HeldLock {
    uint32_t bucket;
    pid_t pid;
    uint32_t slot;
    bool owner_alive;
  };
  std::vector<HeldLock> held_locks;
  uint32_t dead_pinned_slots = 0;  // crashed writers awaiting recovery
};

namespace internal {
class TableCore;
class TableBackend;
}  // namespace internal

class Table {
 public:
  // The bytes a table needs; InvalidArgument for bad options.
  static absl::StatusOr<TablePlan> Plan(const Schema& schema,
                                        const TableOptions& options);
  // Creates the segment and formats it. AlreadyExists for a used key.
  static absl::StatusOr<Table> Create(const Schema& schema,
                                      const TableOptions& options);
  // Attaches a keyed table (or one by segment id). The schema comes from the
  // segment. FailedPrecondition when anything in the segment is not what
  // this build expects (naming what differs).
  static absl::StatusOr<Table> Attach(IpcKey key,
                                      const TableAttachOptions& options = {});
  static absl::StatusOr<Table> AttachId(int shmid,
                                        const TableAttachOptions& options = {});

  // An empty Table (what a moved-from one is): every call fails with
  // FailedPrecondition, Count() is 0. Lets a Table be a plain member that
  // is opened later.
  Table();
  Table(Table&&) noexcept;
  Table& operator=(Table&&) noexcept;
  ~Table();

  // Whether this handle has a table (false for an empty or moved-from one).
  bool is_open() const { return core_ != nullptr || backend_ != nullptr; }
  // The schema (an empty one, no columns, when !is_open()).
  const Schema& schema() const;

  // --- reads (never write shared memory on the fast path) -------------
  absl::StatusOr<Row> Get(absl::string_view key) const;
  // Overwrites `*row`; reuses its buffers (no allocation once warm).
  absl::Status Get(absl::string_view key, Row* row) const;
  // Like Get, but absence is `false` rather than NotFound. The lookup to
  // write on a hot path: a hit costs what Get's does, a miss allocates
  // nothing (Get allocates the NotFound message). Read the columns with the
  // typed handles: `if (*table.Find(key, &row)) n = row[hits];`.
  //
  // Inline: the common case (a key in the first rows of its chain, no
  // writer in its bucket, a Row that held this table's rows before) runs
  // in the caller's loop, so consecutive lookups' cache misses overlap.
  ABSL_ATTRIBUTE_ALWAYS_INLINE absl::StatusOr<bool> Find(absl::string_view key,
                                                         Row* row) const {
    const internal::FastRead r = internal::FastFind(fast_, key, row);
    if (ABSL_PREDICT_TRUE(r != internal::FastRead::kUndecided)) {
      return r == internal::FastRead::kFound;
    }
    return FindSlow(key, row);
  }
  // Find for several keys at once (a request that needs a session, a rate
  // limit and a flag): hashes every key and prefetches every bucket before
  // reading any, so their cache misses overlap instead of following each
  // other. rows[i] receives keys[i]'s row and found[i] whether it exists.
  // InvalidArgument (nothing read) for a bad key or spans of unequal size.
  absl::Status FindMany(absl::Span<const absl::string_view> keys,
                        absl::Span<Row> rows, absl::Span<bool> found) const;
  absl::StatusOr<Value> GetColumn(absl::string_view key,
                                  ColumnRef column) const;
  absl::StatusOr<bool> Exists(absl::string_view key) const;

  // --- writes ----------------------------------------------------------
  // Insert or update. Insert: unnamed columns are zero / empty. Update:
  // unnamed columns keep their values.
  absl::Status Set(absl::string_view key,
                   std::initializer_list<FieldValue> values,
                   const SetOptions& options = {});
  absl::Status Set(absl::string_view key, absl::Span<const FieldValue> values,
                   const SetOptions& options = {});
  // Insert only: AlreadyExists when present.
  absl::Status Add(absl::string_view key,
                   std::initializer_list<FieldValue> values,
                   const SetOptions& options = {});
  absl::Status Add(absl::string_view key, absl::Span<const FieldValue> values,
                   const SetOptions& options = {});
  // Update only: NotFound when absent.
  absl::Status Update(absl::string_view key,
                      std::initializer_list<FieldValue> values,
                      const SetOptions& options = {});
  absl::Status Update(absl::string_view key,
                      absl::Span<const FieldValue> values,
                      const SetOptions& options = {});
  absl::Status Del(absl::string_view key);
  absl::StatusOr<Row> GetAndDelete(absl::string_view key);

  // Adds `delta` to an int column and returns the new value; OutOfRange
  // (nothing changes) when the result leaves the column's width.
  absl::StatusOr<int64_t> Incr(absl::string_view key, ColumnRef column,
                               int64_t delta, const IncrOptions& options = {});
  // The same through a typed handle (Schema::Int), the fast way: the handle
  // carries the column's place in the row, so nothing is looked up. A handle
  // of another schema gets the same InvalidArgument as above.
  // A thread that increments the same key again (a hot counter) finds its
  // row in a small per-thread memo of its last few keys (process-local,
  // re-checked against the table every time), so the repeat skips the hash
  // and the chain walk; it answers exactly what a lookup would. Always
  // inlined: left to itself GCC kept it out of line, and the call, the
  // registers it saved and the StatusOr returned through memory were about a
  // fifth of a remembered increment's instructions (bench/README.md,
  // "Fourteenth session").
  ABSL_ATTRIBUTE_ALWAYS_INLINE absl::StatusOr<int64_t> Incr(
      absl::string_view key, IntColumn column, int64_t delta,
      const IncrOptions& options = {}) {
    int64_t result;
    if (ABSL_PREDICT_TRUE(column.schema == incr_.fingerprint &&
                          !options.ttl.has_value() &&
                          internal::IncrRemembered(
                              incr_, key, column.index, column.offset,
                              column.bytes, delta, &result))) {
      return result;
    }
    return IncrLookedUp(key, column, delta, options);
  }
  absl::StatusOr<int64_t> Decr(absl::string_view key, ColumnRef column,
                               int64_t delta, const IncrOptions& options = {});
  absl::StatusOr<int64_t> Decr(absl::string_view key, IntColumn column,
                               int64_t delta, const IncrOptions& options = {});
  // The same for float columns; OutOfRange for a non-finite result.
  absl::StatusOr<double> IncrFloat(absl::string_view key, ColumnRef column,
                                   double delta,
                                   const IncrOptions& options = {});
  // Sets `column` to `desired` if it equals `expected`. Returns whether it
  // did; NotFound when the key is absent.
  absl::StatusOr<bool> CompareAndSet(absl::string_view key, ColumnRef column,
                                     const Value& expected,
                                     const Value& desired);

  // Deletes every row (bucket by bucket; concurrent writers may add rows
  // meanwhile).
  absl::Status Clear();
  // Frees every expired row; returns how many.
  absl::StatusOr<uint64_t> Sweep();

  // --- whole-table views ---------------------------------------------
  // Live rows (expired rows not yet reclaimed included).
  uint64_t Count() const;
  // Calls `fn` for each row (a consistent copy) until it returns false.
  // Rows present for the whole call are seen exactly once; `fn` may write
  // to the table, deletes included.
  absl::Status ForEach(absl::FunctionRef<bool(const Row&)> fn) const;
  // Resumable iteration: up to about `max_rows` rows from `cursor` (0 to
  // start); same guarantees across pages as ForEach.
  absl::StatusOr<ScanPage> Scan(uint64_t cursor, size_t max_rows) const;
  TableStats Stats() const;
  TableInspection Inspect() const;

  // Recovers every bucket whose lock holder died (normally done lazily by
  // the next writer of that bucket). Returns the number of recoveries.
  absl::StatusOr<uint64_t> Recover();
  // Checks every invariant of the segment: chains well-formed and in range,
  // each row in the chain of its key's bucket, no row reachable twice, row
  // states and lengths valid, the live count equal to the rows in chains.
  // Locks one bucket at a time; run it when writers are quiet for an exact
  // answer. DataLoss describing the first violation.
  absl::Status CheckConsistency() const;

  // Removes a keyed table (attached processes keep using it until they
  // detach).
  absl::Status Remove();
  // Shared-memory tables only (not one from FromBackend()).
  const Segment& segment() const;

  // For backend libraries (redis/redis_table.h): a Table whose storage is
  // `backend` instead of a shared-memory segment. Inspect() of such a table
  // is empty and Recover() finds nothing to recover.
  static Table FromBackend(std::unique_ptr<internal::TableBackend> backend);

 private:
  explicit Table(std::unique_ptr<internal::TableCore> core);
  explicit Table(std::unique_ptr<internal::TableBackend> backend);
  // Find's every other case (and every error).
  absl::StatusOr<bool> FindSlow(absl::string_view key, Row* row) const;
  // Incr through a handle when the memo did not answer.
  absl::StatusOr<int64_t> IncrLookedUp(absl::string_view key, IntColumn column,
                                       int64_t delta,
                                       const IncrOptions& options);
  std::unique_ptr<internal::TableCore> core_;
  // Set instead of core_ for other storage; every method tests it first.
  std::unique_ptr<internal::TableBackend> backend_;
  // core_'s FastFindView (decides nothing without a core): what Find
  // inlines. Points into core_'s mapping, so it moves with core_.
  internal::FastFindView fast_;
  // core_'s FastIncrView (remembers nothing without a core): what Incr
  // inlines. Points into core_, so it moves with core_.
  internal::FastIncrView incr_;
};

}  // namespace shmkit

#endif  // SHMKIT_TABLE_TABLE_H_
