// shmkit ls, stat, rm, recover: finding shmkit's objects among the
// machine's System V objects and looking inside them.
//
// A segment is shmkit's when it starts with a shmkit header of this build's
// format (ReadObjectInfo); the segment is attached read-only to read it and
// detached at once. Semaphore sets are shmkit's when a SemCounter segment
// names them. System V message queues carry no header (their messages are
// raw, so they interoperate with other programs), so shmkit cannot tell its
// queues from others': ls lists every message queue and says so.
//
// The commands: ls (cmd_ls.cc), stat (cmd_stat.cc), rm and recover
// (cmd_rm.cc); the object model they share is objects.h.
#include "tools/shmkit/cmd_objects.h"

#include <vector>

#include "tools/shmkit/cli.h"

namespace shmkit::cli {

std::vector<Command> ObjectCommands() {
  std::vector<Command> c;
  c.push_back(
      {.name = "ls",
       .args = "",
       .summary = "List shmkit's objects: kind, key, id, owner, mode, size, "
                  "attachments, creator.",
       .details =
           "Segments are recognised by their shmkit header (attached "
           "read-only\nfor a moment). Tables show capacity and live rows, "
           "counters their value.\nSystem V message queues carry no header, "
           "so every one is listed.\nSemaphore sets are listed when a shmkit "
           "counter uses them (others with --all).",
       .flags = {"json", "all"},
       .min_args = 0,
       .max_args = 0,
       .run = RunLs});
  c.push_back(
      {.name = "stat",
       .args = "OBJECT",
       .summary = "Show an object's header and, for tables, occupancy, "
                  "chains, locks, recoveries.",
       .details = "Tables: schema, live rows and capacity, bytes per row, the "
                  "chain-length\nhistogram, bucket locks held (and whether "
                  "their owner is alive),\nrecoveries, failed inserts, expired "
                  "rows (reclaimed, and pending: counted\nby iterating, exact "
                  "only while nobody writes).",
       .flags = {"json"},
       .min_args = 1,
       .max_args = 1,
       .run = RunStat});
  c.push_back({.name = "rm",
               .args = "OBJECT",
               .summary = "Remove an object (segments: freed once the last "
                          "process detaches).",
               .details = "Refuses objects that are not shmkit's unless "
                          "--force. A sem-counter's\nsemaphore set is removed "
                          "with its segment.",
               .flags = {"json", "force"},
               .min_args = 1,
               .max_args = 1,
               .run = RunRm});
  c.push_back({.name = "recover",
               .args = "OBJECT",
               .summary = "Repair the rows of a table whose writer died "
                          "(normally done by the next writer).",
               .details = "Takes over every bucket lock held by a dead "
                          "process, restores the rows it\nwas writing from "
                          "its undo image, and prints how many buckets it "
                          "repaired.",
               .flags = {"json"},
               .min_args = 1,
               .max_args = 1,
               .run = RunRecover});
  return c;
}

}  // namespace shmkit::cli
