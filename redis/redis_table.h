// A shmkit::Table stored in a Redis server, for state shared by several
// hosts. The handle is the same Table type as the shared-memory one, so code
// written against Table works unchanged; only the opening line differs:
//
//   auto table = shmkit::Table::Create(*schema, {.capacity = 1 << 20});
//   auto table = shmkit::OpenRedisTable("redis://10.0.0.7:6379/0", "sessions",
//                                       *schema, {.capacity = 1 << 20});
//
// Storage (every key carries the hash tag {name}, so one table is one
// Redis Cluster slot and its scripts stay legal there):
//   shmkit:t:{name}:meta    hash: magic, format version, the schema, the
//                           capacity, an instance id, statistics
//   shmkit:t:{name}:idx     sorted set: every row key, scored by its expiry
//                           time in ms ("inf": never)
//   shmkit:t:{name}:r:KEY   hash, one per row: column name -> value (ints
//                           in decimal, floats as %.17g, strings as bytes);
//                           PEXPIREAT at its expiry
//
// Promises kept from table.h, each checked on the server:
// - The schema lives in Redis: opening a name with another schema is
//   FailedPrecondition naming the difference; AttachRedisTable() takes the
//   schema from Redis.
// - Keys and values are checked against the schema before anything is sent;
//   nothing is truncated.
// - Capacity: every insert runs as one Lua script that counts the live rows
//   (reclaiming expired ones first), so exactly `capacity` rows fit, across
//   every client; the next insert is ResourceExhausted.
// - Incr/Decr check the column's width on the server (OutOfRange, nothing
//   changed); Add, Update, CompareAndSet, GetAndDelete are single scripts.
// - TTL: an expired row reads as absent (Redis expires the row hash itself)
//   and no longer counts against capacity (inserts reclaim it). Expiry is
//   on the server's clock.
// - Data under the table's names that shmkit did not write (a string where a
//   row hash belongs, a row hash the index does not list, a meta hash with
//   another magic) is FailedPrecondition, and nothing is overwritten.
//
// Iteration differs (Redis cannot give the shared-memory guarantee
// cheaply): ForEach() visits every row present for the whole iteration
// exactly once (it walks the index with ZSCAN, which may return a member
// twice, and drops repeats with a set of the keys seen so far, O(rows) memory
// in the caller). Scan() pages are ZSCAN pages: every row present throughout
// appears at least once, possibly twice across pages. Each row is a
// consistent copy.
//
// Count() is the index size (like the shared-memory table, expired rows not
// yet reclaimed are included). Count() and Stats() cannot return a status:
// when the server is unreachable they return 0 / zero fields.
// Stats().memory_bytes, buckets, longest_chain and the lock counters are 0
// (no such things here). Inspect() is empty, Recover() returns 0,
// segment() must not be called.
//
// Errors, in addition to table.h's: Unavailable (the server cannot be
// reached, or the connection broke during the call: a write may or may not
// have happened, and it is never re-sent by itself), DeadlineExceeded (no
// reply within command_timeout), PermissionDenied (AUTH refused),
// FailedPrecondition (foreign data; the table was removed under the handle).
// Reconnection: see redis_options.h.
//
// Threads and fork: a handle is safe from any number of threads (each call
// takes a pooled connection); after fork() a child uses the inherited
// handle and opens its own connections.
#ifndef SHMKIT_REDIS_REDIS_TABLE_H_
#define SHMKIT_REDIS_REDIS_TABLE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/redis/redis_options.h"
#include "shmkit/table/schema.h"
#include "shmkit/table/table.h"

namespace shmkit {

struct RedisTableOptions {
  // Create: the rows the table holds, exactly (1 .. 2^32 - 2). Attach: 0
  // takes the stored capacity; any other value must equal it
  // (FailedPrecondition).
  uint64_t capacity = 0;
  // kCreateOrAttach (default): the first opener creates, later ones attach
  // and check the schema. Racing creators: exactly one creates.
  OpenMode open = OpenMode::kCreateOrAttach;
  absl::Duration connect_timeout = absl::Seconds(2);
  absl::Duration command_timeout = absl::Seconds(2);
};

// Opens table `name` (1..200 bytes, no '{', '}' or control characters) in
// the server at `url` (redis_options.h). InvalidArgument for a bad name,
// URL or capacity; Unavailable naming the address when the server cannot
// be reached; AlreadyExists (kCreate) / NotFound (kAttach); FailedPrecondition
// for another schema or capacity, or foreign data under the name.
absl::StatusOr<Table> OpenRedisTable(absl::string_view url,
                                     absl::string_view name,
                                     const Schema& schema,
                                     const RedisTableOptions& options = {});
// Attaches an existing table, taking its schema from Redis.
absl::StatusOr<Table> AttachRedisTable(absl::string_view url,
                                       absl::string_view name,
                                       const RedisTableOptions& options = {});

}  // namespace shmkit

#endif  // SHMKIT_REDIS_REDIS_TABLE_H_
