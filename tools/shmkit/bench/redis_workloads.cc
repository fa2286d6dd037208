// The raw hiredis baseline of `shmkit bench --backend=redis://...`: what a
// program talking to Redis directly pays for the table workloads' Get, Set
// and Incr, one command per operation on plain keys (GET, SET, INCRBY), so
// the Redis table's figures read as a ratio to the bare round trip.
#include <hiredis/hiredis.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "shmkit/ipc/internal/status_macros.h"
#include "shmkit/redis/redis_options.h"
#include "tools/shmkit/bench/bench_common.h"
#include "tools/shmkit/bench/raw_redis.h"
#include "tools/shmkit/bench/table_shape.h"
#include "tools/shmkit/bench/workload.h"

namespace shmkit::cli::bench {

std::string UniqueBenchName(absl::string_view what) {
  static std::atomic<int> n{0};
  return absl::StrCat("shmkit-bench-", what, "-", getpid(), "-", n++);
}

namespace {

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

// One command; a failure is the worker's error.
bool Command(RawRedis& c, std::initializer_list<absl::string_view> args,
             WorkerContext& ctx) {
  std::string error;
  if (!c.Run(args, nullptr, &error)) {
    ctx.Error(error);
    return false;
  }
  return true;
}

class HiredisVariant final : public TableShapedVariant {
 public:
  HiredisVariant(TableShape shape, std::string url)
      : TableShapedVariant(std::move(shape)), url_(std::move(url)) {}
  std::string name() const override { return "hiredis"; }
  bool is_baseline() const override { return true; }
  std::string unavailable() const override {
    if ((shape_.shape == Shape::kReadMix && !shape_.permuted_keys) ||
        shape_.shape == Shape::kHotKey) {
      return "";
    }
    if (shape_.permuted_keys) {
      return "the user-* workloads compare with the Boost map, not raw GETs";
    }
    return "a raw GET/SET baseline has no capacity or TTL-churn equivalent";
  }

  absl::Status Setup() override {
    SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<RawRedis> raw,
                            RawRedis::Connect(url_));
    redisContext* c = raw->context();
    prefix_ = absl::StrCat(UniqueBenchName("raw"), ":");
    // Preloaded with pipelined SETs (not timed): the value is the size of
    // the table's row (int + float + 64-byte string).
    value_ = std::string(16 + kStringBytes, 'v');
    char key[kMaxBenchKeyBytes];
    const uint64_t preload = shape_.shape == Shape::kHotKey ? 0 : shape_.preload;
    for (uint64_t i = 0; i < preload; i += 1000) {
      const uint64_t end = std::min(preload, i + 1000);
      for (uint64_t k = i; k < end; ++k) {
        MakeKey(k, shape_.key_bytes, key);
        const std::string full =
            absl::StrCat(prefix_, absl::string_view(key, shape_.key_bytes));
        const char* argv[] = {"SET", full.data(), value_.data()};
        const size_t lens[] = {3, full.size(), value_.size()};
        redisAppendCommandArgv(c, 3, argv, lens);
      }
      for (uint64_t k = i; k < end; ++k) {
        void* r = nullptr;
        if (redisGetReply(c, &r) != REDIS_OK) {
          return absl::UnavailableError(
              absl::StrCat("hiredis preload: ", c->errstr));
        }
        freeReplyObject(r);
      }
    }
    loaded_ = preload;
    return absl::OkStatus();
  }

  WorkerHooks Hooks() override {
    WorkerHooks hooks;
    hooks.prepare = [this](WorkerContext&) -> absl::Status {
      SHMKIT_ASSIGN_OR_RETURN(conn_, RawRedis::Connect(url_));
      return absl::OkStatus();
    };
    hooks.work = [this](WorkerContext& ctx) { Work(ctx); };
    return hooks;
  }

  absl::Status Finish(const RunResult& run, VariantResult& out) override {
    if (shape_.shape != Shape::kHotKey) return absl::OkStatus();
    SHMKIT_ASSIGN_OR_RETURN(std::unique_ptr<RawRedis> c,
                            RawRedis::Connect(url_));
    std::string text, error;
    uint64_t v = 0;
    if (!c->Run({"GET", prefix_ + "hot"}, &text, &error) ||
        !absl::SimpleAtoi(text, &v) || v != run.ops) {
      return absl::DataLossError(
          absl::StrCat("hot-key/hiredis: the counter is not ", run.ops));
    }
    out.notes.push_back(absl::StrCat("check: counter = ", run.ops,
                                     " = INCRBY calls"));
    return absl::OkStatus();
  }

  void Teardown() override {
    absl::StatusOr<std::unique_ptr<RawRedis>> c = RawRedis::Connect(url_);
    if (!c.ok()) return;
    char key[kMaxBenchKeyBytes];
    std::vector<std::string> batch;
    auto flush = [&] {
      std::vector<const char*> argv = {"DEL"};
      std::vector<size_t> lens = {3};
      for (const std::string& k : batch) {
        argv.push_back(k.data());
        lens.push_back(k.size());
      }
      ReplyPtr r(static_cast<redisReply*>(
          redisCommandArgv((*c)->context(), static_cast<int>(argv.size()),
                           argv.data(), lens.data())));
      batch.clear();
    };
    batch.push_back(prefix_ + "hot");
    for (uint64_t k = 0; k < loaded_; ++k) {
      MakeKey(k, shape_.key_bytes, key);
      batch.push_back(
          absl::StrCat(prefix_, absl::string_view(key, shape_.key_bytes)));
      if (batch.size() == 1000) flush();
    }
    flush();
  }

 private:
  void Work(WorkerContext& ctx) override {
    RawRedis& c = *conn_;
    Rng rng(0x5eed0000 + ctx.index());
    char key_buf[kMaxBenchKeyBytes];
    std::string full = prefix_;
    const size_t base = full.size();
    if (shape_.shape == Shape::kHotKey) {
      const std::string hot = prefix_ + "hot";
      TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
        Command(c, {"INCRBY", hot, "1"}, ctx);
        return 0;
      });
      return;
    }
    const uint64_t keys = std::max<uint64_t>(1, shape_.preload);
    const int read_percent = shape_.read_percent;
    TimedLoop(ctx, ctx.quota(), [&](uint64_t) {
      MakeKey(rng.Below(keys), shape_.key_bytes, key_buf);
      full.resize(base);
      full.append(key_buf, shape_.key_bytes);
      if (static_cast<int>(rng.Below(100)) < read_percent) {
        Command(c, {"GET", full}, ctx);
        return 0;
      }
      Command(c, {"SET", full, value_}, ctx);
      return 1;
    });
  }

  const std::string url_;
  std::string prefix_;
  std::string value_;
  uint64_t loaded_ = 0;
  std::unique_ptr<RawRedis> conn_;  // a worker's own (after fork)
};

}  // namespace

absl::StatusOr<std::unique_ptr<RawRedis>> RawRedis::Connect(
    absl::string_view url) {
  SHMKIT_ASSIGN_OR_RETURN(RedisAddress a, ParseRedisUrl(url));
  redisContext* ctx = redisConnectWithTimeout(a.host.c_str(), a.port, {5, 0});
  if (ctx == nullptr || ctx->err != 0) {
    const std::string why = ctx == nullptr ? "out of memory" : ctx->errstr;
    if (ctx != nullptr) redisFree(ctx);
    return absl::UnavailableError(absl::StrCat("redis ", a.ToString(), ": ", why));
  }
  auto c = std::unique_ptr<RawRedis>(new RawRedis(ctx));
  std::string error;
  if (a.has_password &&
      !(a.user.empty() ? c->Run({"AUTH", a.password}, nullptr, &error)
                       : c->Run({"AUTH", a.user, a.password}, nullptr, &error))) {
    return absl::PermissionDeniedError(error);
  }
  if (a.db != 0 && !c->Run({"SELECT", absl::StrCat(a.db)}, nullptr, &error)) {
    return absl::UnavailableError(error);
  }
  return c;
}

RawRedis::~RawRedis() { redisFree(c_); }

bool RawRedis::Run(std::initializer_list<absl::string_view> args,
                   std::string* reply, std::string* error) {
  const char* argv[4];
  size_t lens[4];
  int n = 0;
  for (absl::string_view a : args) {
    if (n == 4) break;
    argv[n] = a.data();
    lens[n] = a.size();
    ++n;
  }
  ReplyPtr r(static_cast<redisReply*>(redisCommandArgv(c_, n, argv, lens)));
  if (r == nullptr) {
    *error = absl::StrCat("hiredis: ", c_->errstr);
    return false;
  }
  if (r->type == REDIS_REPLY_ERROR) {
    *error = absl::StrCat("hiredis: ", std::string(r->str, r->len));
    return false;
  }
  if (reply != nullptr) {
    const redisReply* s = r.get();
    if (s->type == REDIS_REPLY_ARRAY && s->elements == 2) s = s->element[1];
    if (s->type == REDIS_REPLY_STRING || s->type == REDIS_REPLY_STATUS) {
      reply->assign(s->str, s->len);
    } else {
      reply->clear();
    }
  }
  return true;
}

std::unique_ptr<Variant> MakeHiredisVariant(const TableShape& shape,
                                            std::string url) {
  return std::make_unique<HiredisVariant>(shape, std::move(url));
}

}  // namespace shmkit::cli::bench
