// `shmkit faults`: a fault campaign against the table, both counters and the
// ring queue. A supervisor creates the objects, forks workers that hammer
// them, SIGKILLs a random worker every few milliseconds (some workers also
// arm a crash point inside the table's write or recovery paths, so a writer
// or a recoverer dies at a chosen step), reaps it, at random runs the
// table's recovery at once (ProcessRegistry::MarkDeadInAllOpen) or leaves it
// to the next writer, and respawns it. At the end it checks what the workers
// were acknowledged (ledger.h) against what the objects hold.
#ifndef SHMKIT_TOOLS_SHMKIT_FAULTS_CAMPAIGN_H_
#define SHMKIT_TOOLS_SHMKIT_FAULTS_CAMPAIGN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shmkit::faults {

struct CampaignOptions {
  uint32_t workers = 4;  // 2..kMaxWorkers; even slots produce,
                         // odd slots consume
  uint64_t kills = 300;  // stop after this many SIGKILLs (0: use
                         // `duration`)
  absl::Duration duration = absl::Seconds(2);  // when kills == 0
  absl::Duration kill_every = absl::Milliseconds(2);
  uint64_t capacity = 256;       // table rows
  uint32_t hot_keys = 8;         // 1..kMaxHotKeys
  uint32_t versioned_keys = 32;  // rows rewritten whole (torn-row check)
  uint64_t seed = 1;
  // Percent of respawned workers that arm a crash point inside the table's
  // recovery (they die when they next recover a dead writer's bucket), and
  // percent that arm one inside a write.
  uint32_t recovery_point_percent = 10;
  uint32_t writer_point_percent = 10;
  // Percent of reaps after which the supervisor runs MarkDeadInAllOpen.
  uint32_t mark_dead_percent = 50;
  uint32_t ring_slots = 64;
  uint64_t max_messages_per_producer = uint64_t{1} << 22;
  // Progress lines on stderr.
  bool verbose = false;
};

struct Check {
  std::string name;
  bool ok = false;
  std::string detail;  // one line
};

struct CampaignResult {
  std::vector<Check> checks;
  // Totals.
  uint64_t kills = 0;               // SIGKILLs sent by the supervisor
  uint64_t kills_in_receive = 0;    // of which consumers inside Receive
  uint64_t crash_point_deaths = 0;  // workers that died at an armed point
  uint64_t respawns = 0;
  uint64_t mark_dead_calls = 0;    // MarkDeadInAllOpen after a reap
  uint64_t slots_marked_dead = 0;  // registry slots those calls marked
  uint64_t table_recoveries = 0;   // TableStats::recoveries at the end
  uint64_t ops = 0;                // calls made by all workers
  uint64_t ops_by_kind[16] = {};
  uint64_t table_full_answers = 0;
  uint64_t messages_acked = 0;
  uint64_t messages_in_doubt = 0;
  uint64_t messages_received = 0;
  uint64_t messages_abandoned = 0;  // ring Stats
  absl::Duration wall = absl::ZeroDuration();
  bool ok() const {
    for (const Check& c : checks) {
      if (!c.ok) return false;
    }
    return !checks.empty();
  }
};

// Names of the operation kinds, indexed like ledger.h's Op.
const char* OpName(int op);

// Runs a campaign. A Status error means the campaign could not run (an
// object could not be created, fork failed); a campaign that ran returns its
// checks, passed or not. Every IPC object it creates is gone when it
// returns, either way.
absl::StatusOr<CampaignResult> RunCampaign(const CampaignOptions& options);

}  // namespace shmkit::faults

#endif  // SHMKIT_TOOLS_SHMKIT_FAULTS_CAMPAIGN_H_
