// The objects a fault campaign works on, the rows' derivation rule (the
// torn-row check), and the worker loop. Internal to `shmkit faults`.
#ifndef SHMKIT_TOOLS_SHMKIT_FAULTS_WORKER_H_
#define SHMKIT_TOOLS_SHMKIT_FAULTS_WORKER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "shmkit/ipc/atomic_counter.h"
#include "shmkit/ipc/queue/queue.h"
#include "shmkit/ipc/sem_counter.h"
#include "shmkit/table/table.h"
#include "tools/shmkit/faults/campaign.h"
#include "tools/shmkit/faults/ledger.h"

namespace shmkit::faults {

// Everything the supervisor creates before forking; workers use the
// inherited handles.
struct Objects {
  Table table;
  IntColumn n;
  FloatColumn x;
  StringColumn s;
  std::unique_ptr<AtomicCounter> atomic;
  std::unique_ptr<SemCounter> sem;
  std::unique_ptr<Queue> ring;
  Ledger ledger;
};

// Row keys: "h:<i>" hot counters (never deleted), "v:<i>" versioned rows
// (never deleted), "c:<i>" churn rows (inserted and deleted), "f:<i>" rows
// the final fill adds.
std::string HotKey(uint32_t i);
std::string VersionedKey(uint32_t i);
std::string ChurnKey(uint32_t i);

// Every non-hot row holds columns derived from one version v: n = v,
// x = v / 4 (exact), s = DerivedText(v). A row whose columns disagree was
// torn. Hot rows hold n = the count, x = kHotX, s = kHotText.
std::string DerivedText(int64_t version);
inline constexpr double kHotX = -1.0;
inline constexpr char kHotText[] = "hot";
inline constexpr uint32_t kMaxStringBytes = 64;
inline constexpr uint32_t kMaxKeyBytes = 16;
// Whether `row` satisfies the rule (`hot` says which one applies).
bool RowIsWhole(const Objects& o, const Row& row, bool hot);
bool IsHotKey(absl::string_view key);

// Ring messages: producer slot, sequence number and a body derived from
// both, so a corrupted or mixed message is recognised.
inline constexpr size_t kMessageBytes = 32;
std::string EncodeMessage(uint32_t producer, uint64_t seq);
// False when `bytes` is not a message EncodeMessage could have made.
bool DecodeMessage(absl::string_view bytes, uint32_t* producer, uint64_t* seq);

struct WorkerSpec {
  uint32_t slot = 0;         // ledger slot
  uint64_t incarnation = 0;  // how many processes ran this slot before
  uint64_t seed = 0;
  int crash_point = 0;  // internal::CrashPoint to arm (0: none)
};

// The worker loop: runs until the ledger's stop flag, then _exit(0). Never
// returns.
[[noreturn]] void RunWorker(Objects& o, const CampaignOptions& options,
                            const WorkerSpec& spec);

}  // namespace shmkit::faults

#endif  // SHMKIT_TOOLS_SHMKIT_FAULTS_WORKER_H_
