// redis_bench: what the Redis backend costs over a raw hiredis command,
// measured interleaved so the ratio survives a noisy machine.
//
//   redis_bench --url=redis://127.0.0.1:6379/0 [--iterations=20000]
//               [--processes=1]
//
// Each iteration times one shmkit call and, right after it, the raw hiredis
// command that does the same on a plain key (Get ~ GET, Set ~ SET, Incr ~
// INCRBY, a queue send + receive ~ RPUSH + LPOP), so both see the same
// moment of the machine; the figures are the medians (and means) of the
// per-call times, and the ratio is shmkit's median over raw's. With
// --processes=2 a second process runs the same loop on its own keys at the
// same time (two clients on one server); each process reports. The
// shared-memory Table's figure is printed beside each, from the same loop
// shape. Also: 100 Gets one by one, and one FindMany of the same 100 keys
// (one pipelined round trip over Redis), against 100 raw GETs pipelined in
// one round trip.
#include <hiredis/hiredis.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/types/span.h"
#include "shmkit/ipc/queue/factory.h"
#include "shmkit/redis/redis_options.h"
#include "shmkit/redis/redis_queue.h"
#include "shmkit/redis/redis_table.h"
#include "shmkit/table/table.h"

namespace {

using shmkit::FieldValue;
using shmkit::Row;
using shmkit::Schema;
using shmkit::Table;

int64_t NowNs() { return absl::GetCurrentTimeNanos(); }

struct Samples {
  std::vector<int64_t> ns;
  double Median() {
    if (ns.empty()) return 0;
    std::sort(ns.begin(), ns.end());
    return static_cast<double>(ns[ns.size() / 2]);
  }
  double Mean() const {
    if (ns.empty()) return 0;
    double sum = 0;
    for (int64_t v : ns) sum += static_cast<double>(v);
    return sum / static_cast<double>(ns.size());
  }
};

// Times `f` into `s`.
template <typename F>
void Time(Samples& s, F&& f) {
  const int64_t t0 = NowNs();
  f();
  s.ns.push_back(NowNs() - t0);
}

class Raw {
 public:
  explicit Raw(const shmkit::RedisAddress& a) {
    c_ = redisConnect(a.host.c_str(), a.port);
    if (c_ == nullptr || c_->err) {
      std::fprintf(stderr, "redis_bench: cannot connect\n");
      std::exit(1);
    }
    if (a.has_password) Run({"AUTH", a.password});
    if (a.db != 0) Run({"SELECT", absl::StrCat(a.db)});
  }
  ~Raw() { redisFree(c_); }
  void Run(std::initializer_list<absl::string_view> args) {
    const char* argv[4];
    size_t lens[4];
    int n = 0;
    for (absl::string_view s : args) {
      argv[n] = s.data();
      lens[n++] = s.size();
    }
    auto* r = static_cast<redisReply*>(redisCommandArgv(c_, n, argv, lens));
    if (r == nullptr || r->type == REDIS_REPLY_ERROR) {
      std::fprintf(stderr, "redis_bench: raw command failed\n");
      std::exit(1);
    }
    freeReplyObject(r);
  }
  // `keys.size()` GETs in one write, then every reply.
  void PipelinedGets(const std::vector<std::string>& keys) {
    for (const std::string& k : keys) {
      const char* argv[] = {"GET", k.data()};
      const size_t lens[] = {3, k.size()};
      redisAppendCommandArgv(c_, 2, argv, lens);
    }
    for (size_t i = 0; i < keys.size(); ++i) {
      void* r = nullptr;
      if (redisGetReply(c_, &r) != REDIS_OK) std::exit(1);
      freeReplyObject(r);
    }
  }

 private:
  redisContext* c_;
};

struct Line {
  std::string what;
  Samples shm, redis, raw;
};

void Report(int process, std::vector<Line>& lines) {
  std::string out = absl::StrFormat(
      "process %d (pid %d)\n%-22s %12s %12s %12s %8s %12s %12s %8s\n",
      process, getpid(), "operation", "shm p50 ns", "redis p50", "raw p50",
      "ratio", "redis mean", "raw mean", "ratio");
  for (Line& l : lines) {
    const double s = l.shm.Median(), r = l.redis.Median(), w = l.raw.Median();
    absl::StrAppendFormat(&out, "%-22s %12.0f %12.0f %12.0f %7.2fx %12.0f %12.0f %7.2fx\n",
                          l.what, s, r, w, w > 0 ? r / w : 0, l.redis.Mean(),
                          l.raw.Mean(),
                          l.raw.Mean() > 0 ? l.redis.Mean() / l.raw.Mean() : 0);
  }
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
}

int RunOne(int process, const std::string& url, int iterations) {
  const absl::StatusOr<shmkit::RedisAddress> address = shmkit::ParseRedisUrl(url);
  if (!address.ok()) return 1;
  // Workload W's row: int64 + float64 + string(64), 16-byte keys.
  const Schema schema =
      *Schema::Builder().Int("n").Float("x").String("s", 64).Build();
  constexpr int kKeys = 1000;
  const std::string tag = absl::StrCat("redis-bench-", getpid());
  absl::StatusOr<Table> redis = shmkit::OpenRedisTable(
      url, tag, schema, {.capacity = kKeys + 10});
  absl::StatusOr<Table> shm = Table::Create(schema, {.capacity = kKeys + 10});
  if (!redis.ok() || !shm.ok()) {
    std::fprintf(stderr, "redis_bench: %s %s\n", redis.status().ToString().c_str(),
                 shm.status().ToString().c_str());
    return 1;
  }
  Raw raw(*address);
  const std::string payload(64, 'v');
  const std::string raw_value(16 + 64, 'v');  // the row's size
  std::vector<std::string> keys, raw_keys;
  for (int i = 0; i < kKeys; ++i) {
    keys.push_back(absl::StrFormat("%016x", i * 2654435761u));
    raw_keys.push_back(absl::StrCat(tag, ":raw:", keys.back()));
    const FieldValue row[] = {{0, i}, {1, 0.5}, {2, payload}};
    (void)redis->Set(keys.back(), row);
    (void)shm->Set(keys.back(), row);
    raw.Run({"SET", raw_keys.back(), raw_value});
  }
  const std::string hot_raw = tag + ":raw:hot";
  raw.Run({"SET", hot_raw, "0"});
  (void)redis->Set("hot", {{0, 0}});
  (void)shm->Set("hot", {{0, 0}});
  (void)shmkit::RegisterRedisQueueScheme();
  absl::StatusOr<std::unique_ptr<shmkit::Queue>> q =
      shmkit::OpenQueue(absl::StrCat("redis:url=", url, ",private"));
  absl::StatusOr<std::unique_ptr<shmkit::Queue>> ring =
      shmkit::OpenQueue("ring:slots=64,slot_bytes=256");
  if (!q.ok() || !ring.ok()) return 1;
  const std::string list = tag + ":raw:list";

  std::vector<Line> lines(6);
  lines[0].what = "Get";
  lines[1].what = "Set (update)";
  lines[2].what = "Incr (hot key)";
  lines[3].what = "queue send+receive";
  lines[4].what = "100 Gets (raw: pipelined)";
  lines[5].what = "FindMany of 100 (raw: pipelined)";
  std::vector<Row> many(100);
  std::unique_ptr<bool[]> found(new bool[100]);
  Row row;
  shmkit::Message m;
  const std::string msg(64, 'm');
  for (int i = 0; i < iterations; ++i) {
    const int k = (i * 7919) % kKeys;
    const FieldValue update[] = {{0, i}, {1, 0.5}, {2, payload}};
    Time(lines[0].shm, [&] { (void)shm->Get(keys[k], &row); });
    Time(lines[0].redis, [&] { (void)redis->Get(keys[k], &row); });
    Time(lines[0].raw, [&] { raw.Run({"GET", raw_keys[k]}); });
    Time(lines[1].shm, [&] { (void)shm->Set(keys[k], update); });
    Time(lines[1].redis, [&] { (void)redis->Set(keys[k], update); });
    Time(lines[1].raw, [&] { raw.Run({"SET", raw_keys[k], raw_value}); });
    Time(lines[2].shm, [&] { (void)shm->Incr("hot", 0, 1); });
    Time(lines[2].redis, [&] { (void)redis->Incr("hot", 0, 1); });
    Time(lines[2].raw, [&] { raw.Run({"INCRBY", hot_raw, "1"}); });
    Time(lines[3].shm, [&] {
      (void)(*ring)->Send(msg);
      (void)(*ring)->ReceiveInto(m, 256, shmkit::WaitMode::Forever());
    });
    Time(lines[3].redis, [&] {
      (void)(*q)->Send(msg);
      (void)(*q)->ReceiveInto(m, 256, shmkit::WaitMode::Forever());
    });
    Time(lines[3].raw, [&] {
      raw.Run({"RPUSH", list, msg});
      raw.Run({"LPOP", list});
    });
    if (i % 20 == 0) {
      std::vector<std::string> batch;
      for (int j = 0; j < 100; ++j) batch.push_back(raw_keys[(k + j) % kKeys]);
      Time(lines[4].shm, [&] {
        for (int j = 0; j < 100; ++j) (void)shm->Get(keys[(k + j) % kKeys], &row);
      });
      Time(lines[4].redis, [&] {
        for (int j = 0; j < 100; ++j) (void)redis->Get(keys[(k + j) % kKeys], &row);
      });
      Time(lines[4].raw, [&] { raw.PipelinedGets(batch); });
      std::vector<absl::string_view> batch_keys;
      for (int j = 0; j < 100; ++j) batch_keys.push_back(keys[(k + j) % kKeys]);
      const absl::Span<bool> found_span(found.get(), 100);
      Time(lines[5].shm, [&] {
        (void)shm->FindMany(batch_keys, absl::MakeSpan(many), found_span);
      });
      Time(lines[5].redis, [&] {
        (void)redis->FindMany(batch_keys, absl::MakeSpan(many), found_span);
      });
      Time(lines[5].raw, [&] { raw.PipelinedGets(batch); });
    }
  }
  int64_t hot = 0;
  if (absl::StatusOr<shmkit::Value> v = redis->GetColumn("hot", 0); v.ok()) {
    hot = v->int_value();
  }
  if (hot != iterations) {
    std::fprintf(stderr, "redis_bench: the Redis hot row holds %lld, not %d\n",
                 static_cast<long long>(hot), iterations);
    return 1;
  }
  Report(process, lines);
  (void)redis->Remove();
  (void)(*q)->Close();
  (void)(*ring)->Close();
  raw.Run({"DEL", hot_raw});
  for (const std::string& k : raw_keys) raw.Run({"DEL", k});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  int iterations = 20000, processes = 1;
  for (int i = 1; i < argc; ++i) {
    absl::string_view a = argv[i];
    if (absl::ConsumePrefix(&a, "--url=")) {
      url = std::string(a);
    } else if (absl::ConsumePrefix(&a, "--iterations=")) {
      if (!absl::SimpleAtoi(a, &iterations) || iterations < 1) return 2;
    } else if (absl::ConsumePrefix(&a, "--processes=")) {
      if (!absl::SimpleAtoi(a, &processes) || processes < 1 || processes > 8) {
        return 2;
      }
    } else {
      std::fprintf(stderr,
                   "usage: redis_bench --url=redis://host:port/db "
                   "[--iterations=N] [--processes=1|2]\n");
      return 2;
    }
  }
  if (url.empty()) {
    std::fprintf(stderr, "redis_bench: --url=redis://... is required\n");
    return 2;
  }
  std::printf("redis_bench: %d iterations per process, %d process(es), %s\n",
              iterations, processes, url.c_str());
  std::fflush(stdout);
  std::vector<pid_t> kids;
  for (int p = 1; p < processes; ++p) {
    const pid_t pid = fork();
    if (pid == 0) _exit(RunOne(p, url, iterations));
    kids.push_back(pid);
  }
  int rc = RunOne(0, url, iterations);
  for (pid_t k : kids) {
    int status = 0;
    waitpid(k, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) rc = 1;
  }
  return rc;
}
