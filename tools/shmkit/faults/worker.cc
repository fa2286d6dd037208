#include "tools/shmkit/faults/worker.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "shmkit/ipc/queue/ring_queue.h"
#include "shmkit/table/internal/test_hooks.h"

namespace shmkit::faults {

std::string HotKey(uint32_t i) { return absl::StrCat("h:", i); }
std::string VersionedKey(uint32_t i) { return absl::StrCat("v:", i); }
std::string ChurnKey(uint32_t i) { return absl::StrCat("c:", i); }
bool IsHotKey(absl::string_view key) { return absl::StartsWith(key, "h:"); }

std::string DerivedText(int64_t version) {
  const auto v = static_cast<uint64_t>(version);
  std::string s(1 + v % kMaxStringBytes, 'a');
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<char>('a' + (v * 7 + i) % 26);
  }
  return s;
}

bool RowIsWhole(const Objects& o, const Row& row, bool hot) {
  const int64_t n = row[o.n];
  const double x = row[o.x];
  const absl::string_view s = row[o.s];
  if (hot) return n >= 0 && x == kHotX && s == kHotText;
  return n >= 0 && x == static_cast<double>(n) / 4 && s == DerivedText(n);
}

namespace {

// splitmix64: the message body is a function of (producer, seq).
uint64_t Mix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

constexpr uint32_t kMessageMagic = 0x66a17500u;

}  // namespace

std::string EncodeMessage(uint32_t producer, uint64_t seq) {
  std::string m(kMessageBytes, '\0');
  const uint32_t magic = kMessageMagic;
  const uint64_t body1 = Mix(seq * 131 + producer);
  const uint64_t body2 = Mix(body1);
  std::memcpy(m.data(), &magic, 4);
  std::memcpy(m.data() + 4, &producer, 4);
  std::memcpy(m.data() + 8, &seq, 8);
  std::memcpy(m.data() + 16, &body1, 8);
  std::memcpy(m.data() + 24, &body2, 8);
  return m;
}

bool DecodeMessage(absl::string_view bytes, uint32_t* producer, uint64_t* seq) {
  if (bytes.size() != kMessageBytes) return false;
  uint32_t magic = 0;
  std::memcpy(&magic, bytes.data(), 4);
  std::memcpy(producer, bytes.data() + 4, 4);
  std::memcpy(seq, bytes.data() + 8, 8);
  return magic == kMessageMagic && bytes == EncodeMessage(*producer, *seq);
}

namespace {

class Worker {
 public:
  Worker(Objects& o, const CampaignOptions& options, const WorkerSpec& spec)
      : o_(o),
        options_(options),
        me_(o.ledger.workers[spec.slot]),
        rng_(spec.seed),
        producer_(spec.slot % 2 == 0),
        producer_index_(spec.slot / 2),
        churn_keys_(static_cast<uint32_t>(2 * options.capacity)) {}

  [[noreturn]] void Run() {
    uint64_t iteration = 0;
    while (LoadWord(o_.ledger.header->stop) == 0) {
      OneOp(rng_() % 100);
      if (++iteration % 32 == 0) CheckCount();
    }
    _exit(0);
  }

 private:
  void Count(Op op) { AddWord(me_.ops[op], uint64_t{1}); }
  void Miss() { AddWord(me_.expected_misses, uint64_t{1}); }

  void Unexpected(absl::string_view what, const absl::Status& status) {
    if (std::atomic_ref<uint64_t>(me_.errors).fetch_add(1) != 0) return;
    const std::string text =
        absl::StrCat("pid ", getpid(), ": ", what, ": ", status.ToString());
    // Diagnostic only: the first error of the slot, cut to the buffer.
    const size_t n = std::min(text.size(), kErrorTextBytes - 1);
    std::memcpy(me_.first_error, text.data(), n);
    me_.first_error[n] = '\0';
  }

  // An insert's answer: OK, or one of the answers the campaign expects.
  void InsertAnswer(absl::string_view what, const absl::Status& st) {
    if (st.ok()) return;
    if (absl::IsResourceExhausted(st)) {
      AddWord(me_.table_full, uint64_t{1});
      Miss();
    } else if (absl::IsAlreadyExists(st) || absl::IsNotFound(st)) {
      Miss();
    } else {
      Unexpected(what, st);
    }
  }

  void Torn(const Row& row) {
    AddWord(me_.torn_rows, uint64_t{1});
    Unexpected("torn row", absl::DataLossError(row.DebugString()));
  }

  int64_t NewVersion() {
    return static_cast<int64_t>(1 + rng_() % (uint64_t{1} << 40));
  }

  absl::Status WriteVersioned(absl::string_view key, bool update) {
    const int64_t v = NewVersion();
    const std::string text = DerivedText(v);
    const FieldValue values[] = {{o_.n, v},
                                 {o_.x, static_cast<double>(v) / 4},
                                 {o_.s, absl::string_view(text)}};
    return update ? o_.table.Update(key, values) : o_.table.Set(key, values);
  }

  void OneOp(uint64_t pick) {
    const uint32_t churn = static_cast<uint32_t>(rng_() % churn_keys_);
    if (pick < 30) {
      Count(kOpIncr);
      const auto k = static_cast<uint32_t>(rng_() % options_.hot_keys);
      StoreWord(me_.pending_hot, k + 1);
      absl::StatusOr<int64_t> v = o_.table.Incr(HotKey(k), o_.n, 1);
      if (v.ok()) {
        AddWord(me_.hot_acked[k], uint64_t{1});
      } else {
        Unexpected("Incr", v.status());
      }
      StoreWord(me_.pending_hot, 0u);
    } else if (pick < 42) {
      Count(kOpSet);
      const auto i = static_cast<uint32_t>(rng_() % options_.versioned_keys);
      if (absl::Status st = WriteVersioned(VersionedKey(i), false); !st.ok()) {
        Unexpected("Set", st);
      }
    } else if (pick < 47) {
      Count(kOpUpdate);
      const auto i = static_cast<uint32_t>(rng_() % options_.versioned_keys);
      if (absl::Status st = WriteVersioned(VersionedKey(i), true); !st.ok()) {
        Unexpected("Update", st);
      }
    } else if (pick < 62) {
      Count(kOpGet);
      const uint64_t which = rng_() % 3;
      const std::string key =
          which == 0 ? HotKey(static_cast<uint32_t>(rng_() % options_.hot_keys))
          : which == 1 ? VersionedKey(static_cast<uint32_t>(
                             rng_() % options_.versioned_keys))
                       : ChurnKey(churn);
      absl::StatusOr<bool> found = o_.table.Find(key, &row_);
      if (!found.ok()) {
        Unexpected("Get", found.status());
      } else if (!*found) {
        Miss();
      } else if (!RowIsWhole(o_, row_, which == 0)) {
        Torn(row_);
      }
    } else if (pick < 72) {
      const bool add = rng_() % 2 == 0;
      Count(add ? kOpAdd : kOpSet);
      const int64_t v = NewVersion();
      const std::string text = DerivedText(v);
      const FieldValue values[] = {{o_.n, v},
                                   {o_.x, static_cast<double>(v) / 4},
                                   {o_.s, absl::string_view(text)}};
      const std::string key = ChurnKey(churn);
      InsertAnswer(add ? "Add" : "Set",
                   add ? o_.table.Add(key, values) : o_.table.Set(key, values));
    } else if (pick < 77) {
      Count(kOpDel);
      absl::Status st = o_.table.Del(ChurnKey(churn));
      if (absl::IsNotFound(st)) {
        Miss();
      } else if (!st.ok()) {
        Unexpected("Del", st);
      }
    } else if (pick < 82) {
      Count(kOpGetAndDelete);
      absl::StatusOr<Row> row = o_.table.GetAndDelete(ChurnKey(churn));
      if (absl::IsNotFound(row.status())) {
        Miss();
      } else if (!row.ok()) {
        Unexpected("GetAndDelete", row.status());
      } else if (!RowIsWhole(o_, *row, false)) {
        Torn(*row);
      }
    } else if (pick < 87) {
      CounterAdd(*o_.atomic, kOpAtomicAdd, me_.pending_atomic, me_.atomic_acked,
                 "AtomicCounter::Add");
    } else if (pick < 92) {
      CounterAdd(*o_.sem, kOpSemAdd, me_.pending_sem, me_.sem_acked,
                 "SemCounter::Add");
    } else if (producer_) {
      Send();
    } else {
      Receive();
    }
  }

  void CounterAdd(Counter& counter, Op op, uint32_t& pending, uint64_t& acked,
                  absl::string_view what) {
    Count(op);
    StoreWord(pending, 1u);
    absl::StatusOr<int64_t> v = counter.Add(1);
    if (v.ok()) {
      AddWord(acked, uint64_t{1});
    } else {
      Unexpected(what, v.status());
    }
    StoreWord(pending, 0u);
  }

  void Send() {
    const uint64_t seq = LoadWord(me_.next_seq);
    if (seq >= o_.ledger.header->max_seq) return;  // this slot sent its share
    Count(kOpSend);
    uint8_t& status = o_.ledger.StatusOf(producer_index_, seq);
    StoreWord(status, kMsgInFlight);
    absl::Status st = o_.ring->SendFor(EncodeMessage(producer_index_, seq),
                                       absl::Milliseconds(2));
    if (st.ok()) {
      StoreWord(status, kMsgAcked);
      StoreWord(me_.next_seq, seq + 1);
    } else if (absl::IsDeadlineExceeded(st) || absl::IsUnavailable(st)) {
      StoreWord(status, kMsgUnsent);  // not sent: the number is used again
      Miss();
    } else {
      // Sent or not, nobody can say: the message stays "in flight" (in
      // doubt) and the slot moves on.
      StoreWord(me_.next_seq, seq + 1);
      Unexpected("Send", st);
    }
  }

  void Receive() {
    Count(kOpReceive);
    StoreWord(me_.phase, kPhaseInReceive);
    // The ring's two-phase receive runs the callback before the release: a
    // kill anywhere up to the release has the message redelivered, so
    // recording it in the callback loses nothing (at-least-once; see
    // in_callback for the duplicate this can make).
    auto* ring = static_cast<RingQueue*>(o_.ring.get());
    bool bad = false;
    absl::Status st = ring->ReceiveAndProcess(
        message_, kMessageBytes, WaitMode::For(absl::Milliseconds(2)),
        [&](const Message& m) {
          uint32_t producer = 0;
          uint64_t seq = 0;
          if (PeekMessage(m.data, &producer, &seq)) {
            StoreWord(me_.in_callback, 1 + (uint64_t{producer} << 40 | seq));
            AddWord(o_.ledger.ReceivedOf(producer, seq), uint8_t{1});
          }
          bad = !DecodeMessage(m.data, &producer, &seq);
          return absl::OkStatus();
        });
    StoreWord(me_.in_callback, uint64_t{0});
    if (st.ok()) {
      if (bad) {
        AddWord(me_.bad_messages, uint64_t{1});
        Unexpected("Receive", absl::DataLossError("a message with a bad body"));
      }
    } else if (absl::IsDeadlineExceeded(st) || absl::IsUnavailable(st)) {
      Miss();
    } else {
      Unexpected("Receive", st);
    }
    StoreWord(me_.phase, kPhaseIdle);
  }

  // The producer and sequence number of a message, without checking its
  // body; false when they are out of the ledger's range.
  bool PeekMessage(absl::string_view bytes, uint32_t* producer,
                   uint64_t* seq) const {
    if (bytes.size() != kMessageBytes) return false;
    std::memcpy(producer, bytes.data() + 4, 4);
    std::memcpy(seq, bytes.data() + 8, 8);
    return *producer < o_.ledger.header->producers &&
           *seq < o_.ledger.header->max_seq;
  }

  void CheckCount() {
    Count(kOpCount);
    const uint64_t c = o_.table.Count();
    if (c > LoadWord(me_.max_count)) StoreWord(me_.max_count, c);
    if (c > options_.capacity) AddWord(me_.over_capacity, uint64_t{1});
  }

  Objects& o_;
  const CampaignOptions& options_;
  WorkerLedger& me_;
  std::mt19937_64 rng_;
  const bool producer_;
  const uint32_t producer_index_;
  const uint32_t churn_keys_;
  Row row_;
  Message message_;
};

}  // namespace

void RunWorker(Objects& o, const CampaignOptions& options,
               const WorkerSpec& spec) {
  if (spec.crash_point != 0) {
    internal::ArmCrashPoint(
        static_cast<internal::CrashPoint>(spec.crash_point));
  }
  Worker(o, options, spec).Run();
}

}  // namespace shmkit::faults
