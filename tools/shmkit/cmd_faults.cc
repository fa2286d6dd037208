// shmkit faults: the fault campaign (faults/campaign.h) as a command.
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "tools/shmkit/bench/harness.h"
#include "tools/shmkit/cli.h"
#include "tools/shmkit/common_flags.h"
#include "tools/shmkit/faults/campaign.h"
#include "tools/shmkit/text.h"

// Shared with bench (cmd_bench.cc) and create (cmd_table.cc).
ABSL_DECLARE_FLAG(int32_t, workers);
ABSL_DECLARE_FLAG(absl::Duration, duration);
ABSL_DECLARE_FLAG(uint64_t, capacity);

ABSL_FLAG(uint64_t, kills, 300,
          "faults: stop after this many SIGKILLs (0: run for --duration).");
ABSL_FLAG(absl::Duration, kill_every, absl::Milliseconds(2),
          "faults: pause between two kills.");
ABSL_FLAG(uint32_t, hot_keys, 8,
          "faults: rows every worker increments (1..64).");
ABSL_FLAG(uint64_t, seed, 0,
          "faults: seed of every random choice (0: one from the clock, "
          "printed so the run can be repeated).");
ABSL_FLAG(uint32_t, recovery_kills, 10,
          "faults: percent of respawned workers that arm a crash point inside "
          "the table's recovery, so they die while recovering a dead "
          "writer's bucket.");
ABSL_FLAG(uint32_t, writer_kills, 10,
          "faults: percent of respawned workers that arm a crash point inside "
          "a table write.");
ABSL_FLAG(uint32_t, mark_dead, 50,
          "faults: percent of reaps after which the supervisor calls "
          "ProcessRegistry::MarkDeadInAllOpen (recovery at once); after the "
          "others the next writer of the bucket recovers.");
ABSL_FLAG(bool, progress, false,
          "faults: a progress line on stderr every 5 seconds.");

namespace shmkit::cli {
namespace {

absl::StatusOr<faults::CampaignOptions> OptionsFromFlags(
    const Invocation& inv) {
  faults::CampaignOptions o;
  const int32_t workers = absl::GetFlag(FLAGS_workers);
  if (workers < 0 || workers > 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers ", workers, ": expected 0..64"));
  }
  o.workers = workers == 0
                  ? static_cast<uint32_t>(std::max(4, bench::OnlineCpus()))
                  : static_cast<uint32_t>(workers);
  o.kills = absl::GetFlag(FLAGS_kills);
  if (inv.Given("duration") && inv.Given("kills") && o.kills != 0) {
    return absl::InvalidArgumentError(
        "--duration applies only with --kills=0 (a campaign runs for a number "
        "of kills or for a time)");
  }
  if (inv.Given("duration") && !inv.Given("kills")) o.kills = 0;
  o.duration = absl::GetFlag(FLAGS_duration);
  o.kill_every = absl::GetFlag(FLAGS_kill_every);
  const uint64_t capacity = absl::GetFlag(FLAGS_capacity);
  o.capacity = capacity == 0 ? 256 : capacity;
  o.hot_keys = absl::GetFlag(FLAGS_hot_keys);
  o.seed = absl::GetFlag(FLAGS_seed);
  if (o.seed == 0) {
    o.seed = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) | 1;
  }
  o.recovery_point_percent = absl::GetFlag(FLAGS_recovery_kills);
  o.writer_point_percent = absl::GetFlag(FLAGS_writer_kills);
  o.mark_dead_percent = absl::GetFlag(FLAGS_mark_dead);
  o.verbose = absl::GetFlag(FLAGS_progress);
  return o;
}

std::string Text(const faults::CampaignOptions& o,
                 const faults::CampaignResult& r) {
  std::string out = absl::StrFormat(
      "fault campaign: %u workers, capacity %u, %u hot keys, seed %u, "
      "supervisor pid %d\n",
      o.workers, o.capacity, o.hot_keys, o.seed, getpid());
  for (const faults::Check& c : r.checks) {
    absl::StrAppend(&out, c.ok ? "PASS  " : "FAIL  ", c.name, ": ", c.detail,
                    "\n");
  }
  absl::StrAppend(
      &out,
      absl::StrFormat(
          "totals: %u kills (%u of consumers inside Receive), %u crash-point "
          "deaths, %u respawns, %u MarkDeadInAllOpen calls (%u slots), %u "
          "table recoveries, %u calls, %u table-full answers, %u messages "
          "acknowledged, %.1f s\n",
          r.kills, r.kills_in_receive, r.crash_point_deaths, r.respawns,
          r.mark_dead_calls, r.slots_marked_dead, r.table_recoveries, r.ops,
          r.table_full_answers, r.messages_acked,
          absl::ToDoubleSeconds(r.wall)));
  std::string kinds = "calls:";
  for (int op = 0; op < 12; ++op) {
    absl::StrAppend(&kinds, " ", faults::OpName(op), " ", r.ops_by_kind[op]);
  }
  absl::StrAppend(
      &out, kinds, "\n",
      r.ok() ? "faults: all checks passed\n" : "faults: CHECKS FAILED\n");
  return out;
}

std::string Json(const faults::CampaignOptions& o,
                 const faults::CampaignResult& r) {
  JsonWriter j;
  j.BeginObject();
  j.Key("ok").Bool(r.ok());
  j.Key("seed").Uint(o.seed);
  j.Key("workers").Uint(o.workers);
  j.Key("capacity").Uint(o.capacity);
  j.Key("checks").BeginArray();
  for (const faults::Check& c : r.checks) {
    j.BeginObject();
    j.Key("name").String(c.name);
    j.Key("ok").Bool(c.ok);
    j.Key("detail").Text(c.detail);
    j.EndObject();
  }
  j.EndArray();
  j.Key("kills").Uint(r.kills);
  j.Key("kills_in_receive").Uint(r.kills_in_receive);
  j.Key("crash_point_deaths").Uint(r.crash_point_deaths);
  j.Key("respawns").Uint(r.respawns);
  j.Key("mark_dead_calls").Uint(r.mark_dead_calls);
  j.Key("table_recoveries").Uint(r.table_recoveries);
  j.Key("calls").Uint(r.ops);
  j.Key("calls_by_kind").BeginObject();
  for (int op = 0; op < 12; ++op) {
    j.Key(faults::OpName(op)).Uint(r.ops_by_kind[op]);
  }
  j.EndObject();
  j.Key("messages_acknowledged").Uint(r.messages_acked);
  j.Key("messages_in_doubt").Uint(r.messages_in_doubt);
  j.Key("messages_received").Uint(r.messages_received);
  j.Key("messages_abandoned").Uint(r.messages_abandoned);
  j.Key("seconds").Double(absl::ToDoubleSeconds(r.wall));
  j.EndObject();
  return j.Take() + "\n";
}

absl::Status RunFaults(const Invocation& inv) {
  SHMKIT_ASSIGN_OR_RETURN(faults::CampaignOptions o, OptionsFromFlags(inv));
  SHMKIT_ASSIGN_OR_RETURN(faults::CampaignResult r, faults::RunCampaign(o));
  Print(absl::GetFlag(FLAGS_json) ? Json(o, r) : Text(o, r));
  if (!r.ok()) {
    return absl::InternalError(absl::StrCat(
        "the campaign failed a check (seed ", o.seed, " repeats its choices)"));
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> FaultCommands() {
  std::vector<Command> c;
  c.push_back(
      {.name = "faults",
       .summary = "Run a fault campaign: kill workers mid-operation, check "
                  "that nothing was lost, torn or doubled.",
       .details =
           "A supervisor creates an anonymous table (capacity --capacity, "
           "default 256), an AtomicCounter, a SemCounter and a ring queue, "
           "and forks --workers processes that increment hot rows, rewrite "
           "versioned rows whole, insert and delete churn rows (filling the "
           "table), read rows checking that their columns agree, add to both "
           "counters and send or receive ring messages, logging what each "
           "call acknowledged in a shared ledger. Every --kill-every it "
           "SIGKILLs a random worker, reaps it, runs the recovery at once "
           "after some reaps (--mark-dead) and respawns it; some respawned "
           "workers arm a crash point inside the table's recovery or a "
           "write (--recovery-kills, --writer-kills).\n\nAt the end it "
           "checks: per hot row and counter acknowledged <= value <= "
           "acknowledged + calls in flight at a death; no torn row; Count() "
           "equal to the rows iteration finds, without Recover() first; "
           "Count() never above capacity; CheckConsistency; the table fills "
           "to exactly capacity and refuses one more; every acknowledged "
           "message received once or counted abandoned, and sent == received "
           "+ abandoned + queued; no IPC object left. One line per check; "
           "exit 0 only if all pass (1 otherwise).",
       .flags = {"workers", "kills", "duration", "kill_every", "capacity",
                 "hot_keys", "seed", "recovery_kills", "writer_kills",
                 "mark_dead", "progress", "json"},
       .run = RunFaults});
  return c;
}

}  // namespace shmkit::cli
